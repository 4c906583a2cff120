/**
 * Hibernation (`CLAWDFORGE_AGENT_IDLE_SECS`), with the scripted ACP agent as real child processes
 * behind a real loopback server: an idle agent is stopped (its process gone, its pool slot free)
 * while its session stays open with `live: false`, and its next turn starts it again and resumes
 * its ACP session; a full pool hibernates an idle agent for a create (the caller's own least
 * recently used first, else one of the app holding the most), and is a 503 only when every agent
 * is busy; an agent with a permission request pending is never stopped.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Ledger } from "../src/services/ledger/Ledger.js"
import { AgentPool } from "../src/services/sessions/AgentPool.js"
import { poll } from "./support/Poll.js"
import { agentLogFile, agentText, isAlive, readAgentLog, startedPids } from "./support/ScriptedAgent.js"
import { appToken, layerScriptedGateway, otherToken, request } from "./support/TestGateway.js"

const create = (token: string, body: Record<string, unknown> = {}) =>
  request("POST", "/sessions", { token, body: { agent: "scripted", ...body } })
const turn = (token: string, sid: string, prompt: string) =>
  request("POST", `/sessions/${sid}/turn`, { token, body: { prompt } })
const state = (token: string, sid: string) =>
  Effect.map(request("GET", `/sessions/${sid}`, { token }), (reply) => reply.body)
const auditKinds = (sid: string) =>
  Effect.flatMap(Ledger, (ledger) => ledger.sessionEvents(sid)).pipe(Effect.map((events) => events.map((e) => e.event)))
const livePool = Effect.flatMap(AgentPool, (pool) => pool.live)

/** The pid of the scripted agent that answered `session/new` or a resume of the agent session `agentSid`. */
const pidsOf = (log: string, agentSid: string) =>
  [...new Set(readAgentLog(log).filter((l) => l.sessionId === agentSid).map((l) => l.pid))]

/** The scripted agent's own session id for the gateway session (its first `session/new` after `before` lines). */
const agentSessionOf = (log: string, before: number) =>
  readAgentLog(log).slice(before).find((l) => l.event === "session/new")!.sessionId!

const untilLive = (token: string, sid: string, live: boolean) =>
  poll(state(token, sid), (s) => s.live === live, "10 seconds")

