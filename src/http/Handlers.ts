import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Effect, Layer } from "effect"
import { Api, CurrentApp } from "../domain/Api.js"
import { BadRequest, RunFailed } from "../domain/Errors.js"
import type { AppName } from "../domain/Ids.js"
import { RunReply, type RunRequest } from "../domain/Run.js"
import { SessionReply, type TurnRequest } from "../domain/Session.js"
import { AgentRegistry } from "../services/agents/AgentRegistry.js"
import { ClaudeRunner } from "../services/agents/ClaudeRunner.js"
import { scrapeMetrics } from "../services/observability/Metrics.js"
import { AppLimits } from "../services/tenancy/AppLimits.js"
import { AppSecrets } from "../services/tenancy/AppSecrets.js"
import { Sandbox } from "../services/sandbox/Sandbox.js"
import { Usage } from "../services/tenancy/Usage.js"
import { Sessions } from "../services/sessions/Sessions.js"
import { Docs } from "./Docs.js"
import { makeIdempotent, storeAs } from "./Idempotency.js"
import { makeTurnHandlers } from "./TurnRoutes.js"
import { turnEventStream } from "./TurnStream.js"

/** The `seq` after which a resumed stream starts: `Last-Event-ID` must name an event of that turn. */
export const resumeAfter = (turnIndex: number, lastEventId: string | undefined) => {
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
export const HealthHttpLive = HttpApiBuilder.group(Api, "health", (handlers) =>
  Effect.gen(function*() {
    const docs = yield* Docs
    return handlers
      .handle("getHealth", () => Effect.succeed({ ok: true as const }))
      .handle("getOpenApi", () => docs.openApi())
      .handle("getDocs", () => docs.docs())
  })).pipe(Layer.provide(Docs.Default))

/** The app's environment cannot be opened (the message names the variable, never a value). */
const appEnvUnreadable = (error: { readonly message: string }) =>
  new RunFailed({ error: "spawn_failed", message: error.message, stderr: "", duration_ms: 0, stop_reason: "error" })

export const RunHttpLive = HttpApiBuilder.group(Api, "run", (handlers) =>
  Effect.gen(function*() {
    const runner = yield* ClaudeRunner
    const secrets = yield* AppSecrets
    const limits = yield* AppLimits
    const usage = yield* Usage
    const idempotent = yield* makeIdempotent
    const storeRun = storeAs(RunReply)
    // A run is stored with what it used, which counts against the app's daily budget.
    const runFor = (app: AppName, payload: RunRequest) =>
      Effect.zipRight(
        limits.checkBudget(app),
        Effect.flatMap(secrets.envFor(app).pipe(Effect.mapError(appEnvUnreadable)), (env) =>
          runner.run(app, payload, {
            env,
            onRun: (run) => Effect.zipRight(usage.recordRun(app, run).pipe(Effect.orDie), limits.addUsage(app, run.usage))
          }))
      )
    return handlers.handle("runPrompt", ({ headers, payload }) =>
      idempotent({
        key: headers["idempotency-key"],
        payload,
        run: Effect.flatMap(CurrentApp, (app) => runFor(app, payload)),
        store: storeRun,
        respond: (reply) => reply
      }))
  }))

export const SessionsHttpLive = HttpApiBuilder.group(Api, "sessions", (handlers) =>
  Effect.gen(function*() {
    const sessions = yield* Sessions
    const limits = yield* AppLimits
    const idempotent = yield* makeIdempotent
    const storeSession = storeAs(SessionReply)
    // The turn routes are served on the lean path (TurnRoutes.ts) by the same handlers.
    const turns = yield* makeTurnHandlers
    const turnCall = (
      { headers, path, payload }: { headers: { "idempotency-key"?: string }; path: { id: string }; payload: TurnRequest }
    ) => Effect.map(CurrentApp, (app) => ({ app, id: path.id, payload, key: headers["idempotency-key"] }))
    return handlers
      .handle("createSession", ({ headers, payload }) =>
        idempotent({
          key: headers["idempotency-key"],
          payload,
          run: CurrentApp.pipe(
            Effect.flatMap((app) => sessions.create(app, payload)),
            Effect.map((session) => ({ ok: true as const, ...session }))
          ),
          store: storeSession,
          respond: (reply) => reply
        }))
      .handle("runTurn", (request) => Effect.flatMap(turnCall(request), turns.runTurn))
      .handle("streamTurn", (request) => Effect.flatMap(turnCall(request), turns.streamTurn))
      .handle("queueTurn", (request) => Effect.flatMap(turnCall(request), turns.queueTurn))
      .handle("listTurns", ({ path, urlParams }) =>
        CurrentApp.pipe(
          Effect.flatMap((app) => sessions.listTurns(app, path.id, urlParams)),
          Effect.map((turns) => ({ ok: true as const, count: turns.length, turns }))
        ))
      .handle("getTurn", ({ path, urlParams }) =>
        Effect.flatMap(CurrentApp, (app) =>
          sessions.getTurn(app, path.id, path.n, { after: urlParams.events_after, limit: urlParams.events_limit })))
      .handle("streamStoredTurn", ({ headers, path }) =>
        Effect.flatMap(CurrentApp, (app) =>
          sessions.followTurn(app, path.id, path.n).pipe(
            Effect.flatMap((feed) =>
              Effect.flatMap(resumeAfter(feed.turnIndex, headers["last-event-id"]), (after) =>
                // The app's stream slot last: nothing after it can fail.
                Effect.map(limits.openStream(app), (closeStream) => turnEventStream(feed, after, closeStream)))
            )
          )))
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
      .handle("updateSession", ({ path, payload }) =>
        CurrentApp.pipe(
          Effect.flatMap((app) => sessions.configure(app, path.id, payload)),
          Effect.map((session) => ({ ok: true as const, ...session }))
        ))
      .handle("listPermissions", ({ path }) =>
        CurrentApp.pipe(
          Effect.flatMap((app) => sessions.listPermissions(app, path.id)),
          Effect.map((permissions) => ({ ok: true as const, count: permissions.length, permissions }))
        ))
      .handle("answerPermission", ({ path, payload }) =>
        CurrentApp.pipe(
          Effect.flatMap((app) => sessions.answerPermission(app, path.id, path.request_id, payload)),
          Effect.as({ ok: true as const })
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

export const AgentsHttpLive = HttpApiBuilder.group(Api, "agents", (handlers) =>
  Effect.gen(function*() {
    const registry = yield* AgentRegistry
    const sandbox = yield* Sandbox
    return handlers.handle("listAgents", () =>
      Effect.map(registry.list(), (agents) => ({
        ok: true as const,
        count: agents.length,
        sandbox: sandbox.mode,
        limits: sandbox.limited,
        agents
      })))
  }))

export const TenancyHttpLive = HttpApiBuilder.group(Api, "tenancy", (handlers) =>
  Effect.gen(function*() {
    const limits = yield* AppLimits
    const usage = yield* Usage
    return handlers
      .handle("getUsage", ({ urlParams }) =>
        CurrentApp.pipe(
          Effect.flatMap((app) =>
            usage.usage(app, { from: urlParams.from, to: urlParams.to, groupBy: urlParams.group_by })
          ),
          Effect.orDie,
          Effect.map((report) => ({ ok: true as const, ...report }))
        ))
      .handle("getLimits", () =>
        CurrentApp.pipe(
          Effect.flatMap((app) => limits.limitsOf(app)),
          Effect.map((report) => ({ ok: true as const, ...report }))
        ))
  }))

export const ObservabilityHttpLive = HttpApiBuilder.group(
  Api,
  "observability",
  (handlers) => handlers.handle("getMetrics", () => scrapeMetrics)
)
