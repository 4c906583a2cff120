/**
 * Delivery (issue 11): every turn stored with its messages, async turns, resumable streams, and
 * turns a dead gateway left unfinished read `interrupted`. Against the scripted agent as a real
 * child process, over a real HTTP server (the SIGKILL case runs the compiled gateway).
 */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { it as itNode } from "vitest"
import { Ledger } from "../src/services/ledger/Ledger.js"
import { api, dataDir, startGateway } from "./support/GatewayProcess.js"
import { ledgerIn, queryLedger } from "./support/Ledgers.js"
import { agentLogFile, scriptedAgents } from "./support/ScriptedAgent.js"
import { appToken, layerScriptedGateway, otherToken, request } from "./support/TestGateway.js"

const gateway = () => layerScriptedGateway(agentLogFile())

interface SseEvent {
  readonly event: string
  readonly id: string
  readonly data: any
}

const parseBlock = (block: string): SseEvent => {
  const lines = block.split("\n")
  const field = (name: string) => lines.find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2)
  return { event: field("event")!, id: field("id")!, data: JSON.parse(field("data")!) }
}

/** Sends the request and reads its event stream: to its end, or until `stopAfter` events, then hangs up. */
const readStream = (req: HttpClientRequest.HttpClientRequest, stopAfter = Infinity) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.execute(req)
    if (response.status !== 200) return { status: response.status, events: [] as Array<SseEvent>, body: yield* response.json }
    const events: Array<SseEvent> = []
    let buffer = ""
    yield* response.stream.pipe(
      Stream.decodeText(),
      Stream.takeWhile(() => events.length < stopAfter),
      Stream.runForEach((chunk) =>
        Effect.sync(() => {
          buffer += chunk
          for (let at = buffer.indexOf("\n\n"); at >= 0; at = buffer.indexOf("\n\n")) {
            events.push(parseBlock(buffer.slice(0, at)))
            buffer = buffer.slice(at + 2)
          }
        })
      )
    )
    return { status: response.status, events: events.slice(0, stopAfter), body: undefined as any }
  }).pipe(Effect.scoped)

const postStream = (sid: string, prompt: string) =>
  HttpClientRequest.post(`/sessions/${sid}/turn/stream`).pipe(
    HttpClientRequest.bearerToken(appToken),
    HttpClientRequest.bodyUnsafeJson({ prompt })
  )

const getStream = (sid: string, n: number | string, lastEventId?: string, token = appToken) =>
  HttpClientRequest.get(`/sessions/${sid}/turns/${n}/stream`).pipe(
    HttpClientRequest.bearerToken(token),
    lastEventId === undefined ? (r) => r : HttpClientRequest.setHeader("Last-Event-ID", lastEventId)
  )

const create = Effect.map(
  request("POST", "/sessions", { token: appToken, body: { agent: "scripted" } }),
  (r) => r.body.session_id as string
)

/** Polls the turn until it is over. */
const awaitTurn = (sid: string, n: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + 20_000
    for (;;) {
      const r = yield* request("GET", `/sessions/${sid}/turns/${n}`, { token: appToken })
      if (r.status !== 200 || !["queued", "running"].includes(r.body.status)) return r
      if (Date.now() > deadline) throw new Error(`turn ${n} did not end: ${JSON.stringify(r.body)}`)
      yield* Effect.sleep("20 millis")
    }
  })

const ids = (events: ReadonlyArray<SseEvent>) => events.map((e) => e.id)

