/**
 * The session flow end to end: a real HTTP server on loopback, the real pool, and the
 * project's scripted ACP agent as a real child process.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { AgentPool } from "../src/services/sessions/AgentPool.js"
import { sweepOnce } from "../src/services/sessions/Sweeper.js"
import { agentLogFile, agentText, isAlive, startedPids } from "./support/ScriptedAgent.js"
import { appToken, layerScriptedGateway, request } from "./support/TestGateway.js"

const gateway = layerScriptedGateway

const turn = (sid: string, body: unknown) => request("POST", `/sessions/${sid}/turn`, { token: appToken, body })

describe("sessions with a real agent process", () => {
  const log = agentLogFile()

  it.scopedLive("create, two turns, close: the agent process is gone after close", () =>
    Effect.gen(function*() {
      const created = yield* request("POST", "/sessions", { token: appToken, body: { agent: "scripted" } })
      expect(created.status).toBe(200)
      const sid = created.body.session_id
      const [pid] = startedPids(log).slice(-1)
      expect(pid).toBeDefined()
      expect(isAlive(pid!)).toBe(true)

      const first = yield* turn(sid, { prompt: "hello agent" })
      expect(first.status).toBe(200)
      expect(first.body.turn_index).toBe(1)
      expect(first.body.stop_reason).toBe("end_turn")
      const events = first.body.events
      expect(events[0]).toMatchObject({ jsonrpc: "2.0", method: "session/prompt" })
      expect(events.at(-1)).toMatchObject({ jsonrpc: "2.0", id: events[0].id, result: { stopReason: "end_turn" } })
      expect(agentText(events)).toBe("echo: hello agent")

      const second = yield* turn(sid, { prompt: "history" })
      expect(second.status).toBe(200)
      expect(second.body.turn_index).toBe(2)
      expect(agentText(second.body.events)).toContain("hello agent")
      // One warm process served both turns.
      expect(startedPids(log).filter((p) => p === pid)).toHaveLength(1)

      const state = yield* request("GET", `/sessions/${sid}`, { token: appToken })
      expect(state.body).toMatchObject({ turn_count: 2, status: "open", agent: "scripted" })

      const closed = yield* request("DELETE", `/sessions/${sid}`, { token: appToken })
      expect(closed.body).toEqual({ ok: true })
      expect(isAlive(pid!)).toBe(false)
    }).pipe(Effect.provide(gateway(log))))

  it.scopedLive("the sweeper's soft close stops the agent process", () =>
    Effect.gen(function*() {
      const sid = (yield* request("POST", "/sessions", { token: appToken, body: { agent: "scripted" } })).body.session_id
      const [pid] = startedPids(log).slice(-1)
      expect(isAlive(pid!)).toBe(true)
      const sql = yield* SqlClient.SqlClient
      yield* sql`UPDATE sessions SET created_at = created_at - 7200 WHERE session_id = ${sid}`
      const counts = yield* sweepOnce
      expect(counts.soft_closed).toBe(1)
      expect(isAlive(pid!)).toBe(false)
      const r = yield* turn(sid, { prompt: "still there?" })
      expect(r.status).toBe(410)
    }).pipe(Effect.provide(gateway(log))))

  it.scopedLive("a session closed in the ledger behind the gateway's back loses its agent on the next sweep", () =>
    Effect.gen(function*() {
      const sid = (yield* request("POST", "/sessions", { token: appToken, body: { agent: "scripted" } })).body.session_id
      const [pid] = startedPids(log).slice(-1)
      // As `clawdforge sessions close` does, from another process.
      const sql = yield* SqlClient.SqlClient
      yield* sql`UPDATE sessions SET closed_at = ${Math.floor(Date.now() / 1000)} WHERE session_id = ${sid}`
      expect((yield* turn(sid, { prompt: "hi" })).status).toBe(410)
      expect(isAlive(pid!)).toBe(true)
      yield* sweepOnce
      expect(isAlive(pid!)).toBe(false)
      expect(yield* Effect.flatMap(AgentPool, (pool) => pool.live)).toBe(0)
    }).pipe(Effect.provide(gateway(log))))

  it.scopedLive("the pool limit is exact under 20 concurrent creates", () =>
    Effect.gen(function*() {
      const before = startedPids(log).length
      const replies = yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => i),
        () => request("POST", "/sessions", { token: appToken, body: { agent: "scripted" } }),
        { concurrency: "unbounded" }
      )
      const statuses = replies.map((r) => r.status)
      expect(statuses.filter((s) => s === 200)).toHaveLength(5)
      expect(statuses.filter((s) => s === 503)).toHaveLength(15)
      expect(yield* Effect.flatMap(AgentPool, (pool) => pool.live)).toBe(5)
      // Only the admitted sessions ever started an agent.
      const pids = startedPids(log).slice(before)
      expect(pids).toHaveLength(5)
      const list = yield* request("GET", "/sessions?status=open", { token: appToken })
      expect(list.body.count).toBe(5)
      for (const r of replies.filter((r) => r.status === 200)) {
        yield* request("DELETE", `/sessions/${r.body.session_id}`, { token: appToken })
      }
      expect(pids.filter(isAlive)).toEqual([])
      expect(yield* Effect.flatMap(AgentPool, (pool) => pool.live)).toBe(0)
    }).pipe(Effect.provide(gateway(log, { CLAWDFORGE_MAX_LIVE_SESSIONS: "5" }))))

  it.scopedLive("files are named before the prompt text and linked as resources", () =>
    Effect.gen(function*() {
      const sid = (yield* request("POST", "/sessions", { token: appToken, body: { agent: "scripted" } })).body.session_id
      const r = yield* turn(sid, { prompt: "look", files: ["notes.txt", "src/a.ts"] })
      expect(r.status).toBe(200)
      const blocks = r.body.events[0].params.prompt
      expect(blocks[0].text).toContain("notes.txt")
      expect(blocks[0].text).toContain("src/a.ts")
      expect(blocks.at(-1)).toEqual({ type: "text", text: "look" })
      expect(blocks.filter((b: any) => b.type === "resource_link")).toHaveLength(2)
    }).pipe(Effect.provide(gateway(log))))

  it.scopedLive("an agent that cannot start is a 502 and leaves no ledger row", () =>
    Effect.gen(function*() {
      const r = yield* request("POST", "/sessions", { token: appToken, body: { agent: "missing" } })
      expect(r.status).toBe(502)
      expect(r.body).toMatchObject({ ok: false, error: "agent_failed" })
      const list = yield* request("GET", "/sessions", { token: appToken })
      expect(list.body.count).toBe(0)
      expect(yield* Effect.flatMap(AgentPool, (pool) => pool.live)).toBe(0)
    }).pipe(Effect.provide(gateway(log, {
      CLAWDFORGE_AGENTS: JSON.stringify({ missing: { command: ["/nonexistent/agent-binary"] } })
    }))))
})
