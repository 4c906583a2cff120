/**
 * The lean turn routes (src/http/TurnRoutes.ts): they serve `POST /sessions/{id}/turn`, `/turn/stream`
 * and `/turns` ahead of the HttpApi router and must answer exactly as the router's handlers would.
 * A session id spelt with a percent escape is one the lean routes hand on, so the same requests
 * against the same session go once through each path and their answers are compared.
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Schema } from "effect"
import { TurnReply } from "../src/domain/Session.js"
import { makeTurnRoutes } from "../src/http/TurnRoutes.js"
import { AuthFailures } from "../src/services/tenancy/AuthFailures.js"
import { agentLogFile } from "./support/ScriptedAgent.js"
import { appToken, layerScriptedGateway, otherToken, request } from "./support/TestGateway.js"

const maxBodyBytes = 4096
const gateway = () => layerScriptedGateway(agentLogFile(), { CLAWDFORGE_MAX_BODY_BYTES: String(maxBodyBytes) })

/** The id with its first character percent-escaped: the same session to the router, not a match for the lean routes. */
const escaped = (id: string) => `%${id.charCodeAt(0).toString(16).toUpperCase()}${id.slice(1)}`

interface Sent {
  readonly path: string
  readonly token?: string | undefined
  readonly body?: string | undefined
  readonly headers?: Record<string, string>
}

/** One raw POST; the answer as the caller sees it: status, the headers that carry meaning, the body. */
const send = ({ path, token, body, headers }: Sent) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    let req = HttpClientRequest.post(path).pipe(HttpClientRequest.setHeaders(headers ?? {}))
    if (token !== undefined) req = HttpClientRequest.bearerToken(req, token)
    if (body !== undefined) req = HttpClientRequest.bodyText(req, body, "application/json")
    const response = yield* client.execute(req)
    const text = yield* response.text
    const kept = ["content-type", "www-authenticate", "retry-after", "ratelimit-limit", "idempotent-replayed"]
    return {
      status: response.status,
      headers: Object.fromEntries(kept.flatMap((name) => response.headers[name] === undefined ? [] : [[name, response.headers[name]]])),
      body: text
    }
  }).pipe(Effect.scoped)

/** What differs between two turns of one session by nature: their index, the prompt's request id, the agent's files' sizes. */
const normalized = (answer: { status: number; headers: object; body: string }) => ({
  ...answer,
  body: answer.body
    .replace(/"turn_index":\d+/g, "\"turn_index\":0")
    .replace(/"size":\d+/g, "\"size\":0")
    .replace(/"id":\d+/g, "\"id\":0")
    .replace(/id: \d+\./g, "id: 0.")
})