describe("resumable streams", () => {
  it.scopedLive("a stream cut in the middle resumes after Last-Event-ID: nothing twice, nothing missing", () =>
    Effect.gen(function*() {
      const sid = yield* create
      // 40 chunks 25 ms apart: hang up after 8 events, while the agent is still talking.
      const first = yield* readStream(postStream(sid, "chunks 40 25"), 8)
      expect(first.status).toBe(200)
      expect(ids(first.events)).toEqual(Array.from({ length: 8 }, (_, i) => `1.${i + 1}`))
      const rest = yield* readStream(getStream(sid, 1, first.events.at(-1)!.id))
      expect(rest.status).toBe(200)
      const all = [...first.events, ...rest.events]
      // Consecutive ids from 1.1 to the end event.
      expect(ids(all)).toEqual(Array.from({ length: all.length }, (_, i) => `1.${i + 1}`))
      expect(all.at(-1)).toMatchObject({
        event: "done",
        data: { ok: true, session_id: sid, turn_index: 1, stop_reason: "end_turn" }
      })
      // Against the stored turn: the same messages, in the same order.
      const stored = yield* request("GET", `/sessions/${sid}/turns/1`, { token: appToken })
      expect(stored.body).toMatchObject({ ok: true, status: "completed", turn_index: 1, stop_reason: "end_turn" })
      expect(all.slice(0, -1).map((e) => e.data)).toEqual(stored.body.events)
      expect(stored.body.events).toHaveLength(42)
      expect(stored.body.text).toBe(Array.from({ length: 40 }, (_, i) => `chunk ${i + 1}`).join(""))

      // Once stored: the whole stream again, and resumed from any event.
      const replay = yield* readStream(getStream(sid, 1))
      expect(replay.events).toEqual(all)
      const fromMiddle = yield* readStream(getStream(sid, 1, "1.20"))
      expect(fromMiddle.events).toEqual(all.slice(20))
      const afterEnd = yield* readStream(getStream(sid, 1, all.at(-1)!.id))
      expect(afterEnd).toMatchObject({ status: 200, events: [] })
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("a turn's stream follows it live from the start while it runs, and a failed turn ends with error", () =>
    Effect.gen(function*() {
      const sid = yield* create
      const accepted = yield* request("POST", `/sessions/${sid}/turns`, { token: appToken, body: { prompt: "chunks 10 20" } })
      expect(accepted.status).toBe(202)
      const live = yield* readStream(getStream(sid, 1))
      expect(ids(live.events)).toEqual(Array.from({ length: 13 }, (_, i) => `1.${i + 1}`))
      expect(live.events.at(-1)!.event).toBe("done")
      const stored = yield* request("GET", `/sessions/${sid}/turns/1`, { token: appToken })
      expect(live.events.slice(0, -1).map((e) => e.data)).toEqual(stored.body.events)

      // A crash: stored as failed, with what the agent said; its stream ends with `error`.
      const crashed = yield* request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt: "crash" } })
      expect(crashed.status).toBe(502)
      const failed = yield* request("GET", `/sessions/${sid}/turns/2`, { token: appToken })
      expect(failed.body).toMatchObject({
        status: "failed",
        stop_reason: null,
        error: { error: "agent_failed" },
        text: "about to crash"
      })
      const failedStream = yield* readStream(getStream(sid, 2))
      expect(failedStream.events.at(-1)).toMatchObject({ event: "error", data: { ok: false, error: "agent_failed" } })
      expect(failedStream.events.slice(0, -1).map((e) => e.data)).toEqual(failed.body.events)
      // The next turn's index follows the failed one.
      const next = yield* request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt: "after" } })
      expect(next.body.turn_index).toBe(3)
    }).pipe(Effect.provide(gateway())))
})

