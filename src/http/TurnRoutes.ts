import * as HttpApiError from "@effect/platform/HttpApiError"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { NodeHttpServerRequest } from "@effect/platform-node"
import { Context, Effect, Either, Layer, Redacted, Schema, Tracer } from "effect"
import { CurrentApp } from "../domain/Api.js"
import { BadRequest } from "../domain/Errors.js"
import { IdempotencyHeaders } from "../domain/Idempotency.js"
import type { AppName, SessionId } from "../domain/Ids.js"
import { TurnReply, TurnRequest } from "../domain/Session.js"
import { TurnAccepted } from "../domain/Turn.js"
import { AppConfig } from "../services/config/AppConfig.js"
import { type AcceptedTurn, Sessions } from "../services/sessions/Sessions.js"
import { Auth } from "../services/tenancy/Auth.js"
import { AuthFailures } from "../services/tenancy/AuthFailures.js"
import { AppLimits } from "../services/tenancy/AppLimits.js"
import { authenticateApp, bearerToken } from "./Authorization.js"
import { makeIdempotent, replayedHeader, replayJson, storeAs } from "./Idempotency.js"
import { rateLimitHeaders } from "./RateLimitHeaders.js"
import { readStreamed } from "./RequestErrors.js"
import { encodeTurnReply, storedReplyOf, storedTurnReply, turnEventStream } from "./TurnStream.js"

/** One call of a turn route: whose, which session, the decoded body and its `Idempotency-Key`. */
export interface TurnCall {
  readonly app: AppName
  readonly id: string
  readonly payload: TurnRequest
  readonly key: string | undefined
}

/**
 * The work of `POST /sessions/{id}/turn`, `/turn/stream` and `/turns`, each answering a whole
 * response (rate headers, idempotent replays included). Both ways in use it: the lean routes
 * below, and the HttpApi handlers (Handlers.ts) that the document and the clients are made from.
 */
