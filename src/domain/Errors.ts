import { HttpApiSchema } from "@effect/platform"
import { Schema } from "effect"

// Every error body has the shape `{ ok: false, error, message }`: `error` is a stable
// machine-readable code, `message` a sentence for people. The `_tag` lets typed
// clients tell errors with the same status apart.
const errorFields = <const Code extends string>(code: Code) => ({
  ok: Schema.Literal(false).pipe(
    Schema.propertySignature,
    Schema.withConstructorDefault(() => false as const)
  ),
  error: Schema.Literal(code).pipe(
    Schema.propertySignature,
    Schema.withConstructorDefault(() => code)
  ),
  message: Schema.String
})

export class Unauthorized extends Schema.TaggedError<Unauthorized>()(
  "Unauthorized",
  errorFields("unauthorized"),
  HttpApiSchema.annotations({ status: 401, description: "Missing or unknown bearer token" })
) {}

export class BadRequest extends Schema.TaggedError<BadRequest>()(
  "BadRequest",
  errorFields("bad_request"),
  HttpApiSchema.annotations({ status: 400, description: "Malformed or invalid request" })
) {}

export class UnknownAgent extends Schema.TaggedError<UnknownAgent>()(
  "UnknownAgent",
  { ...errorFields("unknown_agent"), agents: Schema.Array(Schema.String) },
  HttpApiSchema.annotations({ status: 400, description: "The agent is not in the registry" })
) {}

export class NotFound extends Schema.TaggedError<NotFound>()(
  "NotFound",
  errorFields("not_found"),
  HttpApiSchema.annotations({ status: 404, description: "No such route" })
) {}

export class SessionNotFound extends Schema.TaggedError<SessionNotFound>()(
  "SessionNotFound",
  errorFields("session_not_found"),
  HttpApiSchema.annotations({
    status: 404,
    description: "No such session for this app (another app's session is reported the same way)"
  })
) {}

export class SessionClosed extends Schema.TaggedError<SessionClosed>()(
  "SessionClosed",
  errorFields("session_closed"),
  HttpApiSchema.annotations({ status: 410, description: "The session is closed" })
) {}

export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()(
  "PayloadTooLarge",
  errorFields("payload_too_large"),
  HttpApiSchema.annotations({ status: 413, description: "The request body is too large" })
) {}

export class AgentFailed extends Schema.TaggedError<AgentFailed>()(
  "AgentFailed",
  {
    ...errorFields("agent_failed"),
    stderr: Schema.optional(Schema.String),
    events: Schema.optional(Schema.Array(Schema.Unknown))
  },
  HttpApiSchema.annotations({
    status: 502,
    description: "The agent could not start, failed or exited; `events` holds what it said before"
  })
) {}

export class PoolFull extends Schema.TaggedError<PoolFull>()(
  "PoolFull",
  { ...errorFields("pool_full"), capacity: Schema.Int },
  HttpApiSchema.annotations({ status: 503, description: "Every live agent slot is taken" })
) {}

export class TurnTimeout extends Schema.TaggedError<TurnTimeout>()(
  "TurnTimeout",
  { ...errorFields("turn_timeout"), timeout_secs: Schema.Number },
  HttpApiSchema.annotations({ status: 504, description: "The turn ran past the turn timeout and was cancelled" })
) {}

/** The v0.1 `/run` error reply: 502 `{ok:false, error, stderr, duration_ms, stop_reason}`. */
export class RunFailed extends Schema.TaggedError<RunFailed>()(
  "RunFailed",
  {
    ok: errorFields("run_failed").ok,
    error: Schema.String,
    message: Schema.String,
    stderr: Schema.String,
    duration_ms: Schema.Int,
    stop_reason: Schema.NullOr(Schema.String)
  },
  HttpApiSchema.annotations({ status: 502, description: "claude failed (v0.1 error shape)" })
) {}

export class ShuttingDown extends Schema.TaggedError<ShuttingDown>()(
  "ShuttingDown",
  errorFields("shutting_down"),
  HttpApiSchema.annotations({ status: 503, description: "The gateway is shutting down" })
) {}