describe("async turns", () => {
  it.scopedLive("POST /turns answers 202 with the turn's index at once; polled to completion", () =>
    Effect.gen(function*() {
      const sid = yield* create
      const startedAt = Date.now()
      const accepted = yield* request("POST", `/sessions/${sid}/turns`, { token: appToken, body: { prompt: "sleep 400" } })
      expect(Date.now() - startedAt).toBeLessThan(350)
      expect(accepted.status).toBe(202)
      expect(accepted.body).toEqual({ ok: true, session_id: sid, turn_index: 1, status: "queued" })
      // Recorded before the answer: the session counts it, and it reads queued or running.
      const state = yield* request("GET", `/sessions/${sid}`, { token: appToken })
      expect(state.body.turn_count).toBe(1)
      const early = yield* request("GET", `/sessions/${sid}/turns/1`, { token: appToken })
      expect(["queued", "running"]).toContain(early.body.status)
      const done = yield* awaitTurn(sid, 1)
      expect(done.body).toMatchObject({
        ok: true,
        session_id: sid,
        turn_index: 1,
        status: "completed",
        prompt: "sleep 400",
        stop_reason: "end_turn",
        text: "echo: sleep 400",
        error: null,
        // The scripted agent counts a token per character: "sleep 400", "echo: sleep 400"; it reports no cost.
        usage: { input_tokens: 9, output_tokens: 15, total_tokens: 24, cost_usd: null }
      })
      expect(done.body.duration_ms).toBeGreaterThanOrEqual(400)
      expect(done.body.ended_at).toBeGreaterThanOrEqual(done.body.started_at)
      expect(done.body.events[0]).toMatchObject({ method: "session/prompt" })
      expect(done.body.events.at(-1)).toMatchObject({ result: { stopReason: "end_turn" } })
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("two queued async turns run in order; the list pages them oldest first, without events", () =>
    Effect.gen(function*() {
      const sid = yield* create
      const one = yield* request("POST", `/sessions/${sid}/turns`, { token: appToken, body: { prompt: "sleep 300" } })
      const two = yield* request("POST", `/sessions/${sid}/turns`, { token: appToken, body: { prompt: "history" } })
      expect([one.body.turn_index, two.body.turn_index]).toEqual([1, 2])
      expect(two.body.status).toBe("queued")
      const second = yield* awaitTurn(sid, 2)
      const first = yield* request("GET", `/sessions/${sid}/turns/1`, { token: appToken })
      expect(first.body.status).toBe("completed")
      // The second ran after the first: the agent's history already holds the first prompt.
      expect(second.body).toMatchObject({ status: "completed", text: `history: ${JSON.stringify(["sleep 300"])}` })
      expect(second.body.started_at).toBeGreaterThanOrEqual(first.body.ended_at)

      const list = yield* request("GET", `/sessions/${sid}/turns`, { token: appToken })
      expect(list.body.count).toBe(2)
      expect(list.body.turns.map((t: any) => [t.turn_index, t.status, t.prompt])).toEqual([
        [1, "completed", "sleep 300"],
        [2, "completed", "history"]
      ])
      expect(list.body.turns[0]).not.toHaveProperty("events")
      expect(list.body.turns[0]).not.toHaveProperty("text")
      const page = yield* request("GET", `/sessions/${sid}/turns?after=1&limit=5`, { token: appToken })
      expect(page.body.turns.map((t: any) => t.turn_index)).toEqual([2])
      const first1 = yield* request("GET", `/sessions/${sid}/turns?limit=1`, { token: appToken })
      expect(first1.body.turns.map((t: any) => t.turn_index)).toEqual([1])
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("closing the session under queued turns stores them cancelled; the hard delete removes them", () =>
    Effect.gen(function*() {
      const sid = yield* create
      yield* request("POST", `/sessions/${sid}/turns`, { token: appToken, body: { prompt: "hang" } })
      yield* request("POST", `/sessions/${sid}/turns`, { token: appToken, body: { prompt: "never runs" } })
      yield* request("DELETE", `/sessions/${sid}`, { token: appToken })
      const list = yield* request("GET", `/sessions/${sid}/turns`, { token: appToken })
      expect(list.body.turns.map((t: any) => [t.status, t.error?.error])).toEqual([
        ["cancelled", "session_closed"],
        ["cancelled", "session_closed"]
      ])
      const ledger = yield* Ledger
      const sql = yield* SqlClient.SqlClient
      yield* ledger.deleteClosedBefore(Math.floor(Date.now() / 1000) + 10)
      const [left] = yield* sql<{ n: number }>`SELECT count(*) AS n FROM turns WHERE session_id = ${sid}`
      expect(left!.n).toBe(0)
    }).pipe(Effect.provide(gateway())))
})

describe("bad input", () => {
  it.scopedLive("after/limit out of range, an unknown turn, another app's turn, a malformed Last-Event-ID: 4xx, nothing changed", () =>
    Effect.gen(function*() {
      const sid = yield* create
      yield* request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt: "one" } })
      const sql = yield* SqlClient.SqlClient
      const snapshot = Effect.all([
        sql`SELECT session_id, turn_index, status FROM turns ORDER BY session_id, turn_index`,
        sql`SELECT sum(turn_count) AS count FROM sessions`
      ])
      const before = yield* snapshot
      const shaped = (r: { status: number; body: any }, status: number, error: string, what: string) => {
        expect(r.status, what).toBe(status)
        expect(r.body, what).toMatchObject({ ok: false, error, message: expect.any(String) })
      }
      for (const query of ["after=-1", "after=abc", "after=1.5", "limit=0", "limit=1001", "limit=x"]) {
        shaped(yield* request("GET", `/sessions/${sid}/turns?${query}`, { token: appToken }), 400, "bad_request", query)
      }
      shaped(yield* request("GET", `/sessions/${sid}/turns/2`, { token: appToken }), 404, "turn_not_found", "turn 2")
      shaped(yield* request("GET", `/sessions/${sid}/turns/0`, { token: appToken }), 400, "bad_request", "turn 0")
      shaped(yield* request("GET", `/sessions/${sid}/turns/abc`, { token: appToken }), 400, "bad_request", "turn abc")
      // Another app's session and its turn do not exist for this caller.
      for (const path of [`/sessions/${sid}/turns`, `/sessions/${sid}/turns/1`, `/sessions/${sid}/turns/1/stream`]) {
        shaped(yield* request("GET", path, { token: otherToken }), 404, "session_not_found", path)
      }
      shaped(
        yield* request("POST", `/sessions/${sid}/turns`, { token: otherToken, body: { prompt: "x" } }),
        404,
        "session_not_found",
        "other app's POST /turns"
      )
      shaped(yield* request("GET", `/sessions/${"z".repeat(24)}/turns/1`, { token: appToken }), 404, "session_not_found", "none")
      shaped(yield* request("GET", `/sessions/${sid}/turns/9/stream`, { token: appToken }), 404, "turn_not_found", "stream 9")
      for (const lastEventId of ["x", "1", "1.", ".1", "1.2.3", "1.-1", "2.1"]) {
        const r = yield* readStream(getStream(sid, 1, lastEventId))
        shaped({ status: r.status, body: r.body }, 400, "bad_request", `Last-Event-ID ${lastEventId}`)
      }
      shaped(
        yield* request("POST", `/sessions/${sid}/turns`, { token: appToken, body: { prompt: "" } }),
        400,
        "bad_request",
        "empty prompt"
      )
      expect(yield* snapshot).toEqual(before)
    }).pipe(Effect.provide(gateway())))
})

describe("interrupted, never missing", () => {
  itNode("SIGKILL during a turn with another queued: after the restart both read interrupted, the next index follows", async () => {
    const data = dataDir()
    const env = { CLAWDFORGE_AGENTS: scriptedAgents(agentLogFile()) }
    let gw = await startGateway(env, data)
    try {
      const sid = (await api(gw, "POST", "/sessions", { agent: "scripted" })).body.session_id as string
      expect((await api(gw, "POST", `/sessions/${sid}/turn`, { prompt: "first" })).body.turn_index).toBe(1)
      const running = await api(gw, "POST", `/sessions/${sid}/turns`, { prompt: "hang" })
      const queued = await api(gw, "POST", `/sessions/${sid}/turns`, { prompt: "behind it" })
      expect([running.status, running.body.turn_index, queued.status, queued.body.turn_index]).toEqual([202, 2, 202, 3])
      // Wait until the agent is working on turn 2.
      const deadline = Date.now() + 10_000
      while ((await api(gw, "GET", `/sessions/${sid}/turns/2`)).body.status !== "running") {
        if (Date.now() > deadline) throw new Error("turn 2 never ran")
        await new Promise((r) => setTimeout(r, 20))
      }
      const listed = await api(gw, "GET", `/sessions/${sid}/turns`)
      expect(listed.body.turns.map((t: any) => t.status)).toEqual(["completed", "running", "queued"])
      gw.child.kill("SIGKILL")
      await gw.exited

      gw = await startGateway(env, data)
      const after = await api(gw, "GET", `/sessions/${sid}/turns`)
      expect(after.body.turns.map((t: any) => [t.turn_index, t.status, t.error?.error ?? null])).toEqual([
        [1, "completed", null],
        [2, "interrupted", "turn_interrupted"],
        [3, "interrupted", "turn_interrupted"]
      ])
      const stream = await fetch(`${gw.url}/sessions/${sid}/turns/2/stream`, { headers: { authorization: `Bearer ${appToken}` } })
      const text = await stream.text()
      expect(text).toContain("event: error")
      expect(text).toContain("turn_interrupted")
      const next = await api(gw, "POST", `/sessions/${sid}/turn`, { prompt: "after the crash" })
      expect(next.status).toBe(200)
      expect(next.body.turn_index).toBe(4)
      expect((await api(gw, "GET", `/sessions/${sid}`)).body.turn_count).toBe(4)
    } finally {
      await gw.stop()
    }
    const audit = await queryLedger(
      await ledgerIn(data),
      "SELECT detail FROM session_events WHERE event = 'turn_interrupted' ORDER BY id"
    )
    expect(audit.map((r) => JSON.parse(r.detail))).toEqual([
      { turn_index: 2, accepted_at: expect.any(Number) },
      { turn_index: 3, accepted_at: expect.any(Number) }
    ])
  }, 60_000)

  itNode("a clean stop (SIGTERM) leaves no turn unfinished: each one's end is stored before the gateway exits", async () => {
    const data = dataDir()
    const env = { CLAWDFORGE_AGENTS: scriptedAgents(agentLogFile()) }
    let gw = await startGateway(env, data)
    try {
      const sid = (await api(gw, "POST", "/sessions", { agent: "scripted" })).body.session_id as string
      await api(gw, "POST", `/sessions/${sid}/turns`, { prompt: "hang" })
      await api(gw, "POST", `/sessions/${sid}/turns`, { prompt: "behind it" })
      const deadline = Date.now() + 10_000
      while ((await api(gw, "GET", `/sessions/${sid}/turns/1`)).body.status !== "running") {
        if (Date.now() > deadline) throw new Error("turn 1 never ran")
        await new Promise((r) => setTimeout(r, 20))
      }
      expect(await gw.stop("SIGTERM")).toBe(0)
      gw = await startGateway(env, data)
      const after = await api(gw, "GET", `/sessions/${sid}/turns`)
      const [first, second] = after.body.turns
      expect(first).toMatchObject({ turn_index: 1, status: "cancelled", stop_reason: "cancelled", error: null })
      // The queued turn ran in the drain's grace (a quick one), or the stop stored it interrupted.
      expect(second.turn_index).toBe(2)
      expect(["completed", "interrupted"]).toContain(second.status)
      expect((await api(gw, "POST", `/sessions/${sid}/turn`, { prompt: "next" })).body.turn_index).toBe(3)
    } finally {
      await gw.stop()
    }
    // The stop stored every turn's end itself (an interrupted one with its audit event).
    const db = await ledgerIn(data)
    const stored = (await queryLedger(db, "SELECT status FROM turns ORDER BY turn_index")).map((r) => r.status)
    const audited = await queryLedger(db, "SELECT count(*) AS n FROM session_events WHERE event = 'turn_interrupted'")
    expect(audited.map((r) => r.n)).toEqual([stored.filter((status) => status === "interrupted").length])
  }, 60_000)
})
