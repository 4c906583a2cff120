/**
 * Fair share (issue 23): no app floods a session's mailbox (`max_queued_turns`, 429 `queue_full`,
 * a refused turn takes no index), holds every stream (`max_streams`, 429 `too_many_streams`) or
 * the ledger (`max_stored_mb`, 429 `storage_quota`; a stored turn keeps at most
 * CLAWDFORGE_TURN_MAX_STORED_MB of messages, `truncated`); an idempotent replay answers from the
 * stored turn, never from a second copy; `meta` is at most 16 KB; a stored turn's events are read in
 * pages; revoking an app ends its live sessions. Over a real loopback server with the scripted agent.
 */
import { SqlClient } from "@effect/sql"
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { poll } from "./support/Poll.js"
import { agentLogFile, isAlive, startedPids } from "./support/ScriptedAgent.js"
import { appToken, layerScriptedGateway, otherToken, request } from "./support/TestGateway.js"

const adminToken = "admin-token-0123456789abcdef"

const create = (token = appToken, body: Record<string, unknown> = {}) =>
  Effect.map(request("POST", "/sessions", { token, body: { agent: "scripted", ...body } }), (reply) => {
    expect(reply.status, JSON.stringify(reply.body)).toBe(200)
    return reply.body.session_id as string
  })

const queue = (sid: string, prompt: string, token = appToken) =>
  request("POST", `/sessions/${sid}/turns`, { token, body: { prompt } })

/** A POST that answers a stream: its status and (for an error) its JSON, without reading a stream's body. */
const post = (path: string, body: unknown, headers: Record<string, string> = {}, token = appToken) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.execute(
      HttpClientRequest.post(path).pipe(
        HttpClientRequest.bearerToken(token),
        HttpClientRequest.setHeaders(headers),
        HttpClientRequest.bodyUnsafeJson(body)
      )
    )
    const json = response.headers["content-type"]?.startsWith("application/json") ? yield* response.json : undefined
    return { status: response.status, body: json as any }
  }).pipe(Effect.scoped)

/** Opens a turn's stored stream and keeps it open until the scope closes; answers its status. */
const openStream = (sid: string, n: number, token = appToken) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.execute(
      HttpClientRequest.get(`/sessions/${sid}/turns/${n}/stream`).pipe(HttpClientRequest.bearerToken(token))
    )
    if (response.status !== 200) return { status: response.status, body: (yield* response.json) as any }
    // Read it in the background: the stream stays open while the scope does.
    yield* Stream.runDrain(response.stream).pipe(Effect.ignore, Effect.forkScoped)
    return { status: response.status, body: undefined as any }
  })

const turnRow = (sid: string, n: number) =>
  request("GET", `/sessions/${sid}/turns/${n}?events_limit=10000`, { token: appToken })

