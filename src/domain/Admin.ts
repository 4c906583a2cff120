import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import { AgentLimited, SandboxMode } from "./Agent.js"
import { errorFields, NotFound, TooManyAuthFailures, Unauthorized } from "./Errors.js"
import { AppName, IntFromString, UnixSeconds } from "./Ids.js"
import { PermissionRequest } from "./Permission.js"
import { Session, SessionStatus } from "./Session.js"
import { AppLimitsSpec, Limits, LimitsReport, UsageParams, UsageTotals } from "./Tenancy.js"
import { TurnSummary } from "./Turn.js"

// The operators' API (`/admin/*`) and what the console reads: every app's apps, sessions, usage
// and audit trail, behind the admin token.

/**
 * The operators' guard: `Authorization: Bearer <CLAWDFORGE_ADMIN_TOKEN>`. An app token is a 401;
 * without the variable set, every route behind it is a 404 that says the admin API is off. A
 * group uses it with `.middleware(AdminAuthorization)` and its layer takes `AdminAuthorizationLive`.
 */
export class AdminAuthorization extends HttpApiMiddleware.Tag<AdminAuthorization>()("clawdforge/AdminAuthorization", {
  failure: Schema.Union(Unauthorized, NotFound, TooManyAuthFailures),
  security: {
    adminBearer: HttpApiSecurity.bearer.pipe(
      HttpApiSecurity.annotate(
        OpenApi.Description,
        "`Authorization: Bearer <admin token>`: the operators' token, CLAWDFORGE_ADMIN_TOKEN. An app's token is " +
          "refused (401 with `WWW-Authenticate: Bearer realm=\"clawdforge-admin\"`). Without CLAWDFORGE_ADMIN_TOKEN " +
          "the admin API is off: its routes answer 404 `not_found`."
      )
    )
  }
}) {}

export class AppExists extends Schema.TaggedError<AppExists>()(
  "AppExists",
  errorFields("app_exists"),
  HttpApiSchema.annotations({
    status: 409,
    description: "An active app has that name already (revoke it first to issue a new token)"
  })
) {}

export class AppNotFound extends Schema.TaggedError<AppNotFound>()(
  "AppNotFound",
  errorFields("app_not_found"),
  HttpApiSchema.annotations({
    status: 404,
    description: "No app of that name in the ledger (apps of CLAWDFORGE_APP_TOKENS are removed there)"
  })
) {}

const Ok = Schema.Literal(true)

export const AppNameParam = Schema.Struct({ name: AppName.annotations({ description: "The app's name" }) })

export const AdminApp = Schema.Struct({
  name: AppName,
  source: Schema.Literal("environment", "ledger").annotations({
    description: "Where its token is configured: CLAWDFORGE_APP_TOKENS, or the ledger (`POST /admin/apps`, " +
      "`clawdforge apps add`)"
  }),
  created_at: Schema.NullOr(UnixSeconds).annotations({ description: "When the ledger issued its token" }),
  revoked_at: Schema.NullOr(UnixSeconds).annotations({ description: "When its token was revoked; null: active" }),
  limits: Limits,
  use: LimitsReport.fields.use
}).annotations({ identifier: "AdminApp", description: "An app by name (never its token), its limits and use" })

export const AdminAppList = Schema.Struct({ ok: Ok, count: Schema.Int, apps: Schema.Array(AdminApp) }).annotations({
  identifier: "AdminAppList",
  description: "Every app, sorted by name"
})

export const CreateAppRequest = Schema.Struct({ name: AppName }).annotations({
  identifier: "CreateAppRequest",
  // A misspelt field is a 400 that names it (`unknown field "modle"`), never silently ignored.
  parseOptions: { onExcessProperty: "error" },
  description: "The new app's name: a letter or digit, then letters, digits, _ . - (64 at most)"
})

export const CreatedApp = Schema.Struct({
  ok: Ok,
  name: AppName,
  token: Schema.String.annotations({ description: "Its bearer token: shown this once, only its SHA-256 is kept" }),
  created_at: UnixSeconds
}).annotations({ identifier: "CreatedApp", description: "The new app and its token" })

