/**
 * Agent control by the protocol (issue 10, the driver's part): `session/close` before an agent
 * that advertises it is stopped, `session/resume` preferred over `session/load`, elicitations
 * declined when nobody can answer them, and an agent's error data reaching the caller. The
 * scripted ACP agent runs as a real child process behind a real loopback server.
 */
import { createHash } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Ledger } from "../src/services/ledger/Ledger.js"
import { api, startGateway } from "./support/GatewayProcess.js"
import { agentLogFile, agentText, isAlive, readAgentLog, startedPids } from "./support/ScriptedAgent.js"
import { appToken, layerScriptedGateway, request } from "./support/TestGateway.js"

const create = (agent = "scripted") => request("POST", "/sessions", { token: appToken, body: { agent } })
const turn = (sid: string, prompt: string) =>
  request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt } })
const eventsOf = (log: string, pid: number) => readAgentLog(log).filter((l) => l.pid === pid).map((l) => l.event)

describe("agent control by the protocol", () => {
  it.scopedLive("closing a session sends session/close to an agent that advertises it, then stops it", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const sid = (yield* create()).body.session_id
      expect((yield* turn(sid, "hello")).status).toBe(200)
      const [pid] = startedPids(log)
      expect((yield* request("DELETE", `/sessions/${sid}`, { token: appToken })).status).toBe(200)
      const events = eventsOf(log, pid!)
      expect(events).toContain("session/close")
      // Closed before it was stopped, and stopped all the same.
      expect(events.indexOf("session/close")).toBeLessThan(events.indexOf("exit"))
      expect(isAlive(pid!)).toBe(false)
    }).pipe(Effect.provide(layerScriptedGateway(log)))
  })

  it.scopedLive("after a crash, an agent that advertises session/resume is resumed with it, not loaded", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const sid = (yield* create("scripted-resume")).body.session_id
      expect((yield* turn(sid, "remember this")).status).toBe(200)
      expect((yield* turn(sid, "crash")).status).toBe(502)
      const resumed = yield* turn(sid, "history")
      expect(resumed.status).toBe(200)
      // The resumed session is the same one: it remembers the first prompt.
      expect(agentText(resumed.body.events)).toContain("remember this")
      const [, second] = startedPids(log)
      const events = eventsOf(log, second!)
      expect(events).toContain("session/resume")
      expect(events).not.toContain("session/load")
      expect(events).not.toContain("session/new")
      const starts = (yield* Effect.flatMap(Ledger, (ledger) => ledger.sessionEvents(sid)))
        .filter((e) => e.event === "agent_start")
        .map((e) => (e.detail as { origin: string }).origin)
      expect(starts).toEqual(["resumed"])
    }).pipe(Effect.provide(layerScriptedGateway(log)))
  })

  it.scopedLive("an elicitation is declined when nobody can answer it, and the turn goes on", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const sid = (yield* create()).body.session_id
      const reply = yield* turn(sid, "elicit which branch?")
      expect(reply.status).toBe(200)
      expect(agentText(reply.body.events)).toBe("elicitation: decline")
      const asked = reply.body.events.find((e: any) => e.method === "elicitation/create")
      const answer = reply.body.events.find((e: any) => e.id === asked.id && e.result !== undefined)
      expect(answer.result).toEqual({ action: "decline" })
    }).pipe(Effect.provide(layerScriptedGateway(log)))
  })

  it.scopedLive("an agent's JSON-RPC error reaches the caller with its data; authentication required is agent_auth_required; the session goes on", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const sid = (yield* create()).body.session_id
      const failed = yield* turn(sid, "fail")
      expect(failed.status).toBe(502)
      expect(failed.body).toMatchObject({ ok: false, error: "agent_failed" })
      expect(failed.body.message).toContain("scripted failure")
      expect(failed.body.message).toContain("the script said fail")
      const auth = yield* turn(sid, "auth")
      expect(auth.status).toBe(502)
      expect(auth.body).toMatchObject({ ok: false, error: "agent_auth_required" })
      expect(auth.body.message).toContain("Authentication required")
      expect((yield* turn(sid, "still there?")).status).toBe(200)
    }).pipe(Effect.provide(layerScriptedGateway(log)))
  })
})

