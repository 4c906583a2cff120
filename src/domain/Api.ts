import {
  HttpApi,
  HttpApiEndpoint,
  HttpApiGroup,
  HttpApiMiddleware,
  HttpApiSchema,
  HttpApiSecurity,
  OpenApi
} from "@effect/platform"
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
  ShuttingDown,
  TurnTimeout,
  Unauthorized,
  UnknownAgent
} from "./Errors.js"
import type { AppName } from "./Ids.js"
import { version } from "../version.js"
import { RunReply, RunRequest } from "./Run.js"
import {
  CancelReply,
  CloseReply,
  CreateSessionRequest,
  ListSessionsParams,
  SessionIdParam,
  SessionList,
  SessionReply,
  TurnEventStream,
  TurnReply,
  TurnRequest
} from "./Session.js"

// OpenAPI post-processing. The document is derived from the Api; these only fix its prose.

/** An endpoint's success response description, instead of the reply schema's identifier. */
const describeSuccess = (description: string) => (operation: Record<string, any>): Record<string, any> => ({
  ...operation,
  responses: { ...operation.responses, 200: { ...operation.responses[200], description } }
})

const refName = (schema: any): string | undefined =>
  typeof schema?.$ref === "string" ? schema.$ref.replace("#/components/schemas/", "") : undefined

const refsIn = (value: unknown, into = new Set<string>()): Set<string> => {
  if (Array.isArray(value)) value.forEach((item) => refsIn(item, into))
  else if (value !== null && typeof value === "object") {
    const name = refName(value)
    if (name !== undefined) into.add(name)
    Object.values(value).forEach((item) => refsIn(item, into))
  }
  return into
}

// Effect marks `unknown`, `any`, `object`... with a fixed `$id` ("/schemas/unknown"); used twice
// in one document that is a duplicate `$id`, which OpenAPI 3.1 (JSON Schema 2020-12) forbids.
const dropMarkerIds = (value: unknown): void => {
  if (Array.isArray(value)) value.forEach(dropMarkerIds)
  else if (value !== null && typeof value === "object") {
    const record = value as Record<string, unknown>
    if (typeof record.$id === "string" && record.$id.startsWith("/schemas/")) delete record.$id
    Object.values(record).forEach(dropMarkerIds)
  }
}

/**
 * Error responses as the gateway really sends them. `HttpApiDecodeError` is part of every
 * HttpApi but never reaches the wire (RequestErrorsLive turns it into `BadRequest`), so it is
 * dropped with the schemas only it uses; a status shared by several errors gets every
 * error's description, not just the first one's.
 */
const documentErrors = (input: Record<string, any>): Record<string, any> => {
  const spec = structuredClone(input)
  dropMarkerIds(spec)
  const schemas: Record<string, any> = spec.components.schemas
  const dropped = "HttpApiDecodeError"
  for (const item of Object.values<Record<string, any>>(spec.paths)) {
    for (const operation of Object.values<Record<string, any>>(item)) {
      for (const [status, response] of Object.entries<Record<string, any>>(operation.responses)) {
        const media = response.content?.["application/json"]
        if (Number(status) < 400 || media === undefined) continue
        const alternatives: Array<any> = (media.schema.anyOf ?? [media.schema])
          .filter((schema: any) => refName(schema) !== dropped)
        media.schema = alternatives.length === 1 ? alternatives[0] : { anyOf: alternatives }
        const described = alternatives.flatMap((schema) => {
          const name = refName(schema)
          const description = name === undefined ? undefined : schemas[name]?.description
          return description === undefined ? [] : [{ name, description }]
        })
        if (described.length === 1) response.description = described[0]!.description
        if (described.length > 1) {
          response.description = described.map(({ description, name }) => `\`${name}\`: ${description}`).join("; ")
        }
      }
    }
  }
  // Drop the schemas reachable only through the dropped one.
  const reachable = (from: unknown) => {
    const seen = refsIn(from)
    for (const name of seen) refsIn(schemas[name], seen)
    return seen
  }
  const candidates = reachable(schemas[dropped]).add(dropped)
  const used = reachable([spec.paths, Object.entries(schemas).filter(([name]) => !candidates.has(name))])
  for (const name of candidates) if (!used.has(name)) delete schemas[name]
  return spec
}

/** The app the request's bearer token belongs to. */
export class CurrentApp extends Context.Tag("clawdforge/CurrentApp")<CurrentApp, AppName>() {}

