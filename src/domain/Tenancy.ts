import { Schema } from "effect"
import { AppName, IntFromString, UnixSeconds } from "./Ids.js"
import { PermissionMode } from "./Session.js"

// Tenancy: an app's limits and use (`GET /limits`), and what apps used (`GET /usage`).

/** A count limit (`max_sessions`, `turns_per_minute`). */
export const LimitCount = Schema.Int.pipe(
  Schema.nonNegative(),
  Schema.annotations({ message: () => "Expected a whole number, 0 or more" })
)
/** An amount limit (`daily_cost_usd`). */
export const LimitUsd = Schema.Number.pipe(
  Schema.filter((usd) => Number.isFinite(usd) && usd >= 0, {
    message: () => "Expected an amount in US dollars, 0 or more"
  })
)

/**
 * An app's limits as `CLAWDFORGE_APP_LIMITS` and `clawdforge apps limits` give them: a field left
 * out is not set there (a lower source applies); in `CLAWDFORGE_APP_LIMITS`, `null` says "no limit"
 * for this app over the `"*"` default.
 */
const orNoLimit = <A, I>(schema: Schema.Schema<A, I>, expected: string) =>
  Schema.optionalWith(
    Schema.NullOr(schema).annotations({
      message: () => ({ message: `Expected ${expected}, or null for no limit`, override: true })
    }),
    { exact: true }
  )

/** Every permission mode: an app's ceiling when none is set. */
export const allPermissionModes: ReadonlyArray<PermissionMode> = PermissionMode.literals

/** The `permission_modes` limit: the modes an app may ask for (its ceiling), at least one. */
export const PermissionModes = Schema.Array(PermissionMode).pipe(
  Schema.minItems(1),
  Schema.annotations({
    message: () => ({ message: `Expected a non-empty list of ${allPermissionModes.join(", ")}`, override: true })
  })
)

/**
 * The `network` limit as written: `host`, `none` or `allow:HOST[:PORT],...`, as
 * `CLAWDFORGE_AGENT_NETWORK`. Its grammar is `parseAgentNetwork`'s (src/services), which checks it
 * where it enters: `AppLimits` (the environment, the ledger's writes), the CLI option.
 */
export const NetworkLimit = Schema.String.pipe(
  Schema.minLength(1),
  Schema.annotations({ message: () => "Expected host, none or allow:HOST[:PORT],..." })
)

/**
 * The `warm` limit: how many ready sessions of each agent the gateway keeps for the app
 * (`{"claude": 2}`), started and `session/new` done, for creates to take.
 */
export const WarmLimit = Schema.Record({ key: Schema.String.pipe(Schema.minLength(1)), value: LimitCount }).annotations({
  message: () => ({ message: "Expected an object of agent names to whole numbers, 0 or more", override: true })
})
export type WarmLimit = typeof WarmLimit.Type

export const AppLimitsSpec = Schema.Struct({
  max_sessions: orNoLimit(LimitCount, "a whole number, 0 or more"),
  turns_per_minute: orNoLimit(LimitCount, "a whole number, 0 or more"),
  daily_cost_usd: orNoLimit(LimitUsd, "an amount in US dollars, 0 or more"),
  permission_modes: orNoLimit(PermissionModes, `a non-empty list of ${allPermissionModes.join(", ")}`),
  network: orNoLimit(NetworkLimit, "host, none or allow:HOST[:PORT],..."),
  max_queued_turns: orNoLimit(LimitCount, "a whole number, 0 or more"),
  max_streams: orNoLimit(LimitCount, "a whole number, 0 or more"),
  max_disk_mb: orNoLimit(LimitCount, "a whole number of MB, 0 or more"),
  max_stored_mb: orNoLimit(LimitCount, "a whole number of MB, 0 or more"),
  warm: orNoLimit(WarmLimit, "an object of agent names to whole numbers, 0 or more")
})
export type AppLimitsSpec = typeof AppLimitsSpec.Type

