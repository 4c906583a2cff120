import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Effect, Layer } from "effect"
import { Api, CurrentApp } from "../domain/Api.js"
import { BadRequest } from "../domain/Errors.js"
import type { SessionId } from "../domain/Ids.js"
import { ClaudeRunner } from "../services/agents/ClaudeRunner.js"
import { scrapeMetrics } from "../services/observability/Metrics.js"
import { Sessions } from "../services/sessions/Sessions.js"
import { Docs } from "./Docs.js"
import { turnEventStream } from "./TurnStream.js"

/** The `seq` after which a resumed stream starts: `Last-Event-ID` must name an event of that turn. */
const resumeAfter = (turnIndex: number, lastEventId: string | undefined) => {
  if (lastEventId === undefined) return Effect.succeed(0)
  const [turn, seq] = lastEventId.split(".").map(Number) as [number, number]
  return turn === turnIndex
    ? Effect.succeed(seq)
    : Effect.fail(
      new BadRequest({
        message: `Invalid request: Last-Event-ID ${lastEventId} is an event of turn ${turn}, not of turn ${turnIndex}`
      })
    )
}

/** The open routes: liveness, the OpenAPI document and its docs page. */
export const HealthLive = HttpApiBuilder.group(Api, "health", (handlers) =>
  Effect.gen(function*() {
    const docs = yield* Docs
    return handlers
      .handle("getHealth", () => Effect.succeed({ ok: true as const }))
      .handle("getOpenApi", () => docs.openApi())
      .handle("getDocs", () => docs.docs())
  })).pipe(Layer.provide(Docs.Default))

export const RunLive = HttpApiBuilder.group(Api, "run", (handlers) =>
  Effect.gen(function*() {
    const runner = yield* ClaudeRunner
    return handlers.handle("runPrompt", ({ payload }) => runner.run(payload))
  }))

export const SessionsLive = HttpApiBuilder.group(Api, "sessions", (handlers) =>
  Effect.gen(function*() {
    const sessions = yield* Sessions
    return handlers
      .handle("createSession", ({ payload }) =>
        CurrentApp.pipe(
          Effect.flatMap((app) => sessions.create(app, payload)),
          Effect.map((session) => ({ ok: true as const, ...session }))
        ))
      .handle("runTurn", ({ path, payload }) =>
        Effect.flatMap(CurrentApp, (app) => sessions.turn(app, path.id, payload)))
      .handle("streamTurn", ({ path, payload }) =>
        CurrentApp.pipe(
          Effect.flatMap((app) => sessions.submit(app, path.id, payload)),
          Effect.map((accepted) => turnEventStream(accepted.feed))
        ))
      .handle("queueTurn", ({ path, payload }) =>
        CurrentApp.pipe(
          Effect.flatMap((app) => sessions.submit(app, path.id, payload)),
          Effect.map((accepted) => ({
            ok: true as const,
            session_id: path.id as SessionId,
            turn_index: accepted.turnIndex,
            status: "queued" as const
          }))
        ))
      .handle("listTurns", ({ path, urlParams }) =>
        CurrentApp.pipe(
          Effect.flatMap((app) => sessions.listTurns(app, path.id, urlParams)),
          Effect.map((turns) => ({ ok: true as const, count: turns.length, turns }))
        ))
      .handle("getTurn", ({ path }) => Effect.flatMap(CurrentApp, (app) => sessions.getTurn(app, path.id, path.n)))
      .handle("streamStoredTurn", ({ headers, path }) =>
        CurrentApp.pipe(
          Effect.flatMap((app) => sessions.followTurn(app, path.id, path.n)),
          Effect.flatMap((feed) =>
            Effect.map(resumeAfter(feed.turnIndex, headers["last-event-id"]), (after) => turnEventStream(feed, after))
          )
        ))
      .handle("cancelTurn", ({ path }) =>
        CurrentApp.pipe(
          Effect.flatMap((app) => sessions.cancel(app, path.id)),
          Effect.map((cancelled) => ({ ok: true as const, cancelled }))
        ))
      .handle("getSession", ({ path }) =>
        CurrentApp.pipe(
          Effect.flatMap((app) => sessions.get(app, path.id)),
          Effect.map((session) => ({ ok: true as const, ...session }))
        ))
      .handle("listSessions", ({ urlParams }) =>
        CurrentApp.pipe(
          Effect.flatMap((app) => sessions.list(app, urlParams)),
          Effect.map((list) => ({ ok: true as const, count: list.length, sessions: list }))
        ))
      .handle("closeSession", ({ path }) =>
        CurrentApp.pipe(
          Effect.flatMap((app) => sessions.close(app, path.id)),
          Effect.map(({ alreadyClosed }) => alreadyClosed ? { ok: true as const, already_closed: true } : { ok: true as const })
        ))
  }))

export const ObservabilityLive = HttpApiBuilder.group(
  Api,
  "observability",
  (handlers) => handlers.handle("getMetrics", () => scrapeMetrics)
)
