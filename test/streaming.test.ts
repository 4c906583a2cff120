/** Streaming turns (server-sent events) and cancel, against the scripted agent as a real process. */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Stream } from "effect"
import { agentLogFile } from "./support/ScriptedAgent.js"
import { streamTurn } from "./support/Sse.js"
import { appToken, layerScriptedGateway, otherToken, request } from "./support/TestGateway.js"

const gateway = () => layerScriptedGateway(agentLogFile())

const create = Effect.map(
  request("POST", "/sessions", { token: appToken, body: { agent: "scripted" } }),
  (r) => r.body.session_id as string
)

describe("streaming turns", () => {
  it.scopedLive("one `acp` event per message, in order, then `done` with the turn reply", () =>
    Effect.gen(function*() {
      const sid = yield* create
      const r = yield* streamTurn(sid, "chunks 3")
      expect(r.status).toBe(200)
      expect(r.type).toContain("text/event-stream")
      const acp = r.events.filter((e) => e.event === "acp").map((e) => e.data)
      expect(acp[0]).toMatchObject({ method: "session/prompt" })
      expect(acp.filter((m) => m.method === "session/update").map((m) => m.params.update.content.text)).toEqual([
        "chunk 1",
        "chunk 2",
        "chunk 3"
      ])
      expect(acp.at(-1)).toMatchObject({ result: { stopReason: "end_turn" } })
      const last = r.events.at(-1)!
      expect(last.event).toBe("done")
      expect(last.data).toEqual({
        ok: true,
        session_id: sid,
        turn_index: 1,
        stop_reason: "end_turn",
        // A token per character, as the scripted agent counts: "chunks 3", then three "chunk n".
        usage: { input_tokens: 8, output_tokens: 21, total_tokens: 29, cost_usd: null },
        // What the turn did to its workspace: nothing (the scripted agent keeps its history in HOME).
        changes: []
      })
      // The same turn through /turn has the same messages.
      const plain = yield* request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt: "chunks 3" } })
      expect(plain.body.events.length).toBe(acp.length)
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("a failing agent ends the stream with an `error` event", () =>
    Effect.gen(function*() {
      const sid = yield* create
      const r = yield* streamTurn(sid, "crash")
      expect(r.status).toBe(200)
      const last = r.events.at(-1)!
      expect(last.event).toBe("error")
      expect(last.data).toMatchObject({ ok: false, error: "agent_failed" })
      expect(typeof last.data.message).toBe("string")
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("errors known before the turn starts are plain HTTP errors", () =>
    Effect.gen(function*() {
      const sid = yield* create
      const other = yield* request("POST", `/sessions/${sid}/turn/stream`, { token: otherToken, body: { prompt: "hi" } })
      expect(other.status).toBe(404)
      yield* request("DELETE", `/sessions/${sid}`, { token: appToken })
      const closed = yield* request("POST", `/sessions/${sid}/turn/stream`, { token: appToken, body: { prompt: "hi" } })
      expect(closed.status).toBe(410)
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("a client that disconnects does not stop the turn or lose it from the ledger", () =>
    Effect.gen(function*() {
      const sid = yield* create
      const client = yield* HttpClient.HttpClient
      // Read the first event, then hang up while the agent is still working.
      yield* client.execute(
        HttpClientRequest.post(`/sessions/${sid}/turn/stream`).pipe(
          HttpClientRequest.bearerToken(appToken),
          HttpClientRequest.bodyUnsafeJson({ prompt: "sleep 600" })
        )
      ).pipe(
        Effect.flatMap((response) => response.stream.pipe(Stream.take(1), Stream.runDrain)),
        Effect.scoped
      )
      const next = yield* request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt: "after" } })
      expect(next.status).toBe(200)
      expect(next.body.turn_index).toBe(2)
      const state = yield* request("GET", `/sessions/${sid}`, { token: appToken })
      expect(state.body.turn_count).toBe(2)
    }).pipe(Effect.provide(gateway())))
})

describe("cancel", () => {
  it.scopedLive("cancels a running turn, which ends with stop_reason cancelled; the session stays usable", () =>
    Effect.gen(function*() {
      const sid = yield* create
      const idle = yield* request("POST", `/sessions/${sid}/cancel`, { token: appToken })
      expect(idle.body).toEqual({ ok: true, cancelled: false })

      const running = yield* Effect.fork(
        request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt: "hang" } })
      )
      // Cancel once the turn is running (the agent has said "hanging").
      let cancelled = false
      for (let i = 0; i < 100 && !cancelled; i++) {
        yield* Effect.sleep("20 millis")
        cancelled = (yield* request("POST", `/sessions/${sid}/cancel`, { token: appToken })).body.cancelled
      }
      expect(cancelled).toBe(true)
      const hung = yield* Fiber.join(running)
      expect(hung.status).toBe(200)
      expect(hung.body.stop_reason).toBe("cancelled")
      expect(hung.body.events.some((e: any) => e.method === "session/cancel")).toBe(true)

      const next = yield* request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt: "still here" } })
      expect(next.body).toMatchObject({ stop_reason: "end_turn", turn_index: 2 })
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("follows the 404 rules", () =>
    Effect.gen(function*() {
      const sid = yield* create
      expect((yield* request("POST", `/sessions/${sid}/cancel`, { token: otherToken })).status).toBe(404)
      expect((yield* request("POST", `/sessions/${"y".repeat(24)}/cancel`, { token: appToken })).status).toBe(404)
      expect((yield* request("POST", `/sessions/${sid}/cancel`)).status).toBe(401)
    }).pipe(Effect.provide(gateway())))
})