/** Limits as `clawdforge apps limits` stores them: each field given is set, the others kept. */
export interface LimitsPatch {
  readonly max_sessions?: number | undefined
  readonly turns_per_minute?: number | undefined
  readonly daily_cost_usd?: number | undefined
  readonly permission_modes?: ReadonlyArray<PermissionMode> | undefined
  readonly network?: string | undefined
  readonly max_queued_turns?: number | undefined
  readonly max_streams?: number | undefined
  readonly max_disk_mb?: number | undefined
  readonly max_stored_mb?: number | undefined
  readonly warm?: WarmLimit | undefined
}

/** The names of the limits: also the `limit` label of `clawdforge_limited_total`. */
export type LimitName = keyof AppLimitsSpec
export const limitNames: ReadonlyArray<LimitName> = [
  "max_sessions",
  "turns_per_minute",
  "daily_cost_usd",
  "permission_modes",
  "network",
  "max_queued_turns",
  "max_streams",
  "max_disk_mb",
  "max_stored_mb",
  "warm"
]

/** `CLAWDFORGE_APP_LIMITS`: limits by app, `"*"` for every app without its own. */
export const AppLimitsByApp = Schema.Record({
  key: Schema.String.pipe(
    Schema.filter((key) => key === "*" || Schema.is(AppName)(key), {
      message: () => "Expected \"*\" or an app name (a letter or digit, then letters, digits, _ . -)"
    })
  ),
  value: AppLimitsSpec
})
export type AppLimitsByApp = typeof AppLimitsByApp.Type

export const Limits = Schema.Struct({
  max_sessions: Schema.NullOr(Schema.Int).annotations({
    description: "Live sessions the app may hold at once (beyond it a create is 429 `app_session_limit`); null: no limit"
  }),
  turns_per_minute: Schema.NullOr(Schema.Int).annotations({
    description: "Turns the app may start in any 60 s (beyond it a turn is 429 `rate_limited`); null: no limit"
  }),
  daily_cost_usd: Schema.NullOr(Schema.Number).annotations({
    description: "What the app's agents may cost per UTC day, in US dollars (once reached, creates and turns are " +
      "429 `budget_exhausted` until 00:00 UTC); null: no limit"
  }),
  permission_modes: Schema.Array(PermissionMode).annotations({
    description: "The permission modes a create may ask for (another is 400 `permission_mode_not_allowed`); " +
      "all four unless set"
  }),
  network: Schema.NullOr(Schema.String).annotations({
    description: "What the app's agents reach: `host`, `none` or `allow:HOST[:PORT],...`; null: the gateway's " +
      "default (CLAWDFORGE_AGENT_NETWORK)"
  }),
  max_queued_turns: Schema.NullOr(Schema.Int).annotations({
    description: "Turns one session may hold accepted and not yet running (beyond it a turn is 429 `queue_full`); " +
      "CLAWDFORGE_MAX_QUEUED_TURNS unless set; null: no limit"
  }),
  max_streams: Schema.NullOr(Schema.Int).annotations({
    description: "SSE streams the app may hold open at once (beyond it a stream is 429 `too_many_streams`); " +
      "CLAWDFORGE_MAX_STREAMS_PER_APP unless set; null: no limit"
  }),
  max_disk_mb: Schema.NullOr(Schema.Int).annotations({
    description: "What the app\'s workspaces and its HOME may hold on disk, in MB (at or past it, creates, uploads and " +
      "turns are 429 `disk_quota`); CLAWDFORGE_APP_MAX_DISK_MB unless set; null: no limit"
  }),
  max_stored_mb: Schema.NullOr(Schema.Int).annotations({
    description: "What the app's stored turns may take in the ledger, in MB (at or past it, creates and turns are " +
      "429 `storage_quota`); null: no limit"
  }),
  warm: Schema.Record({ key: Schema.String, value: Schema.Int }).annotations({
    description: "Ready sessions the gateway keeps for the app, by agent (a create of that agent without `cwd` or " +
      "`git` takes one in milliseconds); `{}`: none"
  })
}).annotations({ identifier: "Limits", description: "An app's limits" })
export type Limits = typeof Limits.Type

