/**
 * What happens to real agents: crashes, hangs, permission requests and hostile paths,
 * with the scripted ACP agent as a real child process behind a real loopback server.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Ledger } from "../src/services/ledger/Ledger.js"
import { agentLogFile, agentText, isAlive, readAgentLog, startedPids } from "./support/ScriptedAgent.js"
import { appToken, layerScriptedGateway, request } from "./support/TestGateway.js"
import { tempDir } from "./support/TempDirs.js"

const gateway = layerScriptedGateway

const create = (body: Record<string, unknown> = {}) =>
  request("POST", "/sessions", { token: appToken, body: { agent: "scripted", ...body } })
const turn = (sid: string, body: unknown) => request("POST", `/sessions/${sid}/turn`, { token: appToken, body })

const auditTrail = (sid: string) =>
  Effect.flatMap(Ledger, (ledger) => ledger.sessionEvents(sid))

describe("agent crash", () => {
  it.scopedLive("a crash mid-turn is a 502 with what the agent said; the next turn resumes with session/load", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const sid = (yield* create()).body.session_id
      expect((yield* turn(sid, { prompt: "remember this" })).status).toBe(200)
      const [firstPid] = startedPids(log)

      const crashed = yield* turn(sid, { prompt: "crash" })
      expect(crashed.status).toBe(502)
      expect(crashed.body).toMatchObject({ ok: false, error: "agent_failed" })
      expect(agentText(crashed.body.events)).toBe("about to crash")
      expect(crashed.body.stderr).toContain("crashing on purpose")
      expect(crashed.body.message).toContain("exit code 17")
      expect(isAlive(firstPid!)).toBe(false)

      // The crashed turn was accepted, so it counts and is stored (failed): issue 11.
      const state = yield* request("GET", `/sessions/${sid}`, { token: appToken })
      expect(state.body).toMatchObject({ status: "open", turn_count: 2 })

      const resumed = yield* turn(sid, { prompt: "history" })
      expect(resumed.status).toBe(200)
      expect(resumed.body.turn_index).toBe(3)
      // The new process loaded the same ACP session: it remembers the first prompt.
      expect(agentText(resumed.body.events)).toContain("remember this")
      const pids = startedPids(log)
      expect(pids).toHaveLength(2)
      const second = readAgentLog(log).filter((l) => l.pid === pids[1]).map((l) => l.event)
      expect(second).toContain("session/load")
      expect(second).not.toContain("session/new")

      const kinds = (yield* auditTrail(sid)).map((e) => e.event)
      expect(kinds).toEqual(expect.arrayContaining(["turn_failed", "agent_exit", "agent_start"]))
    }).pipe(Effect.provide(gateway(log)))
  })

  it.scopedLive("an agent that cannot load starts a new session, noted in the session's events", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const sid = (yield* create({ agent: "scripted-noload" })).body.session_id
      expect((yield* turn(sid, { prompt: "crash" })).status).toBe(502)
      const next = yield* turn(sid, { prompt: "history" })
      expect(next.status).toBe(200)
      expect(agentText(next.body.events)).toBe("history: []")
      const starts = (yield* auditTrail(sid)).filter((e) => e.event === "agent_start")
      expect(starts.at(-1)?.detail).toMatchObject({ origin: "new_after_failed_load" })
    }).pipe(Effect.provide(gateway(log)))
  })
})

describe("turn timeout", () => {
  it.scopedLive("a hung turn is cancelled with session/cancel and answers 504; the session stays usable", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const sid = (yield* create()).body.session_id
      const hung = yield* turn(sid, { prompt: "hang" })
      expect(hung.status).toBe(504)
      expect(hung.body).toMatchObject({ ok: false, error: "turn_timeout" })
      expect(readAgentLog(log).map((l) => l.event)).toContain("session/cancel")
      const next = yield* turn(sid, { prompt: "after the timeout" })
      expect(next.status).toBe(200)
      expect(agentText(next.body.events)).toBe("echo: after the timeout")
      expect(startedPids(log)).toHaveLength(1)
    }).pipe(Effect.provide(gateway(log, { CLAWDFORGE_TURN_TIMEOUT_SECS: "1" })))
  })

  it.scopedLive("an agent that ignores the cancel is killed, and the next turn starts it again", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const sid = (yield* create({ agent: "scripted-stubborn" })).body.session_id
      const [pid] = startedPids(log)
      expect((yield* turn(sid, { prompt: "hang" })).status).toBe(504)
      expect(isAlive(pid!)).toBe(false)
      const next = yield* turn(sid, { prompt: "again" })
      expect(next.status).toBe(200)
      // The timed-out turn was accepted and keeps its index (stored as failed): issue 11.
      expect(next.body.turn_index).toBe(2)
      expect(startedPids(log)).toHaveLength(2)
    }).pipe(Effect.provide(gateway(log, { CLAWDFORGE_TURN_TIMEOUT_SECS: "1" })))
  })
})

describe("permissions", () => {
  const log = agentLogFile()
  const permissionTurn = (mode: string | undefined, prompt: string) =>
    Effect.gen(function*() {
      const sid = (yield* create(mode === undefined ? {} : { permission_mode: mode })).body.session_id
      const r = yield* turn(sid, { prompt })
      expect(r.status).toBe(200)
      return r.body.events as Array<any>
    })

  it.scopedLive("the session's permission mode answers session/request_permission, in the turn's events", () =>
    Effect.gen(function*() {
      const allowed = yield* permissionTurn("approve-all", "permission write it")
      expect(agentText(allowed)).toBe("permission: allow")
      const ask = allowed.find((e) => e.method === "session/request_permission")
      expect(ask).toBeDefined()
      const answer = allowed.find((e) => e.id === ask.id && e.result !== undefined && e.method === undefined)
      expect(answer.result).toEqual({ outcome: { outcome: "selected", optionId: "allow" } })
      expect(allowed.indexOf(answer)).toBeGreaterThan(allowed.indexOf(ask))

      expect(agentText(yield* permissionTurn("deny-all", "permission write it"))).toBe("permission: reject")
      expect(agentText(yield* permissionTurn("approve-reads", "permission-read it"))).toBe("permission: allow")
      expect(agentText(yield* permissionTurn("approve-reads", "permission write it"))).toBe("permission: reject")
      // The configured default applies when the session names none.
      expect(agentText(yield* permissionTurn(undefined, "permission write it"))).toBe("permission: allow")
    }).pipe(Effect.provide(gateway(log, { CLAWDFORGE_PERMISSION_MODE: "approve-all" }))))
})

describe("workspaces", () => {
  const log = agentLogFile()
  const root = tempDir("clawdforge-root-")
  const outside = tempDir("clawdforge-outside-")
  writeFileSync(join(outside, "secret.txt"), "secret")

  it.scopedLive("each session gets its own directory under <root>/<app>/<id>, or a cwd inside the app's root", () =>
    Effect.gen(function*() {
      const a = yield* create()
      expect(a.body.cwd).toBe(join(root, "app-a", a.body.session_id))
      const b = yield* create({ cwd: "projects/demo" })
      expect(b.status).toBe(200)
      expect(b.body.cwd).toBe(join(root, "app-a", "projects", "demo"))
    }).pipe(Effect.provide(gateway(log, { CLAWDFORGE_WORKSPACE_ROOT: root }))))

  it.scopedLive("a cwd outside the app's root is a 400 and changes nothing", () => {
    const quiet = agentLogFile()
    return Effect.gen(function*() {
      mkdirSync(join(root, "app-a"), { recursive: true })
      symlinkSync(outside, join(root, "app-a", "escape"))
      for (const cwd of ["../app-b", "/etc", "../../..", "escape", "escape/deeper", "ok/../../app-b", "a\u0000b"]) {
        const r = yield* create({ cwd })
        expect(r.status, cwd).toBe(400)
        expect(r.body).toMatchObject({ ok: false, error: "bad_request" })
      }
      const list = yield* request("GET", "/sessions", { token: appToken })
      expect(list.body.count).toBe(0)
      expect(startedPids(quiet)).toHaveLength(0)
    }).pipe(Effect.provide(gateway(quiet, { CLAWDFORGE_WORKSPACE_ROOT: root })))
  })

  it.scopedLive("turn files must lie inside the session's workspace", () =>
    Effect.gen(function*() {
      const sid = (yield* create()).body.session_id
      const cwd = join(root, "app-a", sid)
      writeFileSync(join(cwd, "notes.txt"), "notes")
      symlinkSync(join(outside, "secret.txt"), join(cwd, "link.txt"))
      for (const file of ["/etc/passwd", "../other/x", "sub/../../x", join(outside, "secret.txt"), "link.txt"]) {
        const r = yield* turn(sid, { prompt: "read", files: [file] })
        expect(r.status, file).toBe(400)
      }
      const ok = yield* turn(sid, { prompt: "read", files: ["notes.txt", join(cwd, "notes.txt")] })
      expect(ok.status).toBe(200)
      expect(ok.body.turn_index).toBe(1)
      const links = ok.body.events[0].params.prompt.filter((b: any) => b.type === "resource_link")
      expect(links.map((l: any) => l.uri)).toEqual([`file://${cwd}/notes.txt`, `file://${cwd}/notes.txt`])
    }).pipe(Effect.provide(gateway(log, { CLAWDFORGE_WORKSPACE_ROOT: root }))))
})
