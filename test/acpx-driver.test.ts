/**
 * The acpx driver end to end: the gateway over HTTP on loopback, the real acpx CLI of the
 * pinned npm package, and the project's scripted ACP agent behind it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { execFile, execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { promisify } from "node:util"
import { AgentPool } from "../src/services/sessions/AgentPool.js"
import { acpxBin, agentCommandLine } from "../src/services/agents/AcpxDriver.js"
import { scriptedAgentPath } from "../src/services/agents/AgentRegistry.js"
import { agentLogFile, agentText, isAlive, startedPids } from "./support/ScriptedAgent.js"
import { appName, appToken, layerTestGateway, request } from "./support/TestGateway.js"
import { tempDir } from "./support/TempDirs.js"

// An argument the agent ignores, to prove the registry argv reaches it intact through `--agent`.
const oddArg = `an arg with spaces, 'single' and "double" quotes, a \\ backslash and $HOME`
const agentArgv = [process.execPath, scriptedAgentPath, oddArg]

/** A gateway whose data folder is its own temp dir: acpx's HOME, and its agent's, is the app's (`<workspaces>/app-a/.home`). */
const acpxGateway = (log: string, config: Record<string, string> = {}) => {
  const data = tempDir("clawdforge-acpx-")
  const layer = layerTestGateway({
    pool: AgentPool.Default,
    config: {
      CLAWDFORGE_WORKSPACE_ROOT: join(data, "workspaces"),
      CLAWDFORGE_AGENTS: JSON.stringify({
        "scripted-acpx": { command: agentArgv, driver: "acpx", env: { SCRIPTED_AGENT_LOG: log } }
      }),
      ...config
    }
  })
  return { layer, acpxHome: join(data, "workspaces", appName, ".home") }
}

const create = (body: Record<string, unknown> = {}) =>
  request("POST", "/sessions", { token: appToken, body: { agent: "scripted-acpx", ...body } })
const turn = (sid: string, body: unknown) => request("POST", `/sessions/${sid}/turn`, { token: appToken, body })
const close = (sid: string) => request("DELETE", `/sessions/${sid}`, { token: appToken })

const environOf = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")
  } catch {
    return []
  }
}

/** Live acpx processes of this gateway: args naming the session, or HOME set to its acpx home. */
const acpxProcesses = (acpxHome: string, sid?: string) =>
  execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" })
    .split("\n")
    .map((line) => line.trim().match(/^(\d+)\s+(.*)$/))
    .filter((m): m is RegExpMatchArray => m !== null && m[2]!.includes("acpx"))
    .map((m) => ({ pid: Number(m[1]), args: m[2]! }))
    .filter((p) => (sid !== undefined && p.args.includes(sid)) || environOf(p.pid).includes(`HOME=${acpxHome}`))

const timed = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.timed(self), ([duration, value]) => [Math.round(Duration.toMillis(duration)), value] as const)