export const makeTurnHandlers = Effect.gen(function*() {
  const sessions = yield* Sessions
  const limits = yield* AppLimits
  const idempotent = yield* makeIdempotent
  const storeTurn = storeAs(TurnReply)
  const storeAccepted = storeAs(TurnAccepted)
  const queued = (id: string, turnIndex: number): typeof TurnAccepted.Type => ({
    ok: true,
    session_id: id as SessionId,
    turn_index: turnIndex,
    status: "queued"
  })

  /** With a key, the idempotent run (which reads the app from the context); without one, the run itself. */
  const once = <A, E, E2>(call: TurnCall, options: {
    readonly run: Effect.Effect<A, E>
    readonly store: (value: A) => { readonly status: number; readonly body: string }
    readonly respond: (value: A) => HttpServerResponse.HttpServerResponse
    readonly replay: (reply: { readonly status: number; readonly body: string }) => Effect.Effect<HttpServerResponse.HttpServerResponse, E2>
  }) =>
    call.key === undefined
      ? Effect.map(options.run, options.respond)
      : idempotent({ key: call.key, payload: call.payload, ...options }).pipe(Effect.provideService(CurrentApp, call.app))

  /**
   * A repeated `/turn`: answered from the stored turn (the key keeps its index, never a second
   * copy of the reply), `truncated` when the stored turn kept fewer messages than the reply had.
   * Written as its stored pages are read, never held whole.
   */
  const replayTurn = (app: AppName, id: string, reply: { readonly status: number; readonly body: string }) => {
    const first = reply.status === 200 ? JSON.parse(reply.body) as { turn_index: number; events?: unknown } : undefined
    // An error, or a reply stored whole by an earlier version: as stored.
    if (first === undefined || first.events !== undefined) return Effect.succeed(replayJson(reply))
    return sessions.followTurn(app, id, first.turn_index).pipe(
      Effect.flatMap((feed) =>
        "_tag" in feed
          ? Effect.succeed(storedTurnReply(feed, { [replayedHeader]: "true" }))
          : replayWhole(app, id, first.turn_index)
      ),
      // Its turn was stored when it was accepted; gone only with its session (404).
      Effect.catchTag("TurnNotFound", Effect.die)
    )
  }

  /** A repeated `/turn` whose turn this node does not read from its ledger (a cluster's relayed turn): whole. */
  const replayWhole = (app: AppName, id: string, turnIndex: number) =>
    sessions.getTurn(app, id, turnIndex, { limit: Number.MAX_SAFE_INTEGER }).pipe(
      Effect.map((turn) =>
        replayJson(storeTurn(storedReplyOf(turn, turn.events)))
      ),
      // Its turn was stored when it was accepted; gone only with its session (404).
      Effect.catchTag("TurnNotFound", Effect.die)
    )

  /** A repeated `/turn/stream`: the first request's turn from its start, or the error it answered. */
  const replayStream = (
    app: AppName,
    id: string,
    reply: { readonly status: number; readonly body: string },
    closeStream: () => void
  ) =>
    reply.status !== 200
      ? Effect.sync(() => {
        closeStream()
        return replayJson(reply)
      })
      : Effect.map(
        sessions.followTurn(app, id, (JSON.parse(reply.body) as { turn_index: number }).turn_index),
        (feed) => HttpServerResponse.setHeader(turnEventStream(feed, 0, closeStream), replayedHeader, "true")
      ).pipe(
        // Its turn was stored when it was accepted; gone only with its session (404).
        Effect.catchTag("TurnNotFound", Effect.die)
      )

  const runTurn = (call: TurnCall) =>
    once(call, {
      run: rateLimitHeaders(limits, call.app, sessions.turn(call.app, call.id, call.payload)),
      // The turn's index only: a repeat answers from the stored turn.
      store: (reply: TurnReply) => ({ status: 200, body: JSON.stringify({ turn_index: reply.turn_index }) }),
      respond: (reply: TurnReply) => HttpServerResponse.unsafeJson(encodeTurnReply(reply)),
      replay: (stored) => replayTurn(call.app, call.id, stored)
    })

  const streamTurn = (call: TurnCall) =>
    // The app's stream slot first: a stream refused takes no turn.
    Effect.flatMap(limits.openStream(call.app), (closeStream) =>
      once(call, {
        run: rateLimitHeaders(limits, call.app, sessions.submit(call.app, call.id, call.payload)),
        // A repeat replays the turn the first request started, from its stored messages.
        store: (turn: AcceptedTurn) => ({ status: 200, body: JSON.stringify({ turn_index: turn.turnIndex }) }),
        respond: (turn: AcceptedTurn) => turnEventStream(turn.feed, 0, closeStream),
        replay: (reply) => replayStream(call.app, call.id, reply, closeStream)
      }).pipe(Effect.onError(() => Effect.sync(closeStream))))

  const queueTurn = (call: TurnCall) =>
    once(call, {
      run: rateLimitHeaders(limits, call.app, sessions.submit(call.app, call.id, call.payload)),
      store: (turn: AcceptedTurn) => storeAccepted(queued(call.id, turn.turnIndex)),
      respond: (turn: AcceptedTurn) => {
        const reply = storeAccepted(queued(call.id, turn.turnIndex))
        return HttpServerResponse.text(reply.body, { status: reply.status, contentType: "application/json" })
      },
      replay: (reply) => Effect.succeed(replayJson(reply))
    })

  return { runTurn, streamTurn, queueTurn } as const
})

/** The turn routes served on the lean path; the id is matched as session ids are spelt, anything else goes on. */
const turnRoute = /^\/sessions\/([A-Za-z0-9_-]{1,128})\/(turn|turn\/stream|turns)(?:\?|$)/
const routePaths = {
  turn: "/sessions/:id/turn",
  "turn/stream": "/sessions/:id/turn/stream",
  turns: "/sessions/:id/turns"
} as const

const decodeTurnRequest = Schema.decodeUnknownEither(TurnRequest)
const decodeIdempotencyHeaders = Schema.decodeUnknownEither(IdempotencyHeaders)