describe("hibernation", () => {
  it.scopedLive("an idle agent is stopped, its session stays open, and its next turn resumes it", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const created = yield* create(appToken, { model: "demo-large" })
      expect(created.status, JSON.stringify(created.body)).toBe(200)
      expect(created.body.live).toBe(true)
      const sid = created.body.session_id
      expect((yield* turn(appToken, sid, "remember this")).body.turn_index).toBe(1)
      const [firstPid] = startedPids(log)
      expect(isAlive(firstPid!)).toBe(true)
      expect(yield* livePool).toBe(1)

      // Idle past CLAWDFORGE_AGENT_IDLE_SECS: the process is gone, the slot free, the session open.
      yield* untilLive(appToken, sid, false)
      // Marked not live as it starts to stop: its process and its slot go within moments.
      yield* poll(Effect.sync(() => isAlive(firstPid!)), (alive) => !alive, "5 seconds")
      yield* poll(livePool, (live) => live === 0, "5 seconds")
      const asleep = yield* state(appToken, sid)
      expect(asleep).toMatchObject({ status: "open", live: false, turn_count: 1, model: "demo-large" })
      const listed = (yield* request("GET", "/sessions", { token: appToken })).body.sessions
      expect(listed.find((s: any) => s.session_id === sid).live).toBe(false)

      // The next turn starts the agent again and loads its session: it remembers, turn_index goes on.
      const started = Date.now()
      const resumed = yield* turn(appToken, sid, "history")
      expect(resumed.status, JSON.stringify(resumed.body)).toBe(200)
      expect(Date.now() - started).toBeLessThan(5_000)
      expect(resumed.body.turn_index).toBe(2)
      expect(agentText(resumed.body.events)).toContain("remember this")
      const pids = startedPids(log)
      expect(pids).toHaveLength(2)
      expect(readAgentLog(log).filter((l) => l.pid === pids[1]).map((l) => l.event)).toContain("session/load")
      // Its settings came back with it.
      expect(agentText((yield* turn(appToken, sid, "config")).body.events)).toContain("demo-large")
      expect(yield* state(appToken, sid)).toMatchObject({ live: true, turn_count: 3, model: "demo-large" })
      expect(yield* livePool).toBe(1)
      const kinds = yield* auditKinds(sid)
      expect(kinds.indexOf("hibernated")).toBeGreaterThan(0)
      expect(kinds.indexOf("resumed")).toBeGreaterThan(kinds.indexOf("hibernated"))
    }).pipe(Effect.provide(layerScriptedGateway(log, { CLAWDFORGE_AGENT_IDLE_SECS: "1" })))
  }, 40_000)

  it.scopedLive("an agent that declares session/resume is resumed with it; max_sessions counts hibernated sessions", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const sid = (yield* create(appToken, { agent: "scripted-resume" })).body.session_id
      const agentSid = agentSessionOf(log, 0)
      expect((yield* turn(appToken, sid, "first")).status).toBe(200)
      yield* untilLive(appToken, sid, false)
      // Its slot in the app's max_sessions stays held while it hibernates.
      const refused = yield* create(appToken)
      expect(refused.status).toBe(429)
      expect(refused.body.error).toBe("app_session_limit")
      const again = yield* turn(appToken, sid, "history")
      expect(again.body.turn_index).toBe(2)
      expect(agentText(again.body.events)).toContain("first")
      const second = pidsOf(log, agentSid)[1]!
      const events = readAgentLog(log).filter((l) => l.pid === second).map((l) => l.event)
      expect(events).toContain("session/resume")
      expect(events).not.toContain("session/load")
    }).pipe(Effect.provide(layerScriptedGateway(log, {
      CLAWDFORGE_AGENT_IDLE_SECS: "1",
      CLAWDFORGE_APP_LIMITS: JSON.stringify({ "app-a": { max_sessions: 1 } })
    })))
  }, 40_000)

  it.scopedLive("a full pool hibernates an idle agent for a create: the caller's own first, else the busiest app's", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      // app-a holds both slots; a1 is its least recently used.
      const a1 = (yield* create(appToken)).body.session_id
      const a2 = (yield* create(appToken)).body.session_id
      expect((yield* turn(appToken, a1, "one")).status).toBe(200)
      expect((yield* turn(appToken, a2, "two")).status).toBe(200)
      expect(yield* livePool).toBe(2)

      // app-b has no agent: the app holding the most (app-a) gives up its least recently used.
      const b1 = yield* create(otherToken)
      expect(b1.status, JSON.stringify(b1.body)).toBe(200)
      expect((yield* state(appToken, a1)).live).toBe(false)
      expect((yield* state(appToken, a2)).live).toBe(true)
      expect(yield* livePool).toBe(2)
      expect(yield* auditKinds(a1)).toContain("hibernated")

      // a2 is now used more recently than b1; app-a's create still stops app-a's own agent (a2).
      expect((yield* turn(appToken, a2, "three")).status).toBe(200)
      const a3 = yield* create(appToken)
      expect(a3.status, JSON.stringify(a3.body)).toBe(200)
      expect((yield* state(appToken, a2)).live).toBe(false)
      expect((yield* state(otherToken, b1.body.session_id)).live).toBe(true)

      // A turn for a hibernated session makes room the same way (app-a's own idle a3 goes).
      const woken = yield* turn(appToken, a1, "history")
      expect(woken.status, JSON.stringify(woken.body)).toBe(200)
      expect(agentText(woken.body.events)).toContain("one")
      expect((yield* state(appToken, a3.body.session_id)).live).toBe(false)
      expect((yield* state(otherToken, b1.body.session_id)).live).toBe(true)
      expect(yield* livePool).toBe(2)
    }).pipe(Effect.provide(layerScriptedGateway(log, { CLAWDFORGE_AGENT_IDLE_SECS: "3600", CLAWDFORGE_MAX_LIVE_SESSIONS: "2" })))
  }, 40_000)

  it.scopedLive("with every agent busy a create or a hibernated session's turn is 503 pool_full, and a pending permission request keeps its agent", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      // A session that hibernates first.
      const sleeper = (yield* create(otherToken)).body.session_id
      expect((yield* turn(otherToken, sleeper, "one")).status).toBe(200)
      yield* untilLive(otherToken, sleeper, false)
      const sleeperPid = startedPids(log)[0]!
      // One agent asks for a permission (held for the caller), the other runs a long turn.
      const asking = (yield* create(appToken, { permission_mode: "ask" })).body.session_id
      const busy = (yield* create(otherToken)).body.session_id
      const held = yield* request("POST", `/sessions/${asking}/turns`, { token: appToken, body: { prompt: "permission x" } })
      expect(held.status).toBe(202)
      expect((yield* request("POST", `/sessions/${busy}/turns`, { token: otherToken, body: { prompt: "sleep 4000" } })).status)
        .toBe(202)
      yield* poll(request("GET", `/sessions/${asking}/permissions`, { token: appToken }), (r) => r.body.count === 1, "5 seconds")
      const [askingPid] = startedPids(log).filter((pid) => pid !== sleeperPid)

      for (const token of [appToken, otherToken]) {
        const refused = yield* create(token)
        expect(refused.status).toBe(503)
        expect(refused.body.error).toBe("pool_full")
      }
      // The hibernated session's turn finds no agent to stop either: 503, stored as failed.
      const woken = yield* turn(otherToken, sleeper, "two")
      expect(woken.status).toBe(503)
      expect(woken.body.error).toBe("pool_full")
      expect((yield* state(otherToken, sleeper)).live).toBe(false)
      // Idle time passes (1 s) while the request waits: the agent is not stopped.
      yield* Effect.sleep("2500 millis")
      expect(isAlive(askingPid!)).toBe(true)
      expect((yield* state(appToken, asking)).live).toBe(true)
      expect(yield* auditKinds(asking)).not.toContain("hibernated")

      // Answered, the turn ends; idle again, the agent hibernates after all.
      const requestId = (yield* request("GET", `/sessions/${asking}/permissions`, { token: appToken })).body.permissions[0]
        .request_id
      expect((yield* request("POST", `/sessions/${asking}/permissions/${requestId}`, {
        token: appToken,
        body: { option_id: "allow" }
      })).status).toBe(200)
      yield* untilLive(appToken, asking, false)
      yield* poll(Effect.sync(() => isAlive(askingPid!)), (alive) => !alive, "5 seconds")
    }).pipe(Effect.provide(layerScriptedGateway(log, { CLAWDFORGE_AGENT_IDLE_SECS: "1", CLAWDFORGE_MAX_LIVE_SESSIONS: "2" })))
  }, 40_000)

  it.scopedLive("off (the default): an idle agent keeps running and a full pool is a 503", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const sid = (yield* create(appToken)).body.session_id
      expect((yield* turn(appToken, sid, "one")).status).toBe(200)
      const [pid] = startedPids(log)
      yield* Effect.sleep("1500 millis")
      expect(isAlive(pid!)).toBe(true)
      expect(yield* state(appToken, sid)).toMatchObject({ live: true })
      const refused = yield* create(otherToken)
      expect(refused.status).toBe(503)
      expect(refused.body.error).toBe("pool_full")
      expect(yield* auditKinds(sid)).not.toContain("hibernated")
    }).pipe(Effect.provide(layerScriptedGateway(log, { CLAWDFORGE_MAX_LIVE_SESSIONS: "1" })))
  }, 30_000)
})
