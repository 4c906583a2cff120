import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { Api, CurrentApp } from "../domain/Api.js"
import { ClaudeRunner } from "../services/agents/ClaudeRunner.js"
import { scrapeMetrics } from "../services/observability/Metrics.js"
import { Sessions } from "../services/sessions/Sessions.js"
import { turnEventStream } from "./TurnStream.js"

export const HealthLive = HttpApiBuilder.group(
  Api,
  "health",
  (handlers) => handlers.handle("healthz", () => Effect.succeed({ ok: true as const }))
)

export const RunLive = HttpApiBuilder.group(Api, "run", (handlers) =>
  Effect.gen(function*() {
    const runner = yield* ClaudeRunner
    return handlers.handle("run", ({ payload }) => runner.run(payload))
  }))

export const SessionsLive = HttpApiBuilder.group(Api, "sessions", (handlers) =>
  Effect.gen(function*() {
    const sessions = yield* Sessions
    return handlers
      .handle("create", ({ payload }) =>
        CurrentApp.pipe(
          Effect.flatMap((app) => sessions.create(app, payload)),
          Effect.map((session) => ({ ok: true as const, ...session }))
        ))
      .handle("turn", ({ path, payload }) =>
        Effect.flatMap(CurrentApp, (app) => sessions.turn(app, path.id, payload)))
      .handle("turnStream", ({ path, payload }) =>
        Effect.flatMap(CurrentApp, (app) =>
          turnEventStream((onMessage) => sessions.submit(app, path.id, payload, onMessage))))
      .handle("cancel", ({ path }) =>
        CurrentApp.pipe(
          Effect.flatMap((app) => sessions.cancel(app, path.id)),
          Effect.map((cancelled) => ({ ok: true as const, cancelled }))
        ))
      .handle("get", ({ path }) =>
        CurrentApp.pipe(
          Effect.flatMap((app) => sessions.get(app, path.id)),
          Effect.map((session) => ({ ok: true as const, ...session }))
        ))
      .handle("list", ({ urlParams }) =>
        CurrentApp.pipe(
          Effect.flatMap((app) => sessions.list(app, urlParams)),
          Effect.map((list) => ({ ok: true as const, count: list.length, sessions: list }))
        ))
      .handle("close", ({ path }) =>
        CurrentApp.pipe(
          Effect.flatMap((app) => sessions.close(app, path.id)),
          Effect.map(({ alreadyClosed }) => alreadyClosed ? { ok: true as const, already_closed: true } : { ok: true as const })
        ))
  }))

export const ObservabilityLive = HttpApiBuilder.group(
  Api,
  "observability",
  (handlers) => handlers.handle("metrics", () => scrapeMetrics)
)