export const RevokeAppReply = Schema.Struct({
  ok: Ok,
  already_revoked: Schema.optional(Schema.Literal(true))
}).annotations({ identifier: "RevokeAppReply", description: "Revoked now, or `already_revoked`" })

/** `PUT /admin/apps/{name}/limits`: the app's limits in the ledger, replaced. */
export const SetLimitsRequest = AppLimitsSpec.annotations({
  identifier: "SetLimitsRequest",
  // A misspelt limit is refused: ignored, it would clear the limit it meant to set.
  parseOptions: { onExcessProperty: "error" },
  description: "`max_sessions`, `turns_per_minute` (whole numbers) and `daily_cost_usd` (US dollars), each 0 or more; " +
    "`permission_modes` (a non-empty list of the modes the app's creates may ask for); `network` (`host`, `none` or " +
    "`allow:HOST[:PORT],...`, as CLAWDFORGE_AGENT_NETWORK); `max_queued_turns` (per session), `max_streams` and " +
    "`max_stored_mb` and `max_disk_mb` (whole numbers, 0 or more); `warm` (`{\"agent\": N}`: ready sessions kept per agent). A limit left out (or null) is not set in the ledger: " +
    "CLAWDFORGE_APP_LIMITS applies to it, if it names one"
})

// `default`: the gateway-wide default (CLAWDFORGE_MAX_QUEUED_TURNS, CLAWDFORGE_MAX_STREAMS_PER_APP).
const LimitSource = Schema.Literal("ledger", "CLAWDFORGE_APP_LIMITS", "CLAWDFORGE_APP_LIMITS *", "default", "none")

export const AppLimitsReply = Schema.Struct({
  ok: Ok,
  app: AppName,
  limits: Limits,
  sources: Schema.Struct({
    max_sessions: LimitSource,
    turns_per_minute: LimitSource,
    daily_cost_usd: LimitSource,
    permission_modes: LimitSource,
    network: LimitSource,
    max_queued_turns: LimitSource,
    max_streams: LimitSource,
    max_disk_mb: LimitSource,
    max_stored_mb: LimitSource,
    warm: LimitSource
  }).annotations({ description: "Where each limit comes from now" })
}).annotations({ identifier: "AppLimitsReply", description: "The app's limits as they apply now" })

export const AdminSession = Schema.Struct({
  ...Session.fields,
  live: Schema.Boolean.annotations({ description: "Whether its agent is running now (it holds a pool slot)" }),
  pending_permissions: Schema.Int.annotations({ description: "Its requests waiting for an answer (ask mode)" })
}).annotations({ identifier: "AdminSession", description: "A session of any app" })
export type AdminSession = typeof AdminSession.Type

export const AdminSessionsParams = Schema.Struct({
  app: Schema.optionalWith(AppName.annotations({ description: "Only this app's sessions" }), { exact: true }),
  status: Schema.optionalWith(SessionStatus.annotations({ description: "Only open or only closed sessions" }), {
    exact: true
  }),
  limit: Schema.optionalWith(
    IntFromString({ minimum: 1, maximum: 1000, description: "At most this many sessions (default 100)" }),
    { exact: true }
  )
})

export const AdminSessionList = Schema.Struct({ ok: Ok, count: Schema.Int, sessions: Schema.Array(AdminSession) })
  .annotations({ identifier: "AdminSessionList", description: "Sessions of every app, newest first" })

export const AuditEvent = Schema.Struct({
  id: Schema.Int.annotations({ description: "Increasing: page with `before`" }),
  session_id: Schema.String,
  app_name: Schema.NullOr(Schema.String).annotations({ description: "Its session's app (null once it is deleted)" }),
  at: UnixSeconds,
  event: Schema.String.annotations({
    description: "`create`, `turn`, `turn_failed`, `close`, `sweep_close`, `agent_start`, `agent_exit`, " +
      "`turn_interrupted`, `permission_request`, `permission_answer`, `revoked`, `hibernated` (its agent stopped, " +
      "`reason`: `idle` or `pool_full`), `resumed` (started again by the next turn, `origin`: how its ACP session came back)"
  }),
  detail: Schema.Unknown.annotations({ description: "What the event records (JSON), or null" })
}).annotations({ identifier: "AuditEvent", description: "One entry of the audit trail" })