/**
 * The turn routes (`POST /sessions/{id}/turn`, `/turn/stream`, `/turns`) ahead of the HttpApi
 * router, for the HttpApi-level middleware chain (inside `RequestErrors`): matched on the request
 * line alone (no router, no route context), the token checked as `Authorization` checks it, the
 * body read once and decoded by the endpoint's own schemas (in the HttpApi's order: token, body,
 * headers), and the reply built without a schema pass. Failures are the same typed errors, which
 * `RequestErrors` and the HttpApi's error schema answer as for any endpoint. Everything else,
 * and any spelling of these paths the pattern does not take, goes on to the HttpApi app.
 */
export const makeTurnRoutes = (maxBodyBytes: number) =>
  Effect.gen(function*() {
    const handlers = yield* makeTurnHandlers
    const authenticate = authenticateApp(yield* Auth, yield* AuthFailures)
    const serve = {
      turn: handlers.runTurn,
      "turn/stream": handlers.streamTurn,
      turns: handlers.queueTurn
    } as const

    /** The body as text: read here when it has a length (RequestErrors checked it), else as RequestErrors read it. */
    const bodyText = (request: HttpServerRequest.HttpServerRequest, headers: Record<string, string | undefined>) =>
      headers["content-length"] === undefined
        ? Effect.orDie(request.text)
        : readStreamed(NodeHttpServerRequest.toIncomingMessage(request), maxBodyBytes)

    const handle = (request: HttpServerRequest.HttpServerRequest, id: string, route: keyof typeof serve) =>
      Effect.gen(function*() {
        const headers = request.headers
        const app = yield* authenticate(Redacted.make(bearerToken(headers.authorization)))
        const text = yield* bodyText(request, headers)
        let json: unknown
        try {
          json = text === "" ? null : JSON.parse(text)
        } catch {
          return yield* new BadRequest({ message: "The request body is not valid JSON" })
        }
        const payload = decodeTurnRequest(json)
        if (Either.isLeft(payload)) return yield* HttpApiError.HttpApiDecodeError.refailParseError(payload.left)
        let key: string | undefined
        if (headers["idempotency-key"] !== undefined) {
          const decoded = decodeIdempotencyHeaders(headers)
          if (Either.isLeft(decoded)) return yield* HttpApiError.HttpApiDecodeError.refailParseError(decoded.left)
          key = decoded.right["idempotency-key"]
        }
        return yield* serve[route]({ app, id, payload: payload.right, key })
      })

    return (app: HttpApp.Default): HttpApp.Default<unknown> =>
      Effect.withFiberRuntime<HttpServerResponse.HttpServerResponse, unknown, HttpServerRequest.HttpServerRequest>((fiber) => {
        const context = fiber.currentContext
        const request = Context.unsafeGet(context, HttpServerRequest.HttpServerRequest)
        const match = request.method === "POST" ? turnRoute.exec(request.url) : null
        if (match === null) return app
        const route = match[2] as keyof typeof serve
        // As the router does: the request's span (when traced) names its route.
        const span = Context.getOption(context, Tracer.ParentSpan)
        if (span._tag === "Some" && span.value._tag === "Span") span.value.attribute("http.route", routePaths[route])
        // Interruptible as the router's handlers are: a client that goes away stops only its wait.
        return Effect.interruptible(handle(request, match[1]!, route))
      })
  })

/**
 * The turn routes as an API-level middleware, to be the inner one (RequestErrors around it: see
 * Server.ts). Its failures are the endpoints' typed errors, which RequestErrors and the HttpApi's
 * error schema answer as any endpoint's; the guard's count of wrong tokens is the one instance.
 */
export const TurnRoutesLive = Layer.unwrapEffect(
  Effect.map(AppConfig, ({ maxBodyBytes }) =>
    HttpApiBuilder.middleware(
      Effect.map(makeTurnRoutes(maxBodyBytes), (turnRoutes) => turnRoutes as (app: HttpApp.Default) => HttpApp.Default)
    ))
).pipe(Layer.provide(AuthFailures.DefaultWithoutDependencies))
