/**
 * Both published clients against a live gateway on loopback (fake pool): the typed Effect
 * client derived from the Api, and the openapi-fetch client generated from openapi.json.
 */
import { FetchHttpClient, HttpServer } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { makeClient } from "../src/client/EffectClient.js"
import { createFetchClient } from "../src/client/FetchClient.js"
import type { AcpMessage } from "../src/domain/Session.js"
import { noUsage } from "../src/services/agents/UsageMeter.js"
import { makeFakePool } from "./support/FakePool.js"
import { appName, appToken, layerTestGateway, otherToken } from "./support/TestGateway.js"

const events: ReadonlyArray<AcpMessage> = [
  {
    jsonrpc: "2.0",
    method: "session/update",
    params: { sessionId: "fake-1", update: { sessionUpdate: "agent_message_chunk", content: { type: "text", text: "hello" } } }
  },
  { jsonrpc: "2.0", id: "req-1", result: { stopReason: "end_turn" } }
]

const gateway = () => {
  const fake = makeFakePool()
  fake.control.nextTurnEvents = events
  return layerTestGateway({ pool: fake.layer })
}

/** The live server's base URL, e.g. http://127.0.0.1:41234. */
const baseUrl = HttpServer.addressFormattedWith(Effect.succeed)

// Its own HttpClient: the test context's one already prefixes the server URL.
const effectClient = (token: string) =>
  Effect.flatMap(baseUrl, (url) => makeClient({ baseUrl: url, token })).pipe(Effect.provide(FetchHttpClient.layer))

const fetchClient = (token: string) => Effect.map(baseUrl, (url) => createFetchClient({ baseUrl: url, token }))