/** What `GET /limits` reports (its reply adds `ok: true`). */
export const LimitsReport = Schema.Struct({
  app: AppName,
  limits: Limits,
  use: Schema.Struct({
    live_sessions: Schema.Int.annotations({ description: "The app's sessions with a live agent now" }),
    turns_this_minute: Schema.Int.annotations({ description: "Turns the app started in the last 60 s" }),
    cost_today_usd: Schema.Number.annotations({ description: "What the app's agents cost since 00:00 UTC" }),
    open_streams: Schema.Int.annotations({ description: "The app's SSE streams open now (on this gateway node)" }),
    stored_mb: Schema.Number.annotations({ description: "What the app's stored turns take in the ledger, in MB" })
  }),
  resets: Schema.Struct({
    turns_in_secs: Schema.Int.annotations({
      description: "Seconds until the oldest turn of the last 60 s leaves the window (0 when there is none)"
    }),
    budget_at: UnixSeconds.annotations({ description: "The next 00:00 UTC, when the day's cost starts again at 0" })
  })
}).annotations({ identifier: "LimitsReport", description: "The caller's limits and its use of them" })
export type LimitsReport = typeof LimitsReport.Type

export const UsageTotals = Schema.Struct({
  turns: Schema.Int.annotations({ description: "Turns that ended in the window" }),
  sessions: Schema.Int.annotations({ description: "Sessions created in the window" }),
  runs: Schema.Int.annotations({ description: "`/run` jobs in the window" }),
  input_tokens: Schema.Int.annotations({ description: "Input tokens, as far as the agents report them" }),
  output_tokens: Schema.Int.annotations({ description: "Output tokens, as far as the agents report them" }),
  cost_usd: Schema.Number.annotations({ description: "Cost in US dollars, as far as the agents report it" })
}).annotations({ identifier: "UsageTotals" })
export type UsageTotals = typeof UsageTotals.Type

export const UsageGroupBy = Schema.Literal("day", "agent")
export type UsageGroupBy = typeof UsageGroupBy.Type

export const UsageGroup = Schema.Struct({
  day: Schema.optional(Schema.String.annotations({ description: "The UTC day, YYYY-MM-DD (group_by=day)" })),
  agent: Schema.optional(Schema.String.annotations({ description: "The agent (group_by=agent); `/run` is `claude`" })),
  ...UsageTotals.fields
}).annotations({ identifier: "UsageGroup" })
export type UsageGroup = typeof UsageGroup.Type

/** What `GET /usage` reports (its reply adds `ok: true`). */
export const UsageReport = Schema.Struct({
  totals: UsageTotals,
  groups: Schema.Array(UsageGroup)
}).annotations({ identifier: "UsageReport", description: "What an app (or every app) used in a window" })
export type UsageReport = typeof UsageReport.Type

/** A usage window in Unix seconds, `from` inclusive, `to` exclusive; each open when left out. */
export interface UsageQuery {
  readonly from?: number | undefined
  readonly to?: number | undefined
  readonly groupBy?: UsageGroupBy | undefined
}

/** `GET /usage`'s query. */
export const UsageParams = Schema.Struct({
  from: Schema.optionalWith(
    IntFromString({ minimum: 0, maximum: 1e12, description: "From this Unix time (seconds), inclusive" }),
    { exact: true }
  ),
  to: Schema.optionalWith(
    IntFromString({ minimum: 0, maximum: 1e12, description: "Until this Unix time (seconds), exclusive" }),
    { exact: true }
  ),
  group_by: Schema.optionalWith(UsageGroupBy.annotations({ description: "Totals per UTC day or per agent" }), {
    exact: true
  })
})