export const AdminSessionDetail = Schema.Struct({
  ok: Ok,
  session: AdminSession,
  turns: Schema.Array(TurnSummary).annotations({ description: "Its turns, oldest first (the last 1000), without messages" }),
  events: Schema.Array(AuditEvent).annotations({ description: "Its audit trail, oldest first" }),
  permissions: Schema.Array(PermissionRequest).annotations({ description: "Its requests waiting for an answer" })
}).annotations({ identifier: "AdminSessionDetail", description: "A session with its turns, audit trail and pending requests" })

export const AuditParams = Schema.Struct({
  app: Schema.optionalWith(AppName.annotations({ description: "Only this app's sessions' events" }), { exact: true }),
  before: Schema.optionalWith(
    IntFromString({ minimum: 1, maximum: 9007199254740991, description: "Only events older than this `id`" }),
    { exact: true }
  ),
  limit: Schema.optionalWith(
    IntFromString({ minimum: 1, maximum: 1000, description: "At most this many events (default 100)" }),
    { exact: true }
  )
})

export const AuditList = Schema.Struct({ ok: Ok, count: Schema.Int, events: Schema.Array(AuditEvent) }).annotations({
  identifier: "AuditList",
  description: "The audit trail of every session, newest first"
})

export const PendingPermission = Schema.Struct({
  session_id: Schema.String,
  app_name: AppName,
  ...PermissionRequest.fields
}).annotations({ identifier: "PendingPermission", description: "A request waiting for an answer, with its session" })

export const PendingPermissionList = Schema.Struct({
  ok: Ok,
  count: Schema.Int,
  permissions: Schema.Array(PendingPermission)
}).annotations({ identifier: "PendingPermissionList", description: "Every live session's pending requests" })

export const AdminUsageParams = UsageParams.pick("from", "to")

export const AppUsage = Schema.Struct({ app: Schema.String, ...UsageTotals.fields }).annotations({
  identifier: "AppUsage"
})

export const AdminUsageReply = Schema.Struct({
  ok: Ok,
  totals: UsageTotals,
  apps: Schema.Array(AppUsage).annotations({ description: "Per app, sorted by name" })
}).annotations({ identifier: "AdminUsageReply", description: "What every app used in the window" })

export const MinuteActivity = Schema.Struct({
  at: UnixSeconds.annotations({ description: "The minute's start" }),
  turns: Schema.Int.annotations({ description: "Turns that ended in it" }),
  cost_usd: Schema.Number
}).annotations({ identifier: "MinuteActivity" })

export const Overview = Schema.Struct({
  ok: Ok,
  at: UnixSeconds,
  pool: Schema.Struct({
    live: Schema.Int.annotations({ description: "Live agents (pool slots taken)" }),
    capacity: Schema.Int.annotations({ description: "CLAWDFORGE_MAX_LIVE_SESSIONS" }),
    ready: Schema.optional(Schema.Int.annotations({
      description: "Ready sessions among the live agents (the apps' `warm` limits): nobody's session until a create takes one"
    }))
  }),
  live_by_app: Schema.Array(Schema.Struct({ app: AppName, live_sessions: Schema.Int })),
  turns_last_minute: Schema.Int.annotations({ description: "Turns that ended in the last 60 s" }),
  minutes: Schema.Array(MinuteActivity).annotations({ description: "The last 30 minutes, oldest first" }),
  cost_today_usd: Schema.Number.annotations({ description: "Every app's cost since 00:00 UTC" }),
  turns_today: Schema.Int.annotations({ description: "Turns that ended since 00:00 UTC" }),
  pending_permissions: Schema.Int,
  apps: Schema.Int.annotations({ description: "Active apps" }),
  sandbox: SandboxMode,
  limits: AgentLimited
}).annotations({ identifier: "Overview", description: "The gateway at a glance" })