describe("the acpx driver", () => {
  const log = agentLogFile()

  it.scopedLive("create, turns, close: events like the native driver's, nothing left running", () => {
    const { acpxHome, layer } = acpxGateway(log)
    return Effect.gen(function*() {
      const before = startedPids(log).length
      const [createMs, created] = yield* timed(create())
      expect(created.status).toBe(200)
      const sid: string = created.body.session_id

      const [coldMs, first] = yield* timed(turn(sid, { prompt: "hello acpx" }))
      expect(first.status).toBe(200)
      // Resolved at the result line: the acpx process of the turn is still in its idle second.
      expect(acpxProcesses(acpxHome, sid).some((p) => p.args.includes("prompt"))).toBe(true)
      expect(first.body).toMatchObject({ ok: true, session_id: sid, turn_index: 1, stop_reason: "end_turn" })
      const events = first.body.events
      // The cold agent's initialize and session/load are not part of the turn.
      expect(events[0]).toMatchObject({ jsonrpc: "2.0", method: "session/prompt" })
      expect(events[0].params.prompt).toEqual([{ type: "text", text: "hello acpx" }])
      expect(events.at(-1)).toEqual({
        jsonrpc: "2.0",
        id: events[0].id,
        result: { stopReason: "end_turn", usage: { inputTokens: 10, outputTokens: 16, totalTokens: 26 } }
      })
      expect(agentText(events)).toBe("echo: hello acpx")

      // The registry argv reached the agent intact, and the agent has its app's HOME.
      const [agentPid] = startedPids(log).slice(-1)
      expect(readFileSync(`/proc/${agentPid}/cmdline`, "utf8").split("\0").slice(0, -1)).toEqual(agentArgv)
      expect(environOf(agentPid!)).toContain(`HOME=${acpxHome}`)

      const second = yield* turn(sid, { prompt: "history" })
      expect(second.status).toBe(200)
      expect(second.body.turn_index).toBe(2)
      expect(second.body.events[0]).toMatchObject({ method: "session/prompt" })
      expect(agentText(second.body.events)).toBe(`history: ${JSON.stringify(["hello acpx"])}`)

      // A warm turn after acpx's queue owner has had its quiet second.
      yield* Effect.sleep("1200 millis")
      const [warmMs, third] = yield* timed(turn(sid, { prompt: "look", files: ["notes.txt"] }))
      expect(third.body.turn_index).toBe(3)
      // Files named first, the user's text last, in one text block.
      const [block] = third.body.events[0].params.prompt
      expect(block.text).toMatch(/^Files to look at:\n- \S*notes\.txt\n\nlook$/)
      // One agent process served every turn.
      expect(startedPids(log).slice(before).filter(isAlive)).toEqual([agentPid])

      const [closeMs, closed] = yield* timed(close(sid))
      expect(closed.body).toEqual({ ok: true })
      expect(startedPids(log).slice(before).filter(isAlive)).toEqual([])
      expect(acpxProcesses(acpxHome, sid)).toEqual([])
      console.log(
        `acpx driver through the gateway: create ${createMs} ms, first (cold) turn ${coldMs} ms, ` +
          `warm turn ${warmMs} ms, close ${closeMs} ms`
      )
    }).pipe(Effect.provide(layer))
  }, 60_000)

  it.scopedLive("permission requests are answered per the session's mode", () => {
    const { acpxHome, layer } = acpxGateway(log)
    return Effect.gen(function*() {
      const answer = (mode: string) =>
        Effect.gen(function*() {
          const sid: string = (yield* create({ permission_mode: mode })).body.session_id
          const r = yield* turn(sid, { prompt: "permission x" })
          yield* close(sid)
          expect(r.status).toBe(200)
          expect(r.body.stop_reason).toBe("end_turn")
          const methods = r.body.events.map((e: any) => e.method ?? "response")
          expect(methods).toContain("session/request_permission")
          return agentText(r.body.events)
        })
      const [denied, allowed] = yield* Effect.all([answer("deny-all"), answer("approve-all")], {
        concurrency: "unbounded"
      })
      expect(denied).toBe("permission: reject")
      expect(allowed).toBe("permission: allow")
      expect(acpxProcesses(acpxHome)).toEqual([])
    }).pipe(Effect.provide(layer))
  }, 60_000)

  it.scopedLive("failures are 502 with the events so far; a timed-out turn is cancelled through acpx", () => {
    const { acpxHome, layer } = acpxGateway(log, { CLAWDFORGE_TURN_TIMEOUT_SECS: "8" })
    return Effect.gen(function*() {
      const sid: string = (yield* create()).body.session_id

      const failed = yield* turn(sid, { prompt: "fail" })
      expect(failed.status).toBe(502)
      expect(failed.body).toMatchObject({ ok: false, error: "agent_failed" })
      expect(failed.body.message).toContain("scripted failure")
      expect(failed.body.events[0]).toMatchObject({ method: "session/prompt" })

      const crashed = yield* turn(sid, { prompt: "crash" })
      expect(crashed.status).toBe(502)
      expect(crashed.body.message).toContain("RUNTIME")
      expect(agentText(crashed.body.events)).toBe("about to crash")

      // `acpx cancel` reaches the agent: the hanging turn ends "cancelled", the gateway says 504.
      const hung = yield* turn(sid, { prompt: "hang" })
      expect(hung.status).toBe(504)
      const cancels = readFileSync(log, "utf8").split("\n").filter((l) => l.includes("session/cancel"))
      expect(cancels.length).toBeGreaterThan(0)

      // acpx respawned the crashed agent and loaded its session: the history is whole.
      const after = yield* turn(sid, { prompt: "history" })
      expect(after.status).toBe(200)
      expect(agentText(after.body.events)).toBe(`history: ${JSON.stringify(["fail", "crash", "hang"])}`)
      yield* close(sid)
      expect(acpxProcesses(acpxHome, sid)).toEqual([])
    }).pipe(Effect.provide(layer))
  }, 60_000)

  it.scopedLive("a named session lost under the gateway is resumed with its history", () => {
    const { acpxHome, layer } = acpxGateway(log)
    return Effect.gen(function*() {
      const created = yield* create()
      const sid: string = created.body.session_id
      expect((yield* turn(sid, { prompt: "remember me" })).status).toBe(200)

      // Someone closes the named session behind the gateway's back.
      const agent = agentCommandLine(agentArgv)
      // Not execFileSync: the gateway under test shares this event loop, and blocking it for seconds
      // lets its keep-alive timer close the client's socket just as the next request goes out.
      yield* Effect.promise(() =>
        promisify(execFile)(
          process.execPath,
          [acpxBin, "--format", "json", "--cwd", created.body.cwd, "--agent", agent, "sessions", "close", sid],
          { env: { ...process.env, HOME: acpxHome } }
        )
      )
      const lost = yield* turn(sid, { prompt: "anyone there?" })
      expect(lost.status).toBe(502)
      expect(lost.body.message).toContain("NO_SESSION")

      // The next turn ensures the named session again with `--resume-session`: session/load.
      const resumed = yield* turn(sid, { prompt: "history" })
      expect(resumed.status).toBe(200)
      expect(agentText(resumed.body.events)).toBe(`history: ${JSON.stringify(["remember me"])}`)
      yield* close(sid)
      expect(acpxProcesses(acpxHome, sid)).toEqual([])
    }).pipe(Effect.provide(layer))
  }, 60_000)
})