describe("the lean turn routes", () => {
  it.scopedLive("answer every request as the HttpApi router does: tokens, bodies, keys, errors, replies", () =>
    Effect.gen(function*() {
      const create = yield* request("POST", "/sessions", { token: appToken, body: { agent: "scripted" } })
      const id = create.body.session_id as string
      const closed = (yield* request("POST", "/sessions", { token: appToken, body: { agent: "scripted" } })).body
        .session_id as string
      yield* request("DELETE", `/sessions/${closed}`, { token: appToken })
      const ok = JSON.stringify({ prompt: "hello" })
      const cases: Array<{ readonly name: string; readonly route: string; readonly sent: Omit<Sent, "path">; readonly session?: string }> = [
        { name: "no token", route: "turn", sent: { body: ok } },
        { name: "a wrong token", route: "turn", sent: { token: "not-a-token-at-all", body: ok } },
        { name: "a lower-case scheme", route: "turn", sent: { headers: { authorization: `bearer ${appToken}` }, body: ok } },
        { name: "another app's session", route: "turn", sent: { token: otherToken, body: ok } },
        { name: "no body", route: "turn", sent: { token: appToken } },
        { name: "malformed JSON", route: "turn", sent: { token: appToken, body: "{\"prompt\":" } },
        { name: "an unknown field", route: "turn", sent: { token: appToken, body: JSON.stringify({ prompt: "x", modle: 1 }) } },
        { name: "a missing prompt", route: "turns", sent: { token: appToken, body: JSON.stringify({ files: [] }) } },
        { name: "an empty prompt", route: "turn/stream", sent: { token: appToken, body: JSON.stringify({ prompt: "" }) } },
        { name: "files of the wrong type", route: "turn", sent: { token: appToken, body: JSON.stringify({ prompt: "x", files: "a" }) } },
        { name: "a body over the limit", route: "turn", sent: { token: appToken, body: JSON.stringify({ prompt: "x".repeat(maxBodyBytes) }) } },
        {
          name: "a bad Idempotency-Key",
          route: "turn",
          sent: { token: appToken, body: ok, headers: { "idempotency-key": "has space" } }
        },
        {
          name: "a bad body and a bad key (the body is named)",
          route: "turns",
          sent: { token: appToken, body: "[]", headers: { "idempotency-key": "" } }
        },
        { name: "a plain-text Content-Type", route: "turn", sent: { token: appToken, body: ok, headers: { "content-type": "text/plain" } } },
        { name: "a turn", route: "turn", sent: { token: appToken, body: ok } },
        { name: "a turn naming files", route: "turn", sent: { token: appToken, body: JSON.stringify({ prompt: "see", files: ["a.txt"] }) } },
        { name: "a queued turn", route: "turns", sent: { token: appToken, body: ok } },
        { name: "a streamed turn", route: "turn/stream", sent: { token: appToken, body: ok } },
        { name: "a closed session", route: "turn", sent: { token: appToken, body: ok }, session: closed },
        { name: "a closed session, streamed", route: "turn/stream", sent: { token: appToken, body: ok }, session: closed }
      ]
      for (const { name, route, sent, session = id } of cases) {
        const lean = yield* send({ ...sent, path: `/sessions/${session}/${route}` })
        // The queued turn runs behind: let it end before the router's one, as the lean one did.
        if (route === "turns") yield* Effect.sleep("300 millis")
        const routed = yield* send({ ...sent, path: `/sessions/${escaped(session)}/${route}` })
        if (route === "turns") yield* Effect.sleep("300 millis")
        expect({ name, ...normalized(lean) }).toEqual({ name, ...normalized(routed) })
        // Both ways answer through one handler: its reply is TurnReply's encoding, every member of it.
        if (name === "a turn") {
          const reply = JSON.parse(lean.body)
          expect(Schema.encodeSync(TurnReply)(Schema.decodeUnknownSync(TurnReply)(reply))).toEqual(reply)
          expect(Object.keys(reply)).toEqual(["ok", "session_id", "turn_index", "stop_reason", "usage", "events", "changes"])
        }
      }
      // Both ways ran real turns, one after the other, on the same session: six each.
      const turns = yield* request("GET", `/sessions/${id}/turns`, { token: appToken })
      expect(turns.body.turns.map((t: { status: string }) => t.status)).toEqual(Array(12).fill("completed"))
    }).pipe(Effect.provide(gateway())), 60_000)

  it.scoped("take only POSTs to the three paths with an id spelt as ids are, and hand on everything else", () =>
    Effect.gen(function*() {
      const routes = yield* makeTurnRoutes(maxBodyBytes)
      const handedOn = HttpServerResponse.text("handed on", { status: 299 })
      const app = routes(Effect.succeed(handedOn))
      /** Whether the lean routes took the request: without a token, they answer 401 where the sentinel answers 299. */
      const taken = (method: string, url: string) =>
        app.pipe(
          Effect.provideService(
            HttpServerRequest.HttpServerRequest,
            HttpServerRequest.fromWeb(new Request(`http://gateway${url}`, { method }))
          ),
          Effect.exit,
          Effect.map((exit) => !(Exit.isSuccess(exit) && exit.value === handedOn))
        )
      const id = "WGqeZknU8-ttl9pDNshTBn-w"
      for (const path of [`/sessions/${id}/turn`, `/sessions/${id}/turn/stream`, `/sessions/${id}/turns`, `/sessions/${id}/turn?x=1`]) {
        expect([path, yield* taken("POST", path)]).toEqual([path, true])
      }
      for (
        const [method, path] of [
          ["GET", `/sessions/${id}/turns`],
          ["POST", `/sessions/${id}/turn/`],
          ["POST", `/sessions/${id}/turnx`],
          ["POST", `/sessions/${id}/turns/1`],
          ["POST", `/sessions/${escaped(id)}/turn`],
          ["POST", `/sessions//turn`],
          ["POST", `/sessions/${id}`],
          ["POST", "/sessions"],
          ["POST", `/Sessions/${id}/turn`],
          ["POST", `/sessions/${"a".repeat(129)}/turn`]
        ] as const
      ) {
        expect([method, path, yield* taken(method, path)]).toEqual([method, path, false])
      }
    }).pipe(Effect.provide(AuthFailures.Default), Effect.provide(gateway())))
})