describe("max_queued_turns", () => {
  it.scopedLive("turns past the queue of a session are 429 queue_full on /turns, /turn and /turn/stream, and take no index", () =>
    Effect.gen(function*() {
      const sid = yield* create()
      expect((yield* queue(sid, "hang")).status).toBe(202)
      // The hung turn runs: three more wait.
      yield* poll(request("GET", `/sessions/${sid}/turns/1`, { token: appToken }), (r) => r.body.status === "running")
      for (let i = 0; i < 3; i++) expect((yield* queue(sid, `echo ${i}`)).status).toBe(202)
      const refused = yield* queue(sid, "echo four")
      expect(refused.status).toBe(429)
      expect(refused.body).toMatchObject({ ok: false, error: "queue_full", max_queued_turns: 3 })
      const turn = yield* post(`/sessions/${sid}/turn`, { prompt: "echo" })
      expect(turn.status).toBe(429)
      expect(turn.body).toMatchObject({ error: "queue_full" })
      const stream = yield* post(`/sessions/${sid}/turn/stream`, { prompt: "echo" })
      expect(stream.status).toBe(429)
      expect(stream.body).toMatchObject({ error: "queue_full" })
      // Another session of the same app has a queue of its own.
      const other = yield* create()
      expect((yield* queue(other, "echo")).status).toBe(202)

      // The running turn ends: the queue drains, and the next turn takes index 5 (none was taken by a refusal).
      expect((yield* request("POST", `/sessions/${sid}/cancel`, { token: appToken })).body.cancelled).toBe(true)
      yield* poll(request("GET", `/sessions/${sid}/turns/4`, { token: appToken }), (r) => r.body.status === "completed")
      const next = yield* queue(sid, "echo five")
      expect(next.body.turn_index).toBe(5)
      const limits = yield* request("GET", "/limits", { token: appToken })
      expect(limits.body.limits).toMatchObject({ max_queued_turns: 3, max_streams: 64, max_stored_mb: null })
    }).pipe(Effect.provide(layerScriptedGateway(agentLogFile(), { CLAWDFORGE_MAX_QUEUED_TURNS: "3" }))))

  it.scopedLive("an app's own max_queued_turns (CLAWDFORGE_APP_LIMITS) applies over the gateway's default", () =>
    Effect.gen(function*() {
      const sid = yield* create()
      expect((yield* queue(sid, "hang")).status).toBe(202)
      yield* poll(request("GET", `/sessions/${sid}/turns/1`, { token: appToken }), (r) => r.body.status === "running")
      expect((yield* queue(sid, "echo")).status).toBe(202)
      expect((yield* queue(sid, "echo")).body).toMatchObject({ error: "queue_full", max_queued_turns: 1 })
      const otherSid = yield* create(otherToken)
      expect((yield* queue(otherSid, "hang", otherToken)).status).toBe(202)
      for (let i = 0; i < 3; i++) expect((yield* queue(otherSid, "echo", otherToken)).status).toBe(202)
      yield* request("POST", `/sessions/${sid}/cancel`, { token: appToken })
      yield* request("POST", `/sessions/${otherSid}/cancel`, { token: otherToken })
    }).pipe(Effect.provide(layerScriptedGateway(agentLogFile(), {
      CLAWDFORGE_APP_LIMITS: JSON.stringify({ "app-a": { max_queued_turns: 1 } })
    }))))
})

describe("max_streams", () => {
  it.scopedLive("an app's open streams past its max_streams are 429 too_many_streams; another app's are not counted", () =>
    Effect.gen(function*() {
      const sid = yield* create()
      expect((yield* queue(sid, "hang")).status).toBe(202)
      const held = yield* Effect.scoped(Effect.gen(function*() {
        expect((yield* openStream(sid, 1)).status).toBe(200)
        expect((yield* openStream(sid, 1)).status).toBe(200)
        const third = yield* openStream(sid, 1)
        expect(third.status).toBe(429)
        expect(third.body).toMatchObject({ ok: false, error: "too_many_streams", max_streams: 2 })
        const live = yield* post(`/sessions/${sid}/turn/stream`, { prompt: "echo" })
        expect(live.status).toBe(429)
        expect(live.body).toMatchObject({ error: "too_many_streams" })
        // Refused before it was accepted: no turn 2.
        expect((yield* request("GET", `/sessions/${sid}/turns/2`, { token: appToken })).status).toBe(404)
        const otherSid = yield* create(otherToken)
        expect((yield* queue(otherSid, "echo", otherToken)).status).toBe(202)
        return yield* openStream(otherSid, 1, otherToken)
      }))
      expect(held.status).toBe(200)
      // The streams closed with their scope: their slots are free again.
      yield* poll(Effect.scoped(openStream(sid, 1)), (r) => r.status === 200)
      yield* request("POST", `/sessions/${sid}/cancel`, { token: appToken })
    }).pipe(Effect.provide(layerScriptedGateway(agentLogFile(), { CLAWDFORGE_MAX_STREAMS_PER_APP: "2" }))))
})