export class Authorization extends HttpApiMiddleware.Tag<Authorization>()("clawdforge/Authorization", {
  failure: Unauthorized,
  provides: CurrentApp,
  security: {
    bearer: HttpApiSecurity.bearer.pipe(
      HttpApiSecurity.annotate(
        OpenApi.Description,
        "`Authorization: Bearer <token>`. Each token names one app (configured as `app=token` pairs in " +
          "CLAWDFORGE_APP_TOKENS); an app only ever sees its own sessions. Missing or unknown token: 401."
      )
    )
  }
}) {}

export class HealthApi extends HttpApiGroup.make("health")
  .add(
    HttpApiEndpoint.get("healthz", "/healthz")
      .addSuccess(Schema.Struct({ ok: Schema.Literal(true) }))
      .annotate(OpenApi.Summary, "Liveness: 200 once the gateway serves requests")
      .annotate(OpenApi.Description, "Needs no token; meant for load balancers and process supervisors.")
      .annotate(OpenApi.Transform, describeSuccess("The gateway is up"))
  )
  .annotate(OpenApi.Description, "Liveness probe")
{}

export class RunApi extends HttpApiGroup.make("run")
  .add(
    HttpApiEndpoint.post("run", "/run")
      .setPayload(RunRequest)
      .addSuccess(RunReply)
      .addError(RunFailed)
      .annotate(OpenApi.Summary, "One-shot job through `claude -p` (v0.1 reply shape)")
      .annotate(
        OpenApi.Description,
        "Runs `claude -p <prompt> --output-format json` once and waits for it. `result` is the JSON the " +
          "agent printed (code fences tolerated), else its text. Any failure of claude (non-zero exit, " +
          "`is_error`, unreadable output, timeout) is a 502 in the v0.1 error shape."
      )
      .annotate(OpenApi.Transform, describeSuccess("claude answered: exactly `ok, result, duration_ms, stop_reason`"))
  )
  .middleware(Authorization)
  .annotate(OpenApi.Description, "One-shot jobs (the v0.1 API)")
{}

export class SessionsApi extends HttpApiGroup.make("sessions")
  .add(
    HttpApiEndpoint.post("create", "/sessions")
      .setPayload(CreateSessionRequest)
      .addSuccess(SessionReply)
      .addError(UnknownAgent)
      .addError(PoolFull)
      .addError(ShuttingDown)
      .addError(AgentFailed)
      .annotate(OpenApi.Summary, "Start a session with a live agent")
      .annotate(
        OpenApi.Description,
        "Starts the agent and takes one slot of the live-agent pool until the session is closed or " +
          "swept. `agent` names an entry of the agent registry (CLAWDFORGE_AGENTS merged over the " +
          "built-ins); `meta` is stored as given and returned by `GET /sessions/{id}`."
      )
      .annotate(OpenApi.Transform, describeSuccess("The new session, open"))
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
      .addError(ShuttingDown)
      .addError(TurnTimeout)
      .annotate(OpenApi.Summary, "Send one prompt; waits in the session's mailbox behind earlier turns")
      .annotate(
        OpenApi.Description,
        "`events` are the ACP JSON-RPC messages of the turn in order, as `acpx --format json` prints " +
          "them: the `session/prompt` request, every `session/update` and agent request (with the " +
          "gateway's answer), and last the prompt response, whose `stopReason` is `stop_reason`. " +
          "`files` are named to the agent before the prompt text. `turn_index` counts from 1."
      )
      .annotate(OpenApi.Transform, describeSuccess("The turn ran to its end"))
  )
  .add(
    HttpApiEndpoint.post("turnStream", "/sessions/:id/turn/stream")
      .setPath(SessionIdParam)
      .setPayload(TurnRequest)
      .addSuccess(TurnEventStream)
      .addError(SessionNotFound)
      .addError(SessionClosed)
      .addError(AgentFailed)
      .addError(PoolFull)
      .addError(ShuttingDown)
      .annotate(OpenApi.Summary, "Send one prompt and stream the turn as server-sent events")
      .annotate(
        OpenApi.Description,
        "Body as `/turn`. Answers `text/event-stream`: one `event: acp` per ACP JSON-RPC message as it " +
          "happens (`data:` the message), then one `event: done` whose data is the `/turn` reply without " +
          "`events`, or `event: error` with `{ok: false, error, message}` (a failed agent, a timeout). " +
          "A client that disconnects does not stop the turn, and the turn is still recorded."
      )
      .annotate(OpenApi.Transform, describeSuccess("The turn's events as they happen"))
  )
  .add(
    HttpApiEndpoint.post("cancel", "/sessions/:id/cancel")
      .setPath(SessionIdParam)
      .addSuccess(CancelReply)
      .addError(SessionNotFound)
      .annotate(OpenApi.Summary, "Cancel the running turn")
      .annotate(
        OpenApi.Description,
        "Sends `session/cancel` to the agent. The running turn ends with `stop_reason: \"cancelled\"`; " +
          "the session stays usable. `cancelled` is false when no turn was running."
      )
      .annotate(OpenApi.Transform, describeSuccess("Whether a running turn was cancelled"))
  )
  .add(
    HttpApiEndpoint.get("get", "/sessions/:id")
      .setPath(SessionIdParam)
      .addSuccess(SessionReply)
      .addError(SessionNotFound)
      .annotate(OpenApi.Summary, "Session state")
      .annotate(OpenApi.Description, "Timestamps are integer Unix seconds; `status` is `closed` once `closed_at` is set.")
      .annotate(OpenApi.Transform, describeSuccess("The session"))
  )
  .add(
    HttpApiEndpoint.get("list", "/sessions")
      .setUrlParams(ListSessionsParams)
      .addSuccess(SessionList)
      .annotate(OpenApi.Summary, "The caller's sessions, newest first")
      .annotate(
        OpenApi.Description,
        "Only the calling app's sessions. `status` filters open or closed ones; `limit` is 1 to 1000."
      )
      .annotate(OpenApi.Transform, describeSuccess("The caller's sessions"))
  )
  .add(
    HttpApiEndpoint.del("close", "/sessions/:id")
      .setPath(SessionIdParam)
      .addSuccess(CloseReply)
      .addError(SessionNotFound)
      .annotate(OpenApi.Summary, "Close the session and stop its agent (idempotent)")
      .annotate(
        OpenApi.Description,
        "Stops the agent and frees its pool slot; the ledger keeps the session until the hard TTL. " +
          "Closing a closed session answers `{ok: true, already_closed: true}`."
      )
      .annotate(OpenApi.Transform, describeSuccess("Closed now, or `already_closed`"))
  )
  .middleware(Authorization)
  .annotate(
    OpenApi.Description,
    "Multi-turn sessions, each with its own live agent. Another app's session answers exactly like a " +
      "missing one: 404, never 403."
  )
{}

