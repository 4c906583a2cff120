/**
 * The seed's smoke tests (spec/sessions_smoke_v0_2.txt), ported: the whole HTTP contract
 * over a real loopback server, with the in-process fake pool standing in for agents.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Layer, Option } from "effect"
import { RunFailed } from "../src/domain/Errors.js"
import type { RunRequest } from "../src/domain/Run.js"
import { AppConfig } from "../src/services/config/AppConfig.js"
import { ClaudeRunner } from "../src/services/agents/ClaudeRunner.js"
import { Ledger } from "../src/services/ledger/Ledger.js"
import { sweepOnce } from "../src/services/sessions/Sweeper.js"
import { makeFakePool } from "./support/FakePool.js"
import { appName, appToken, layerTestGateway, otherToken, request } from "./support/TestGateway.js"

const gateway = (fake = makeFakePool(), runner?: Layer.Layer<ClaudeRunner>) =>
  layerTestGateway({ pool: fake.layer, ...(runner ? { runner } : {}) })

const createSession = (token: string, body: unknown = { agent: "claude" }) =>
  request("POST", "/sessions", { token, body })

const sessionRow = (id: string) =>
  Effect.flatMap(Ledger, (ledger) => ledger.findSession(id)).pipe(Effect.map(Option.getOrUndefined))

describe("/sessions auth + create", () => {
  it.scopedLive("create requires bearer auth", () =>
    Effect.gen(function*() {
      const r = yield* request("POST", "/sessions", { body: { agent: "claude" } })
      expect(r.status).toBe(401)
      expect(r.body).toMatchObject({ ok: false, error: "unauthorized" })
      const wrong = yield* createSession("not-a-token")
      expect(wrong.status).toBe(401)
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("create returns a session id and writes the ledger row", () =>
    Effect.gen(function*() {
      const r = yield* createSession(appToken)
      expect(r.status).toBe(200)
      expect(r.body.ok).toBe(true)
      expect(typeof r.body.session_id).toBe("string")
      expect(r.body.session_id.length).toBeGreaterThanOrEqual(16)
      expect(r.body.agent).toBe("claude")
      const row = yield* sessionRow(r.body.session_id)
      expect(row?.app_name).toBe(appName)
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("create stores meta", () =>
    Effect.gen(function*() {
      const r = yield* createSession(appToken, { agent: "claude", meta: { purpose: "smoke" } })
      expect(r.status).toBe(200)
      const row = yield* sessionRow(r.body.session_id)
      expect(row?.meta).toEqual({ purpose: "smoke" })
    }).pipe(Effect.provide(gateway())))
})

describe("turn round trip", () => {
  it.scopedLive("a turn returns the pool's events and updates the state", () => {
    const fake = makeFakePool()
    return Effect.gen(function*() {
      const sid = (yield* createSession(appToken)).body.session_id
      fake.control.nextTurnEvents = [
        {
          jsonrpc: "2.0",
          method: "session/update",
          params: { sessionUpdate: "agent_message_chunk", content: { type: "text", text: "hello" } }
        },
        { jsonrpc: "2.0", id: "req-1", result: { stopReason: "end_turn" } }
      ]
      const r2 = yield* request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt: "say hello" } })
      expect(r2.status).toBe(200)
      expect(r2.body.ok).toBe(true)
      expect(r2.body.session_id).toBe(sid)
      expect(r2.body.stop_reason).toBe("end_turn")
      expect(r2.body.turn_index).toBe(1)
      expect(r2.body.events).toHaveLength(2)
      const chunk = r2.body.events.find((e: any) => e.method === "session/update")
      expect(chunk.params.content.text).toBe("hello")
      expect(fake.control.prompts).toEqual(["say hello"])

      const r3 = yield* request("GET", `/sessions/${sid}`, { token: appToken })
      expect(r3.status).toBe(200)
      expect(r3.body.turn_count).toBe(1)
      expect(r3.body.last_turn_at).not.toBeNull()
      expect(r3.body.status).toBe("open")
      // The audit trail has the turn, committed with it.
      const turns = (yield* Effect.flatMap(Ledger, (l) => l.sessionEvents(sid))).filter((e) => e.event === "turn")
      expect(turns.map((e) => e.detail)).toEqual([
        { turn_index: 1, stop_reason: "end_turn", duration_ms: expect.any(Number) }
      ])
      expect(turns[0]!.at).toBe(r3.body.last_turn_at)
    }).pipe(Effect.provide(gateway(fake)))
  })

  it.scopedLive("turns sent together run in arrival order with consecutive indexes", () =>
    Effect.gen(function*() {
      const sid = (yield* createSession(appToken)).body.session_id
      const replies = yield* Effect.forEach(
        [1, 2, 3, 4, 5],
        (n) => request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt: `turn ${n}` } }),
        { concurrency: "unbounded" }
      )
      expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 200, 200])
      expect(replies.map((r) => r.body.turn_index).sort()).toEqual([1, 2, 3, 4, 5])
      const state = yield* request("GET", `/sessions/${sid}`, { token: appToken })
      expect(state.body.turn_count).toBe(5)
    }).pipe(Effect.provide(gateway())))
})

describe("per-app isolation", () => {
  it.scopedLive("another app's session is 404 on get, turn and delete", () =>
    Effect.gen(function*() {
      const sid = (yield* createSession(appToken)).body.session_id
      const get = yield* request("GET", `/sessions/${sid}`, { token: otherToken })
      expect(get.status).toBe(404)
      const turn = yield* request("POST", `/sessions/${sid}/turn`, { token: otherToken, body: { prompt: "hi" } })
      expect(turn.status).toBe(404)
      const del = yield* request("DELETE", `/sessions/${sid}`, { token: otherToken })
      expect(del.status).toBe(404)
      // Exactly as a session that does not exist at all.
      const missing = yield* request("GET", `/sessions/${"x".repeat(24)}`, { token: otherToken })
      expect(missing.status).toBe(404)
      expect(Object.keys(get.body).sort()).toEqual(Object.keys(missing.body).sort())
      expect(get.body.error).toBe(missing.body.error)
      // And the owner still has it, open.
      const own = yield* request("GET", `/sessions/${sid}`, { token: appToken })
      expect(own.body.status).toBe("open")
    }).pipe(Effect.provide(gateway())))
})

describe("close", () => {
  it.scopedLive("DELETE is idempotent", () =>
    Effect.gen(function*() {
      const sid = (yield* createSession(appToken)).body.session_id
      const r1 = yield* request("DELETE", `/sessions/${sid}`, { token: appToken })
      expect(r1.status).toBe(200)
      expect(r1.body).toEqual({ ok: true })
      const r2 = yield* request("DELETE", `/sessions/${sid}`, { token: appToken })
      expect(r2.status).toBe(200)
      expect(r2.body.already_closed).toBe(true)
      const events = yield* Effect.flatMap(Ledger, (l) => l.sessionEvents(sid))
      expect(events.filter((e) => e.event === "close")).toHaveLength(1)
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("a turn after close is 410", () =>
    Effect.gen(function*() {
      const sid = (yield* createSession(appToken)).body.session_id
      yield* request("DELETE", `/sessions/${sid}`, { token: appToken })
      const r2 = yield* request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt: "hi" } })
      expect(r2.status).toBe(410)
      expect(r2.body).toMatchObject({ ok: false, error: "session_closed" })
    }).pipe(Effect.provide(gateway())))
})

describe("list", () => {
  it.scopedLive("lists only the caller's sessions", () =>
    Effect.gen(function*() {
      const a1 = (yield* createSession(appToken)).body.session_id
      const a2 = (yield* createSession(appToken)).body.session_id
      const b1 = (yield* createSession(otherToken)).body.session_id
      const la = yield* request("GET", "/sessions", { token: appToken })
      expect(la.status).toBe(200)
      expect(la.body.count).toBe(2)
      expect(new Set(la.body.sessions.map((s: any) => s.session_id))).toEqual(new Set([a1, a2]))
      const lb = yield* request("GET", "/sessions", { token: otherToken })
      expect(lb.body.count).toBe(1)
      expect(lb.body.sessions[0].session_id).toBe(b1)
    }).pipe(Effect.provide(gateway())))
})

describe("TTL sweeper", () => {
  it.scopedLive("soft-closes a stale session and records sweep_close", () =>
    Effect.gen(function*() {
      const sid = (yield* createSession(appToken)).body.session_id
      const sql = yield* SqlClient.SqlClient
      const config = yield* AppConfig
      const backdated = Math.floor(Date.now() / 1000) - Duration.toSeconds(config.sessionTtl) - 60
      yield* sql`UPDATE sessions SET created_at = ${backdated} WHERE session_id = ${sid}`
      const counts = yield* sweepOnce
      expect(counts.soft_closed).toBe(1)
      const row = yield* sessionRow(sid)
      expect(row?.closed_at).not.toBeNull()
      const kinds = (yield* Effect.flatMap(Ledger, (l) => l.sessionEvents(sid))).map((e) => e.event)
      expect(kinds).toContain("create")
      expect(kinds).toContain("sweep_close")
      const turn = yield* request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt: "hi" } })
      expect(turn.status).toBe(410)
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("hard-deletes a session closed past the hard TTL, with its events", () =>
    Effect.gen(function*() {
      const sid = (yield* createSession(appToken)).body.session_id
      const sql = yield* SqlClient.SqlClient
      const closedLongAgo = Math.floor(Date.now() / 1000) - 604800 - 60
      yield* sql`UPDATE sessions SET closed_at = ${closedLongAgo} WHERE session_id = ${sid}`
      const counts = yield* sweepOnce
      expect(counts.hard_deleted).toBe(1)
      expect(yield* sessionRow(sid)).toBeUndefined()
      expect(yield* Effect.flatMap(Ledger, (l) => l.sessionEvents(sid))).toHaveLength(0)
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("a recent turn keeps a session alive", () =>
    Effect.gen(function*() {
      const sid = (yield* createSession(appToken)).body.session_id
      const sql = yield* SqlClient.SqlClient
      const now = Math.floor(Date.now() / 1000)
      yield* sql`UPDATE sessions SET created_at = ${now - 7200}, last_turn_at = ${now - 10} WHERE session_id = ${sid}`
      const counts = yield* sweepOnce
      expect(counts).toEqual({ soft_closed: 0, hard_deleted: 0 })
    }).pipe(Effect.provide(gateway())))
})

describe("pool", () => {
  it.scopedLive("a full pool answers 503, and closing frees a slot at once", () => {
    const fake = makeFakePool(2)
    return Effect.gen(function*() {
      const first = yield* createSession(appToken)
      expect(first.status).toBe(200)
      expect((yield* createSession(appToken)).status).toBe(200)
      const third = yield* createSession(appToken)
      expect(third.status).toBe(503)
      expect(third.body).toMatchObject({ ok: false, error: "pool_full" })
      yield* request("DELETE", `/sessions/${first.body.session_id}`, { token: appToken })
      expect((yield* createSession(appToken)).status).toBe(200)
    }).pipe(Effect.provide(gateway(fake)))
  })
})

describe("/run regression", () => {
  const cannedRunner = (reply: (request: RunRequest) => Effect.Effect<any, RunFailed>) =>
    Layer.succeed(ClaudeRunner, ClaudeRunner.make({ run: (_app, request) => reply(request) }))

  it.scopedLive("success keeps exactly the v0.1 shape", () =>
    Effect.gen(function*() {
      const r = yield* request("POST", "/run", {
        token: appToken,
        body: { prompt: "Reply with JSON: {\"hello\":\"world\"}", model: "sonnet" }
      })
      expect(r.status).toBe(200)
      expect(new Set(Object.keys(r.body))).toEqual(new Set(["ok", "result", "duration_ms", "stop_reason"]))
      expect(r.body).toEqual({ ok: true, result: { hello: "world" }, duration_ms: 123, stop_reason: "end_turn" })
    }).pipe(Effect.provide(gateway(
      makeFakePool(),
      cannedRunner(() =>
        Effect.succeed({ ok: true, result: { hello: "world" }, duration_ms: 123, stop_reason: "end_turn" })
      )
    ))))

  it.scopedLive("failure keeps the v0.1 error shape with a 502", () =>
    Effect.gen(function*() {
      const r = yield* request("POST", "/run", { token: appToken, body: { prompt: "x" } })
      expect(r.status).toBe(502)
      for (const key of ["ok", "error", "stderr", "duration_ms", "stop_reason"]) expect(r.body).toHaveProperty(key)
      expect(r.body.ok).toBe(false)
      expect(r.body.stderr).toBe("boom")
    }).pipe(Effect.provide(gateway(
      makeFakePool(),
      cannedRunner(() =>
        Effect.fail(
          new RunFailed({ error: "claude exit 1", message: "claude exit 1", stderr: "boom", duration_ms: 10, stop_reason: "error" })
        )
      )
    ))))

  it.scopedLive("/run requires auth", () =>
    Effect.gen(function*() {
      const r = yield* request("POST", "/run", { body: { prompt: "x" } })
      expect(r.status).toBe(401)
    }).pipe(Effect.provide(gateway())))
})