describe("permission requests in the audit trail", () => {
  it.scopedLive("every request the policy answers leaves permission_request and permission_answer (by policy)", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const audit = (sid: string) => Effect.flatMap(Ledger, (ledger) => ledger.sessionEvents(sid))
      const reads = (yield* request("POST", "/sessions", {
        token: appToken,
        body: { agent: "scripted", permission_mode: "approve-reads" }
      })).body.session_id
      const refused = yield* turn(reads, "permission edit the readme")
      expect(agentText(refused.body.events)).toBe("permission: reject")
      const all = (yield* request("POST", "/sessions", {
        token: appToken,
        body: { agent: "scripted", permission_mode: "approve-all" }
      })).body.session_id
      expect(agentText((yield* turn(all, "permission edit the readme")).body.events)).toBe("permission: allow")

      for (const [sid, option] of [[reads, "reject"], [all, "allow"]] as const) {
        const events = yield* audit(sid)
        const kinds = events.map((e) => e.event)
        // Asked, answered, then the turn: in that order.
        expect(kinds.indexOf("permission_request")).toBeGreaterThan(-1)
        expect(kinds.indexOf("permission_request")).toBeLessThan(kinds.indexOf("permission_answer"))
        expect(kinds.indexOf("permission_answer")).toBeLessThan(kinds.indexOf("turn"))
        const asked = events.find((e) => e.event === "permission_request")!.detail as any
        expect(asked.tool_call).toMatchObject({ id: "tc-1", kind: "edit" })
        expect(asked.options.map((o: any) => o.option_id)).toEqual(["allow", "reject"])
        const answered = events.find((e) => e.event === "permission_answer")!.detail as any
        expect(answered).toMatchObject({ by: "policy", outcome: "selected", option_id: option })
      }
    }).pipe(Effect.provide(layerScriptedGateway(log)))
  })
})

describe("running as root", () => {
  it("agents of a gateway running as root hear IS_SANDBOX=1 from it (Claude Code needs it); otherwise they do not", async () => {
    const gateway = await startGateway({ IS_SANDBOX: "" })
    try {
      const created = await api(gateway, "POST", "/sessions", { agent: "echo" })
      expect(created.status).toBe(200)
      const said = await api(gateway, "POST", `/sessions/${created.body.session_id}/turn`, { prompt: "env IS_SANDBOX" })
      expect(agentText(said.body.events)).toBe(
        process.getuid?.() === 0 ? `env: IS_SANDBOX sha256:${createHash("sha256").update("1").digest("hex").slice(0, 16)}` : "env: IS_SANDBOX unset"
      )
    } finally {
      await gateway.stop()
    }
  }, 30_000)
})

describe("GET /agents", () => {
  it.scopedLive("lists the registry: whether each command is found, and what each agent declared once it started", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      expect((yield* request("GET", "/agents")).status).toBe(401)
      const before = yield* request("GET", "/agents", { token: appToken })
      expect(before.status).toBe(200)
      const byName = (body: any) => Object.fromEntries(body.agents.map((a: any) => [a.name, a]))
      const first = byName(before.body)
      expect(before.body.count).toBe(before.body.agents.length)
      expect(first["echo"]).toEqual({ name: "echo", driver: "acp", available: true, capabilities: null })
      expect(first["scripted"]).toMatchObject({ available: true, capabilities: null })
      // The real adapters are not installed here: listed, not available.
      expect(first["claude"]).toMatchObject({ driver: "acp", available: false, capabilities: null })
      expect(first["codex"]).toMatchObject({ available: false })

      const sid = (yield* create()).body.session_id
      expect((yield* turn(sid, "hello")).status).toBe(200)
      const after = byName((yield* request("GET", "/agents", { token: appToken })).body)
      expect(after["scripted"].capabilities).toEqual({
        load_session: true,
        resume: false,
        close: true,
        list: false,
        prompt: { image: false, audio: false, embedded_context: true },
        auth_methods: []
      })
      expect(after["echo"].capabilities).toBeNull()
      // The agents' environment (here the scripted agent's log path) never appears.
      expect(JSON.stringify(after)).not.toContain(log)
    }).pipe(Effect.provide(layerScriptedGateway(log)))
  })
})