describe("stored bytes", () => {
  it.scopedLive("past CLAWDFORGE_TURN_MAX_STORED_MB the stored turn is truncated; the live stream carries everything", () =>
    Effect.gen(function*() {
      const sid = yield* create()
      const client = yield* HttpClient.HttpClient
      const text = yield* client.execute(
        HttpClientRequest.post(`/sessions/${sid}/turn/stream`).pipe(
          HttpClientRequest.bearerToken(appToken),
          HttpClientRequest.bodyUnsafeJson({ prompt: "chunks 12000" })
        )
      ).pipe(Effect.flatMap((response) => response.text), Effect.scoped)
      expect(text.split("\nevent: acp\n").length - 1 + (text.startsWith("event: acp\n") ? 1 : 0)).toBeGreaterThan(12000)
      expect(text).toContain("chunk 12000")
      const stored = yield* turnRow(sid, 1)
      expect(stored.body).toMatchObject({ status: "completed", truncated: true })
      expect(JSON.stringify(stored.body.events).length).toBeLessThanOrEqual(1024 * 1024)
      expect(stored.body.events.length).toBeLessThan(12000)
      // A small turn is whole.
      yield* request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt: "echo small" } })
      expect((yield* turnRow(sid, 2)).body).toMatchObject({ status: "completed", truncated: false })
    }).pipe(Effect.provide(layerScriptedGateway(agentLogFile(), { CLAWDFORGE_TURN_MAX_STORED_MB: "1" }))))

  it.scopedLive("an idempotent replay answers from the stored turn (truncated included), with no second copy of the reply", () =>
    Effect.gen(function*() {
      const sid = yield* create()
      const send = post(`/sessions/${sid}/turn`, { prompt: "chunks 12000" }, { "idempotency-key": "big-1" })
      const first = yield* send
      expect(first.status).toBe(200)
      expect(first.body.events.length).toBeGreaterThan(12000)
      const again = yield* send
      expect(again.status).toBe(200)
      expect(again.body).toMatchObject({ ok: true, turn_index: 1, stop_reason: "end_turn", truncated: true })
      expect(again.body.events).toEqual((yield* turnRow(sid, 1)).body.events)
      const sql = yield* SqlClient.SqlClient
      const kept = yield* sql<{ n: unknown }>`SELECT max(length(body)) AS n FROM idempotency_keys`
      expect(Number(kept[0]!.n)).toBeLessThan(1024)
    }).pipe(Effect.provide(layerScriptedGateway(agentLogFile(), { CLAWDFORGE_TURN_MAX_STORED_MB: "1" }))))

  it.scopedLive("an app past its max_stored_mb gets 429 storage_quota on creates and turns; another app does not", () =>
    Effect.gen(function*() {
      const sid = yield* create()
      expect((yield* request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt: "chunks 8000" } })).status)
        .toBe(200)
      const turn = yield* request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt: "echo" } })
      expect(turn.status).toBe(429)
      expect(turn.body).toMatchObject({ ok: false, error: "storage_quota", max_stored_mb: 1 })
      const created = yield* request("POST", "/sessions", { token: appToken, body: { agent: "scripted" } })
      expect(created.status).toBe(429)
      expect(created.body).toMatchObject({ error: "storage_quota" })
      const other = yield* create(otherToken)
      expect((yield* request("POST", `/sessions/${other}/turn`, { token: otherToken, body: { prompt: "echo" } })).status)
        .toBe(200)
      expect((yield* request("GET", "/limits", { token: appToken })).body.use.stored_mb).toBeGreaterThan(1)
    }).pipe(Effect.provide(layerScriptedGateway(agentLogFile(), {
      CLAWDFORGE_APP_LIMITS: JSON.stringify({ "app-a": { max_stored_mb: 1 } })
    }))))
})