export class ObservabilityApi extends HttpApiGroup.make("observability")
  .add(
    HttpApiEndpoint.get("metrics", "/metrics")
      .addSuccess(
        Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/plain; version=0.0.4" }))
      )
      .annotate(OpenApi.Summary, "Prometheus metrics")
      .annotate(
        OpenApi.Description,
        "Text exposition format: `clawdforge_sessions_live`, `clawdforge_pool_capacity`, " +
          "`clawdforge_turns_total{app,outcome}`, `clawdforge_turn_duration_seconds` (histogram). " +
          "Needs an app token like every other endpoint."
      )
      .annotate(OpenApi.Transform, describeSuccess("The metrics, as Prometheus scrapes them"))
  )
  .middleware(Authorization)
  .annotate(OpenApi.Description, "What operators watch")
{}

export class Api extends HttpApi.make("clawdforge")
  .add(HealthApi)
  .add(RunApi)
  .add(SessionsApi)
  .add(ObservabilityApi)
  // Raised by the gateway's own request handling (decode, routing, body limit).
  .addError(BadRequest)
  .addError(NotFound)
  .addError(PayloadTooLarge)
  .annotate(OpenApi.Title, "clawdforge")
  .annotate(OpenApi.Version, version)
  .annotate(OpenApi.Summary, "Self-hosted gateway for running coding agents as a service")
  .annotate(
    OpenApi.Description,
    "Runs coding agents (Claude Code, Codex, Gemini CLI, any Agent Client Protocol agent) as a service: " +
      "one-shot jobs (`POST /run`) and multi-turn sessions (`/sessions`).\n\n" +
      "Every request except `GET /healthz`, `GET /openapi.json` and `GET /docs` needs " +
      "`Authorization: Bearer <token>`. Bodies are JSON. Every error is `{ok: false, error, message}` " +
      "(plus fields named in its schema): `error` is a stable machine-readable code, `_tag` names the " +
      "error type for typed clients. Bad input is always a 4xx, never a 500."
  )
  .annotate(OpenApi.License, { name: "MIT" })
  .annotate(OpenApi.Transform, documentErrors)
{}
