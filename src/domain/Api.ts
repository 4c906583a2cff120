import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiMiddleware, HttpApiSecurity, OpenApi } from "@effect/platform"
import { Context, Schema } from "effect"
import {
  AgentFailed,
  BadRequest,
  NotFound,
  PayloadTooLarge,
  PoolFull,
  RunFailed,
  SessionClosed,
  SessionNotFound,
  TurnTimeout,
  Unauthorized,
  UnknownAgent
} from "./Errors.js"
import type { AppName } from "./Ids.js"
import { RunReply, RunRequest } from "./Run.js"
import {
  CloseReply,
  CreateSessionRequest,
  ListSessionsParams,
  SessionIdParam,
  SessionList,
  SessionReply,
  TurnReply,
  TurnRequest
} from "./Session.js"

/** The app the request's bearer token belongs to. */
export class CurrentApp extends Context.Tag("clawdforge/CurrentApp")<CurrentApp, AppName>() {}

export class Authorization extends HttpApiMiddleware.Tag<Authorization>()("clawdforge/Authorization", {
  failure: Unauthorized,
  provides: CurrentApp,
  security: {
    bearer: HttpApiSecurity.bearer.pipe(
      HttpApiSecurity.annotate(OpenApi.Description, "A per-app token from CLAWDFORGE_APP_TOKENS")
    )
  }
}) {}

export class HealthApi extends HttpApiGroup.make("health")
  .add(
    HttpApiEndpoint.get("healthz", "/healthz")
      .addSuccess(Schema.Struct({ ok: Schema.Literal(true) }))
      .annotate(OpenApi.Summary, "Liveness: 200 once the gateway serves requests")
  )
{}

export class RunApi extends HttpApiGroup.make("run")
  .add(
    HttpApiEndpoint.post("run", "/run")
      .setPayload(RunRequest)
      .addSuccess(RunReply)
      .addError(RunFailed)
      .annotate(OpenApi.Summary, "One-shot job through `claude -p` (v0.1 reply shape)")
  )
  .middleware(Authorization)
{}

export class SessionsApi extends HttpApiGroup.make("sessions")
  .add(
    HttpApiEndpoint.post("create", "/sessions")
      .setPayload(CreateSessionRequest)
      .addSuccess(SessionReply)
      .addError(UnknownAgent)
      .addError(PoolFull)
      .addError(AgentFailed)
      .annotate(OpenApi.Summary, "Start a session with a live agent")
  )
  .add(
    HttpApiEndpoint.post("turn", "/sessions/:id/turn")
      .setPath(SessionIdParam)
      .setPayload(TurnRequest)
      .addSuccess(TurnReply)
      .addError(SessionNotFound)
      .addError(SessionClosed)
      .addError(AgentFailed)
      .addError(PoolFull)
      .addError(TurnTimeout)
      .annotate(OpenApi.Summary, "Send one prompt; waits in the session's mailbox behind earlier turns")
  )
  .add(
    HttpApiEndpoint.get("get", "/sessions/:id")
      .setPath(SessionIdParam)
      .addSuccess(SessionReply)
      .addError(SessionNotFound)
      .annotate(OpenApi.Summary, "Session state")
  )
  .add(
    HttpApiEndpoint.get("list", "/sessions")
      .setUrlParams(ListSessionsParams)
      .addSuccess(SessionList)
      .annotate(OpenApi.Summary, "The caller's sessions, newest first")
  )
  .add(
    HttpApiEndpoint.del("close", "/sessions/:id")
      .setPath(SessionIdParam)
      .addSuccess(CloseReply)
      .addError(SessionNotFound)
      .annotate(OpenApi.Summary, "Close the session and stop its agent (idempotent)")
  )
  .middleware(Authorization)
{}

export class Api extends HttpApi.make("clawdforge")
  .add(HealthApi)
  .add(RunApi)
  .add(SessionsApi)
  // Raised by the gateway's own request handling (decode, routing, body limit).
  .addError(BadRequest)
  .addError(NotFound)
  .addError(PayloadTooLarge)
  .annotate(OpenApi.Title, "clawdforge")
  .annotate(OpenApi.Description, "Self-hosted gateway for running coding agents as a service")
{}