describe("meta and paging", () => {
  it.scopedLive("meta over 16 KB is 400; 16 KB passes", () =>
    Effect.gen(function*() {
      const big = yield* request("POST", "/sessions", {
        token: appToken,
        body: { agent: "scripted", meta: { blob: "x".repeat(17 * 1024) } }
      })
      expect(big.status).toBe(400)
      expect(big.body).toMatchObject({ ok: false, error: "bad_request" })
      expect(big.body.message).toContain("meta")
      yield* create(appToken, { meta: { blob: "x".repeat(16 * 1024 - 20) } })
    }).pipe(Effect.provide(layerScriptedGateway(agentLogFile()))))

  it.scopedLive("a stored turn's events come in pages (events_after, events_limit) that make the whole turn", () =>
    Effect.gen(function*() {
      const sid = yield* create()
      const whole = yield* request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt: "chunks 2500" } })
      expect(whole.status).toBe(200)
      const pages: Array<any> = []
      let after = 0
      for (;;) {
        const page = yield* request("GET", `/sessions/${sid}/turns/1?events_after=${after}&events_limit=700`, { token: appToken })
        expect(page.status).toBe(200)
        expect(page.body.events.length).toBeLessThanOrEqual(700)
        expect(page.body.events_total).toBe(whole.body.events.length)
        pages.push(...page.body.events)
        if (page.body.next_events_after === null) break
        after = page.body.next_events_after
      }
      expect(pages).toEqual(whole.body.events)
      // By default a page, not the whole turn.
      const first = yield* request("GET", `/sessions/${sid}/turns/1`, { token: appToken })
      expect(first.body.events.length).toBe(1000)
      expect(first.body.next_events_after).toBe(1000)
      for (const bad of ["events_limit=0", "events_limit=100001", "events_after=-1", "events_after=x"]) {
        const reply = yield* request("GET", `/sessions/${sid}/turns/1?${bad}`, { token: appToken })
        expect(reply.status, bad).toBe(400)
        expect(reply.body).toMatchObject({ ok: false, error: "bad_request" })
      }
    }).pipe(Effect.provide(layerScriptedGateway(agentLogFile()))))
})

describe("revocation", () => {
  const revokedLog = agentLogFile()
  it.scopedLive("revoking an app ends its live sessions within 5 s: the running turn cancelled, the agent stopped, the slot freed, audit revoked", () =>
    Effect.gen(function*() {
      const added = yield* request("POST", "/admin/apps", { token: adminToken, body: { name: "app-c" } })
      expect(added.status).toBe(201)
      const token = added.body.token as string
      const sid = yield* create(token)
      expect((yield* queue(sid, "hang", token)).status).toBe(202)
      expect((yield* queue(sid, "echo queued", token)).status).toBe(202)
      yield* poll(request("GET", `/admin/sessions/${sid}/turns/1`, { token: adminToken }), (r) => r.body.status === "running")
      const pool = yield* request("GET", "/admin/overview", { token: adminToken })
      expect(pool.body.pool.live).toBe(1)

      const started = Date.now()
      expect((yield* request("DELETE", "/admin/apps/app-c", { token: adminToken })).status).toBe(200)
      yield* poll(request("GET", "/admin/overview", { token: adminToken }), (r) => r.body.pool.live === 0)
      expect(Date.now() - started).toBeLessThan(5000)
      const session = yield* request("GET", `/admin/sessions/${sid}`, { token: adminToken })
      expect(session.body.closed_at).not.toBeNull()
      expect(session.body.events.map((e: any) => e.event)).toContain("revoked")
      for (const n of [1, 2]) {
        const turn = yield* request("GET", `/admin/sessions/${sid}/turns/${n}`, { token: adminToken })
        expect(turn.body.status).toBe("cancelled")
      }
      // Its agent is gone, and its token with it.
      for (const pid of startedPids(revokedLog)) expect(isAlive(pid)).toBe(false)
      yield* poll(request("GET", "/sessions", { token }), (r) => r.status === 401, "5 seconds")
    }).pipe(Effect.provide(layerScriptedGateway(revokedLog, { CLAWDFORGE_ADMIN_TOKEN: adminToken }))))
})