describe("Effect client (HttpApiClient)", () => {
  it.scopedLive("create, turn, get, list, close", () =>
    Effect.gen(function*() {
      const client = yield* effectClient(appToken)
      const created = yield* client.createSession({ payload: { agent: "claude", meta: { via: "effect" } } })
      expect(created).toMatchObject({ ok: true, agent: "claude", app_name: appName, status: "open" })
      const id = created.session_id

      const turn = yield* client.runTurn({ path: { id }, payload: { prompt: "say hello" } })
      expect(turn).toEqual({ ok: true, session_id: id, turn_index: 1, stop_reason: "end_turn", usage: noUsage, events, changes: [] })

      const state = yield* client.getSession({ path: { id } })
      expect(state).toMatchObject({ turn_count: 1, status: "open", meta: { via: "effect" } })
      expect(state.last_turn_at).not.toBeNull()

      const list = yield* client.listSessions({ urlParams: { status: "open", limit: 10 } })
      expect(list.count).toBe(1)
      expect(list.sessions.map((session) => session.session_id)).toEqual([id])

      expect(yield* client.closeSession({ path: { id } })).toEqual({ ok: true })
      expect(yield* client.closeSession({ path: { id } })).toEqual({ ok: true, already_closed: true })
      expect(yield* client.getHealth()).toEqual({ ok: true })
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("a streamed turn answers its events, decoded, ending with done", () =>
    Effect.gen(function*() {
      const client = yield* effectClient(appToken)
      const { session_id: id } = yield* client.createSession({ payload: { agent: "claude" } })
      const streamed = yield* client.streamTurn({ path: { id }, payload: { prompt: "say hello" } })
      // (The fake pool reports no message as it happens; test/generated-client.test.ts streams real ones.)
      expect(streamed.slice(0, -1).every((event) => event.event === "acp")).toBe(true)
      expect(streamed.at(-1)).toEqual({
        event: "done",
        id: "1.1",
        data: { ok: true, session_id: id, turn_index: 1, stop_reason: "end_turn", usage: noUsage, changes: [] }
      })
      // Typed: the event name narrows the data.
      const done = streamed.find((event) => event.event === "done")
      expect(done?.event === "done" ? done.data.turn_index : undefined).toBe(1)
      expect(yield* client.getSession({ path: { id } })).toMatchObject({ turn_count: 1 })
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("stored turns: queue one (202), read it, list it, stream it resumed after Last-Event-ID", () =>
    Effect.gen(function*() {
      const client = yield* effectClient(appToken)
      const { session_id: id } = yield* client.createSession({ payload: { agent: "claude" } })
      const accepted = yield* client.queueTurn({ path: { id }, payload: { prompt: "say hello" } })
      expect(accepted).toEqual({ ok: true, session_id: id, turn_index: 1, status: "queued" })
      const turn = yield* client.getTurn({ path: { id, n: 1 }, urlParams: {} }).pipe(
        Effect.repeat({ until: (turn) => turn.status === "completed", schedule: Schedule.spaced("10 millis") }),
        Effect.zipRight(client.getTurn({ path: { id, n: 1 }, urlParams: {} }))
      )
      expect(turn).toMatchObject({ ok: true, turn_index: 1, prompt: "say hello", text: "hello", events })
      const list = yield* client.listTurns({ path: { id }, urlParams: { after: 0, limit: 10 } })
      expect(list.turns.map((t) => [t.turn_index, t.status])).toEqual([[1, "completed"]])
      const resumed = yield* client.streamStoredTurn({ path: { id, n: 1 }, headers: { "last-event-id": "1.1" } })
      expect(resumed.map((event) => [event.event, event.id])).toEqual([["acp", "1.2"], ["done", "1.3"]])
      const missing = yield* Effect.flip(client.getTurn({ path: { id, n: 2 }, urlParams: {} }))
      expect(missing).toMatchObject({ _tag: "TurnNotFound", error: "turn_not_found" })
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("errors are typed failures: 401, 404 for another app, 410 after close", () =>
    Effect.gen(function*() {
      const client = yield* effectClient(appToken)
      const { session_id: id } = yield* client.createSession({ payload: { agent: "claude" } })

      const wrongToken = yield* effectClient("not-a-token")
      const unauthorized = yield* Effect.flip(wrongToken.listSessions({ urlParams: {} }))
      expect(unauthorized).toMatchObject({ _tag: "Unauthorized", ok: false, error: "unauthorized" })

      const other = yield* effectClient(otherToken)
      const notFound = yield* Effect.flip(other.getSession({ path: { id } }))
      expect(notFound).toMatchObject({ _tag: "SessionNotFound", error: "session_not_found" })
      // Typed: the failure channel narrows by tag.
      const recovered = yield* other.runTurn({ path: { id }, payload: { prompt: "hi" } }).pipe(
        Effect.as("ran"),
        Effect.catchTag("SessionNotFound", () => Effect.succeed("not found"))
      )
      expect(recovered).toBe("not found")

      yield* client.closeSession({ path: { id } })
      const closed = yield* Effect.flip(client.runTurn({ path: { id }, payload: { prompt: "hi" } }))
      expect(closed).toMatchObject({ _tag: "SessionClosed", error: "session_closed" })
    }).pipe(Effect.provide(gateway())))
})

describe("fetch client (openapi-typescript + openapi-fetch)", () => {
  it.scopedLive("create, turn, get, list, close", () =>
    Effect.gen(function*() {
      const client = yield* fetchClient(appToken)
      const created = yield* Effect.promise(() =>
        client.POST("/sessions", { body: { agent: "claude", meta: { via: "fetch" } } })
      )
      expect(created.response.status).toBe(200)
      expect(created.data).toMatchObject({ ok: true, agent: "claude", app_name: appName, status: "open" })
      const id = created.data!.session_id
      const path = { path: { id } }

      const turn = yield* Effect.promise(() =>
        client.POST("/sessions/{id}/turn", { params: path, body: { prompt: "say hello" } })
      )
      expect(turn.data).toEqual({ ok: true, session_id: id, turn_index: 1, stop_reason: "end_turn", usage: noUsage, events, changes: [] })

      const state = yield* Effect.promise(() => client.GET("/sessions/{id}", { params: path }))
      expect(state.data).toMatchObject({ turn_count: 1, status: "open", meta: { via: "fetch" } })

      // `limit` is an integer in the document, so the generated type says number.
      const list = yield* Effect.promise(() => client.GET("/sessions", { params: { query: { limit: 10 } } }))
      expect(list.data?.count).toBe(1)
      expect(list.data?.sessions.map((session) => session.session_id)).toEqual([id])

      const closed = yield* Effect.promise(() => client.DELETE("/sessions/{id}", { params: path }))
      expect(closed.data).toEqual({ ok: true })
      const again = yield* Effect.promise(() => client.DELETE("/sessions/{id}", { params: path }))
      expect(again.data).toEqual({ ok: true, already_closed: true })
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("stored turns: queue one (202), read it, list it, stream it resumed after Last-Event-ID", () =>
    Effect.gen(function*() {
      const client = yield* fetchClient(appToken)
      const created = yield* Effect.promise(() => client.POST("/sessions", { body: { agent: "claude" } }))
      const id = created.data!.session_id
      const accepted = yield* Effect.promise(() =>
        client.POST("/sessions/{id}/turns", { params: { path: { id } }, body: { prompt: "say hello" } })
      )
      expect(accepted.response.status).toBe(202)
      expect(accepted.data).toEqual({ ok: true, session_id: id, turn_index: 1, status: "queued" })
      let turn = yield* Effect.promise(() => client.GET("/sessions/{id}/turns/{n}", { params: { path: { id, n: 1 } } }))
      for (let i = 0; i < 100 && turn.data?.status !== "completed"; i++) {
        yield* Effect.sleep("10 millis")
        turn = yield* Effect.promise(() => client.GET("/sessions/{id}/turns/{n}", { params: { path: { id, n: 1 } } }))
      }
      expect(turn.data).toMatchObject({ status: "completed", text: "hello", events })
      const list = yield* Effect.promise(() =>
        client.GET("/sessions/{id}/turns", { params: { path: { id }, query: { after: 0, limit: 10 } } })
      )
      expect(list.data?.turns.map((t) => t.turn_index)).toEqual([1])
      const stream = yield* Effect.promise(() =>
        client.GET("/sessions/{id}/turns/{n}/stream", {
          params: { path: { id, n: 1 }, header: { "Last-Event-ID": "1.2" } },
          parseAs: "text"
        })
      )
      expect(stream.response.headers.get("content-type")).toContain("text/event-stream")
      expect(stream.data).toMatch(/^event: done\nid: 1\.3\ndata: /)
      const missing = yield* Effect.promise(() => client.GET("/sessions/{id}/turns/{n}", { params: { path: { id, n: 9 } } }))
      expect(missing.response.status).toBe(404)
      expect(missing.error).toMatchObject({ ok: false, error: "turn_not_found" })
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("errors are typed bodies with their status: 401, 404 for another app, 410 after close", () =>
    Effect.gen(function*() {
      const client = yield* fetchClient(appToken)
      const created = yield* Effect.promise(() => client.POST("/sessions", { body: { agent: "claude" } }))
      const path = { path: { id: created.data!.session_id } }

      const wrongToken = yield* fetchClient("not-a-token")
      const unauthorized = yield* Effect.promise(() => wrongToken.GET("/sessions"))
      expect(unauthorized.response.status).toBe(401)
      expect(unauthorized.data).toBeUndefined()
      expect(unauthorized.error).toMatchObject({ ok: false, error: "unauthorized", _tag: "Unauthorized" })

      const other = yield* fetchClient(otherToken)
      const notFound = yield* Effect.promise(() => other.GET("/sessions/{id}", { params: path }))
      expect(notFound.response.status).toBe(404)
      expect(notFound.error).toMatchObject({ ok: false, error: "session_not_found" })

      yield* Effect.promise(() => client.DELETE("/sessions/{id}", { params: path }))
      const closed = yield* Effect.promise(() =>
        client.POST("/sessions/{id}/turn", { params: path, body: { prompt: "hi" } })
      )
      expect(closed.response.status).toBe(410)
      // The error type is the union of the turn's documented error bodies.
      expect(closed.error?.error).toBe("session_closed")
      expect(closed.error?.message).toBeTypeOf("string")
    }).pipe(Effect.provide(gateway())))
})
