import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import { Schema } from "effect"
import { PermissionMode } from "./Session.js"

// Every error body has the shape `{ ok: false, error, message }`: `error` is a stable
// machine-readable code, `message` a sentence for people. The `_tag` lets typed
// clients tell errors with the same status apart.
export const errorFields = <const Code extends string>(code: Code) => ({
  ok: Schema.Literal(false).pipe(
    Schema.propertySignature,
    Schema.withConstructorDefault(() => false as const)
  ),
  error: Schema.Literal(code).annotations({ description: "A stable machine-readable code" }).pipe(
    Schema.propertySignature,
    Schema.withConstructorDefault(() => code)
  ),
  message: Schema.String.annotations({ description: "What went wrong, for people" })
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
  {
    ...errorFields("unknown_agent"),
    agents: Schema.Array(Schema.String).annotations({ description: "The agents this gateway knows" })
  },
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

export class TurnNotFound extends Schema.TaggedError<TurnNotFound>()(
  "TurnNotFound",
  errorFields("turn_not_found"),
  HttpApiSchema.annotations({ status: 404, description: "The session has no turn with that index" })
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
    // ACP's "authentication required" (-32000) says what to do about it: give the agent credentials.
    error: Schema.Literal("agent_failed", "agent_auth_required").pipe(
      Schema.annotations({
        description: "`agent_auth_required` when the agent asked to be authenticated (ACP error -32000): give it " +
          "credentials (e.g. the app's `ANTHROPIC_API_KEY` in its environment); else `agent_failed`"
      }),
      Schema.propertySignature,
      Schema.withConstructorDefault(() => "agent_failed" as const)
    ),
    stderr: Schema.optional(Schema.String.annotations({ description: "What the agent printed on stderr" })),
    events: Schema.optional(
      Schema.Array(Schema.Unknown).annotations({ description: "The ACP messages of the turn before it failed" })
    )
  },
  HttpApiSchema.annotations({
    status: 502,
    description: "The agent could not start, failed or exited; `events` holds what it said before"
  })
) {}

export class PoolFull extends Schema.TaggedError<PoolFull>()(
  "PoolFull",
  {
    ...errorFields("pool_full"),
    capacity: Schema.Int.annotations({ description: "How many live agents the gateway holds at most" })
  },
  HttpApiSchema.annotations({ status: 503, description: "Every live agent slot is taken" })
) {}

export class TurnTimeout extends Schema.TaggedError<TurnTimeout>()(
  "TurnTimeout",
  {
    ...errorFields("turn_timeout"),
    timeout_secs: Schema.Number.annotations({ description: "The turn timeout it ran past" })
  },
  HttpApiSchema.annotations({ status: 504, description: "The turn ran past the turn timeout and was cancelled" })
) {}

/** The v0.1 `/run` error reply: 502 `{ok:false, error, stderr, duration_ms, stop_reason}`. */
export class RunFailed extends Schema.TaggedError<RunFailed>()(
  "RunFailed",
  {
    ok: errorFields("run_failed").ok,
    error: Schema.String.annotations({ description: "What failed (v0.1): `timeout`, `spawn_failed`, `claude exit <code>`, ..." }),
    message: Schema.String.annotations({ description: "What went wrong, for people" }),
    stderr: Schema.String.annotations({ description: "What claude printed on stderr" }),
    duration_ms: Schema.Int.annotations({ description: "How long claude ran, in milliseconds" }),
    stop_reason: Schema.NullOr(Schema.String).annotations({ description: "claude's `stop_reason`, when it gave one" })
  },
  HttpApiSchema.annotations({ status: 502, description: "claude failed (v0.1 error shape)" })
) {}

export class ShuttingDown extends Schema.TaggedError<ShuttingDown>()(
  "ShuttingDown",
  errorFields("shutting_down"),
  HttpApiSchema.annotations({ status: 503, description: "The gateway is shutting down" })
) {}

export class IdempotencyKeyReused extends Schema.TaggedError<IdempotencyKeyReused>()(
  "IdempotencyKeyReused",
  errorFields("idempotency_key_reused"),
  HttpApiSchema.annotations({
    status: 422,
    description: "The Idempotency-Key was used before by this app for a different request (method, path or body)"
  })
) {}

export class InvalidConfig extends Schema.TaggedError<InvalidConfig>()(
  "InvalidConfig",
  {
    ...errorFields("invalid_config"),
    offered: Schema.Record({ key: Schema.String, value: Schema.Array(Schema.String) }).annotations({
      description: "What the agent offers: each config option's id (and `model`, `mode`) with its values"
    })
  },
  HttpApiSchema.annotations({ status: 400, description: "A model, mode or config value the agent does not offer" })
) {}

export class PermissionModeNotAllowed extends Schema.TaggedError<PermissionModeNotAllowed>()(
  "PermissionModeNotAllowed",
  {
    ...errorFields("permission_mode_not_allowed"),
    allowed: Schema.Array(PermissionMode).annotations({ description: "The modes the app may ask for" })
  },
  HttpApiSchema.annotations({
    status: 400,
    description: "The permission mode asked for (or, when none is, the gateway's default) is not among the app's " +
      "`permission_modes`"
  })
) {}

export class PermissionNotFound extends Schema.TaggedError<PermissionNotFound>()(
  "PermissionNotFound",
  errorFields("permission_not_found"),
  HttpApiSchema.annotations({ status: 404, description: "No pending request with that id (unknown, or answered already)" })
) {}

export class AppSessionLimit extends Schema.TaggedError<AppSessionLimit>()(
  "AppSessionLimit",
  {
    ...errorFields("app_session_limit"),
    max_sessions: Schema.Int.annotations({ description: "How many live sessions the app may hold at once" })
  },
  HttpApiSchema.annotations({ status: 429, description: "The app holds as many live sessions as its `max_sessions` allows" })
) {}

export class RateLimited extends Schema.TaggedError<RateLimited>()(
  "RateLimited",
  {
    ...errorFields("rate_limited"),
    turns_per_minute: Schema.Int.annotations({ description: "How many turns the app may start in any 60 s" }),
    retry_after_secs: Schema.Int.annotations({ description: "Seconds until a turn is allowed again (also `Retry-After`)" })
  },
  HttpApiSchema.annotations({ status: 429, description: "The app started `turns_per_minute` turns in the last 60 s" })
) {}

export class BudgetExhausted extends Schema.TaggedError<BudgetExhausted>()(
  "BudgetExhausted",
  {
    ...errorFields("budget_exhausted"),
    daily_cost_usd: Schema.Number.annotations({ description: "What the app's agents may cost per UTC day" }),
    cost_today_usd: Schema.Number.annotations({ description: "What they cost since 00:00 UTC" }),
    resets_at: Schema.Int.annotations({ description: "The next 00:00 UTC (Unix seconds), when the day's cost starts at 0" })
  },
  HttpApiSchema.annotations({
    status: 429,
    description: "The app's agents cost `daily_cost_usd` or more today: creates and turns are refused until 00:00 UTC"
  })
) {}

export class QueueFull extends Schema.TaggedError<QueueFull>()(
  "QueueFull",
  {
    ...errorFields("queue_full"),
    max_queued_turns: Schema.Int.annotations({ description: "How many turns a session may hold accepted and not yet running" })
  },
  HttpApiSchema.annotations({
    status: 429,
    description: "The session holds `max_queued_turns` turns accepted and not yet running: wait for one to start"
  })
) {}

export class TooManyStreams extends Schema.TaggedError<TooManyStreams>()(
  "TooManyStreams",
  {
    ...errorFields("too_many_streams"),
    max_streams: Schema.Int.annotations({ description: "How many SSE streams the app may hold open at once" })
  },
  HttpApiSchema.annotations({ status: 429, description: "The app holds `max_streams` open streams: close one first" })
) {}

export class StorageQuota extends Schema.TaggedError<StorageQuota>()(
  "StorageQuota",
  {
    ...errorFields("storage_quota"),
    max_stored_mb: Schema.Int.annotations({ description: "What the app's stored turns may take in the ledger, in MB" }),
    stored_mb: Schema.Number.annotations({ description: "What they take now, in MB" })
  },
  HttpApiSchema.annotations({
    status: 429,
    description: "The app's stored turns take its `max_stored_mb` or more: creates and turns are refused until the " +
      "sweeper removes old sessions"
  })
) {}

export class GitCloneFailed extends Schema.TaggedError<GitCloneFailed>()(
  "GitCloneFailed",
  errorFields("git_clone_failed"),
  HttpApiSchema.annotations({
    status: 400,
    description: "A create's `git` repository could not be cloned (or its `ref` checked out): `message` holds git's " +
      "first lines, credentials masked; nothing was kept (no workspace, no session)"
  })
) {}

export class TooManyAuthFailures extends Schema.TaggedError<TooManyAuthFailures>()(
  "TooManyAuthFailures",
  {
    ...errorFields("too_many_auth_failures"),
    retry_after_secs: Schema.Int.annotations({ description: "Seconds until a wrong token from this address is counted again (also `Retry-After`)" })
  },
  HttpApiSchema.annotations({
    status: 429,
    description: "Too many wrong tokens from the client's address (CLAWDFORGE_AUTH_FAILURES_PER_MINUTE): a wrong token " +
      "is refused at once until `retry_after_secs`; a valid token still passes"
  })
) {}

export class RequestTimeout extends Schema.TaggedError<RequestTimeout>()(
  "RequestTimeout",
  errorFields("request_timeout"),
  HttpApiSchema.annotations({
    status: 408,
    description: "The request's head and body did not arrive within CLAWDFORGE_BODY_TIMEOUT_SECS"
  })
) {}
