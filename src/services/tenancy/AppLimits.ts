import { SqlClient } from "@effect/sql"
import { Clock, ConfigError, Duration, Effect, Either, Metric, Option } from "effect"
import {
  AppSessionLimit,
  BadRequest,
  BudgetExhausted,
  PermissionModeNotAllowed,
  RateLimited,
  StorageQuota,
  TooManyStreams
} from "../../domain/Errors.js"
import type { AppName, SessionId } from "../../domain/Ids.js"
import type { PermissionMode } from "../../domain/Session.js"
import {
  allPermissionModes,
  type AppLimitsSpec,
  type LimitName,
  limitNames,
  type Limits,
  type LimitsPatch,
  type LimitsReport
} from "../../domain/Tenancy.js"
import { type AgentNetwork, AppConfig, describeConfigError, parseAgentNetwork } from "../config/AppConfig.js"
import { DatabaseLive } from "../ledger/Database.js"
import { makeLedgerCopy } from "../ledger/LedgerCopy.js"
import { appCostUsdTotal, appTokensTotal, limitedTotal, withLabels } from "../observability/Metrics.js"
import { LimitCounters, type TurnCount } from "./LimitCounters.js"
import { makeLocalLimitCounters } from "./LocalLimitCounters.js"
import { Usage } from "./Usage.js"

/** How stale the gateway's copy of the ledger's limits may be (`clawdforge apps limits` changes them). */
export const ledgerLimitsTtl = Duration.seconds(2)

const dayMs = 86_400_000

/** What `takeTurn` tells a turn reply's `RateLimit-*` headers. */
export interface RateLimitState {
  readonly limit: number
  readonly remaining: number
  /** Seconds until the oldest turn in the window leaves it. */
  readonly resetSeconds: number
}

/** Where each of an app's limits comes from, for `clawdforge apps limits`. */
export type LimitSource = "ledger" | "CLAWDFORGE_APP_LIMITS" | "CLAWDFORGE_APP_LIMITS *" | "default" | "none"

/** How stale an app's stored bytes may be (other nodes' turns, the sweeper's deletes); its own turns add at once. */
const storedBytesTtlMs = 5_000
const mb = 1024 * 1024

interface LedgerRow {
  readonly app_name: string
  readonly max_sessions: unknown
  readonly turns_per_minute: unknown
  readonly daily_cost_usd: unknown
  /** Comma-separated. */
  readonly permission_modes: string | null
  readonly network: string | null
  readonly max_queued_turns: unknown
  readonly max_streams: unknown
  readonly max_disk_mb: unknown
  readonly max_stored_mb: unknown
  /** JSON: `{"agent": N}`. */
  readonly warm: string | null
}

/** A limit's value once set (null, where a source allows it, says "no limit"). */
type LimitValue<N extends LimitName> = NonNullable<AppLimitsSpec[N]>

/** The modes given, each once, in the order of `allPermissionModes` (how they are stored and shown). */
const modesOf = (modes: ReadonlyArray<string>): ReadonlyArray<PermissionMode> =>
  allPermissionModes.filter((mode) => modes.includes(mode))

/** One limit as a ledger row holds it; null where the row does not set it. */
const storedLimit = <N extends LimitName>(row: LedgerRow | undefined, name: N): LimitValue<N> | null => {
  const stored = row?.[name]
  if (stored === null || stored === undefined) return null
  if (name === "permission_modes") return modesOf(String(stored).split(",")) as LimitValue<N>
  if (name === "network") return String(stored) as LimitValue<N>
  if (name === "warm") return JSON.parse(String(stored)) as LimitValue<N>
  // PostgreSQL reads BIGINT as a string.
  return Number(stored) as LimitValue<N>
}

/**
 * A `network` limit checked as `CLAWDFORGE_AGENT_NETWORK` is: the parsed value, or why not, the
 * reason starting with `name` (`network: expected host, none or ...`).
 */
export const parseNetworkLimit = (raw: string, name = "network"): Either.Either<AgentNetwork, string> =>
  Either.mapLeft(parseAgentNetwork(raw, name), describeConfigError)

/**
 * Per-app limits: `max_sessions`, `turns_per_minute` and `daily_cost_usd`, and the isolation's
 * `permission_modes` (the modes a create may ask for) and `network` (what its agents reach), each
 * from the ledger (`clawdforge apps limits`), else the app's entry in `CLAWDFORGE_APP_LIMITS`,
 * else its `"*"`.
 *
 * The ledger's limits are a plain copy re-read at most every `ledgerLimitsTtl` by whichever call
 * finds it stale (no query per turn, nothing polls an idle gateway). Live sessions, turn windows
 * and the day's cost are the `LimitCounters`' that the layer gives: a single gateway's in memory
 * (so everything on a turn's path is), a cluster node's shared by the nodes; without any, this
 * process counts in memory.
 */
export class AppLimits extends Effect.Service<AppLimits>()("clawdforge/AppLimits", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { appLimits: fromEnv, appMaxDiskMb, defaultPermissionMode, maxQueuedTurns, maxStreamsPerApp } = yield* AppConfig
    // The gateway-wide defaults of the limits that have one.
    const defaults: Partial<Record<LimitName, number>> = {
      max_queued_turns: maxQueuedTurns,
      max_streams: maxStreamsPerApp,
      max_disk_mb: appMaxDiskMb
    }
    // The layer's counters; the CLI and layers built without any count in memory, as a single gateway does.
    const counters = yield* Option.match(yield* Effect.serviceOption(LimitCounters), {
      onSome: Effect.succeed,
      onNone: () => makeLocalLimitCounters
    })

    // ---- the limits: the ledger's copy over the environment's --------------------------

    // CLAWDFORGE_APP_LIMITS's networks are checked as CLAWDFORGE_AGENT_NETWORK is: a bad one
    // stops start-up with one line (the domain's schema cannot reach the parser in src/services).
    for (const [key, spec] of Object.entries(fromEnv)) {
      if (spec.network === undefined || spec.network === null) continue
      const parsed = parseNetworkLimit(spec.network, `${key}.network`)
      if (Either.isLeft(parsed)) return yield* Effect.fail(ConfigError.InvalidData(["CLAWDFORGE_APP_LIMITS"], parsed.left))
    }

    // The ledger's rows, and each app's limits resolved from them (made on first use, per copy).
    interface LimitsCopy {
      readonly rows: ReadonlyMap<string, LedgerRow>
      readonly effective: Map<string, Limits>
      readonly networks: Map<string, Option.Option<AgentNetwork>>
    }
    const copyOf = (rows: ReadonlyArray<LedgerRow>): LimitsCopy => ({
      rows: new Map(rows.map((row) => [row.app_name, row])),
      effective: new Map(),
      networks: new Map()
    })
    const ledgerLimits = makeLedgerCopy({
      read: Effect.map(
        sql<LedgerRow>`SELECT app_name, max_sessions, turns_per_minute, daily_cost_usd, permission_modes, network,
          max_queued_turns, max_streams, max_disk_mb, max_stored_mb, warm FROM app_limits`,
        copyOf
      ),
      initial: copyOf([]),
      ttl: ledgerLimitsTtl,
      what: "app limits"
    })

    /** Where one limit of `app` comes from, and its value. */
    const resolve = <N extends LimitName>(
      copy: LimitsCopy,
      app: string,
      name: N
    ): readonly [LimitSource, LimitValue<N> | null] => {
      const stored = storedLimit(copy.rows.get(app), name)
      if (stored !== null) return ["ledger", stored]
      const own = fromEnv[app as AppName]?.[name] as LimitValue<N> | null | undefined
      if (own !== undefined) return ["CLAWDFORGE_APP_LIMITS", own]
      const fallback = fromEnv["*"]?.[name] as LimitValue<N> | null | undefined
      if (fallback !== undefined) return ["CLAWDFORGE_APP_LIMITS *", fallback]
      const gatewayDefault = defaults[name] as LimitValue<N> | undefined
      return gatewayDefault === undefined ? ["none", null] : ["default", gatewayDefault]
    }

    const limitsFor = (copy: LimitsCopy, app: string): Limits => {
      let limits = copy.effective.get(app)
      if (limits === undefined) {
        limits = {
          max_sessions: resolve(copy, app, "max_sessions")[1],
          turns_per_minute: resolve(copy, app, "turns_per_minute")[1],
          daily_cost_usd: resolve(copy, app, "daily_cost_usd")[1],
          permission_modes: modesOf(resolve(copy, app, "permission_modes")[1] ?? allPermissionModes),
          network: resolve(copy, app, "network")[1],
          max_queued_turns: resolve(copy, app, "max_queued_turns")[1],
          max_streams: resolve(copy, app, "max_streams")[1],
          max_disk_mb: resolve(copy, app, "max_disk_mb")[1],
          max_stored_mb: resolve(copy, app, "max_stored_mb")[1],
          warm: resolve(copy, app, "warm")[1] ?? {}
        }
        copy.effective.set(app, limits)
      }
      return limits
    }

    const refused = <E>(app: string, limit: LimitName, error: E) =>
      Effect.zipRight(Metric.increment(Metric.tagged(Metric.tagged(limitedTotal, "app", app), "limit", limit)), Effect.fail(error))

    /** When the day's cost of `nowMs`'s day starts again at 0 (Unix seconds). */
    const nextMidnight = (nowMs: number) => (Math.floor(nowMs / dayMs) + 1) * 86400

    yield* ledgerLimits.get

    // ---- what the sessions' actors call ----------------------------------------------------

    const sessionLimit = (app: AppName, live: number, max: number) =>
      refused(app, "max_sessions", new AppSessionLimit({
        message: `App ${app} holds ${live} live sessions, its max_sessions: close one or wait`,
        max_sessions: max
      }))

    /**
     * Holds one of the app's `max_sessions` live-session slots for the session until the scope
     * closes; fails with `AppSessionLimit` when all are held. Check and take are one synchronous
     * step (in a cluster, one transaction under the app's lock).
     */
    const reserveSession = Effect.fn("AppLimits.reserveSession")(function*(app: AppName, session: SessionId) {
      const max = limitsFor(yield* ledgerLimits.get, app).max_sessions
      const held = yield* counters.holdSession(app, session, max)
      if (held !== undefined) return yield* sessionLimit(app, held, max!)
    })

    const rateLimited = (app: AppName, count: number, limit: number, retryAfter: number) =>
      refused(app, "turns_per_minute", new RateLimited({
        message: `App ${app} started ${count} turns in the last 60 s, its turns_per_minute: retry in ${retryAfter} s`,
        turns_per_minute: limit,
        retry_after_secs: retryAfter
      }))

    const noRate = Effect.succeed(undefined)

    /**
     * Counts a turn of the app in its 60 s window (sliding: any 60 s, not clock minutes); refuses
     * it with `RateLimited` when `turns_per_minute` turns started in the last 60 s.
     */
    const takeRate = (
      copy: LimitsCopy,
      app: AppName,
      now: number
    ): Effect.Effect<RateLimitState | undefined, RateLimited> => {
      const limit = limitsFor(copy, app).turns_per_minute
      return counters.takeTurn(app, limit, now, (turns, taken) =>
        limit === null
          ? noRate
          : taken
          ? Effect.succeed({ limit, remaining: limit - turns.count - 1, resetSeconds: turns.resetSeconds })
          : rateLimited(app, turns.count, limit, limit === 0 ? 60 : turns.resetSeconds))
    }

    /** Refuses with `BudgetExhausted` once the app's cost since 00:00 UTC reaches its `daily_cost_usd`. */
    const budget = (copy: LimitsCopy, app: AppName, now: number): Effect.Effect<void, BudgetExhausted> => {
      const max = limitsFor(copy, app).daily_cost_usd
      if (max === null) return Effect.void
      return counters.costToday(app, now, (cost) =>
        cost < max ? Effect.void : refused(app, "daily_cost_usd", new BudgetExhausted({
          message: `App ${app} has spent its daily_cost_usd (${max} USD) today: until 00:00 UTC`,
          daily_cost_usd: max,
          cost_today_usd: cost,
          resets_at: nextMidnight(now)
        })))
    }

    /** The copy of the limits and the time, for one check. */
    const checking = <A, E>(check: (copy: LimitsCopy, now: number) => Effect.Effect<A, E>) =>
      Effect.flatMap(ledgerLimits.get, (copy) => Effect.flatMap(Clock.currentTimeMillis, (now) => check(copy, now)))

    // On every turn's (and create's) path: untraced, in memory.
    const takeTurn = (app: AppName): Effect.Effect<RateLimitState | undefined, RateLimited> =>
      checking((copy, now) => takeRate(copy, app, now))
    const checkBudget = (app: AppName): Effect.Effect<void, BudgetExhausted> =>
      checking((copy, now) => budget(copy, app, now))
    /**
     * A turn of the app let in: within its budget, then counted against its rate (a turn refused
     * for its budget does not use up its rate). What the reply's `RateLimit-*` headers say, or
     * undefined when the app has no rate.
     */
    const admitTurn = (app: AppName): Effect.Effect<RateLimitState | undefined, BudgetExhausted | RateLimited> =>
      checking((copy, now) => Effect.zipRight(budget(copy, app, now), takeRate(copy, app, now)))

    /** The modes the app's creates may ask for: its `permission_modes`, all four when none is set. */
    const permissionModesFor = Effect.fn("AppLimits.permissionModesFor")(function*(app: AppName) {
      return limitsFor(yield* ledgerLimits.get, app).permission_modes
    })

    /**
     * Refuses a create whose permission mode is outside the app's `permission_modes`; with none
     * asked for, the gateway's default (CLAWDFORGE_PERMISSION_MODE) is what is checked, so an
     * operator whose default an app may not use hears of it rather than the app getting another.
     */
    const checkPermissionMode = (
      app: AppName,
      requested: PermissionMode | undefined
    ): Effect.Effect<void, PermissionModeNotAllowed> =>
      Effect.flatMap(ledgerLimits.get, (copy) => {
        const allowed = limitsFor(copy, app).permission_modes
        const mode = requested ?? defaultPermissionMode
        if (allowed.includes(mode)) return Effect.void
        return refused(app, "permission_modes", new PermissionModeNotAllowed({
          message: requested === undefined
            ? `No permission_mode asked for, and the gateway's default "${mode}" (CLAWDFORGE_PERMISSION_MODE) is not ` +
              `among app ${app}'s permission_modes: ask for one of ${allowed.join(", ")}`
            : `permission_mode "${mode}" is not allowed for app ${app}: its permission_modes are ${allowed.join(", ")}`,
          allowed
        }))
      })

    /** What the app's agents may reach: its `network` limit, or None where the gateway's default applies. */
    const networkFor = Effect.fn("AppLimits.networkFor")(function*(app: AppName) {
      const copy = yield* ledgerLimits.get
      const known = copy.networks.get(app)
      if (known !== undefined) return known
      const raw = limitsFor(copy, app).network
      let network = Option.none<AgentNetwork>()
      if (raw !== null) {
        // Checked when set; a row written past the CLI and the admin API is the operator's to mend.
        const parsed = parseNetworkLimit(raw)
        if (Either.isLeft(parsed)) return yield* Effect.dieMessage(`The ledger's limits of app ${app}: ${parsed.left}`)
        network = Option.some(parsed.right)
      }
      copy.networks.set(app, network)
      return network
    })

    /** The app's rate as a reply goes out (`RateLimit-*` headers); undefined when it has none. */
    const rateOf = (app: AppName): Effect.Effect<RateLimitState | undefined> =>
      checking((copy, now) => {
        const limit = limitsFor(copy, app).turns_per_minute
        if (limit === null) return noRate
        return counters.turnWindow(app, now, true, (turns: TurnCount) =>
          Effect.succeed({ limit, remaining: Math.max(0, limit - turns.count), resetSeconds: turns.resetSeconds }))
      })

    /** The app's limits as they apply now (the ledger's copy, at most `ledgerLimitsTtl` old). */
    const currentLimits = (app: AppName): Effect.Effect<Limits> =>
      Effect.map(ledgerLimits.get, (copy) => limitsFor(copy, app))

    /** The app's `max_disk_mb`: what its workspaces and HOME may hold (MB); null: no limit. */
    const maxDiskMbFor = (app: AppName): Effect.Effect<number | null> =>
      Effect.map(ledgerLimits.get, (copy) => limitsFor(copy, app).max_disk_mb)

    /** The app's `max_queued_turns`: how many turns each of its sessions may hold waiting; null: no limit. */
    const maxQueuedTurnsFor = (app: AppName): Effect.Effect<number | null> =>
      Effect.map(ledgerLimits.get, (copy) => limitsFor(copy, app).max_queued_turns)

    // ---- open streams (this process's) ----------------------------------------------------

    const openStreams = new Map<string, number>()

    /**
     * Takes one of the app's `max_streams` stream slots, or refuses with `TooManyStreams`;
     * answers what frees it (once, however often it is called). Check and take are one step.
     */
    const openStream = (app: AppName): Effect.Effect<() => void, TooManyStreams> =>
      Effect.flatMap(ledgerLimits.get, (copy) => {
        const max = limitsFor(copy, app).max_streams
        const open = openStreams.get(app) ?? 0
        if (max !== null && open >= max) {
          return refused(app, "max_streams", new TooManyStreams({
            message: `App ${app} holds ${open} open streams, its max_streams: close one first`,
            max_streams: max
          }))
        }
        openStreams.set(app, open + 1)
        let freed = false
        return Effect.succeed(() => {
          if (freed) return
          freed = true
          const left = (openStreams.get(app) ?? 1) - 1
          if (left <= 0) openStreams.delete(app)
          else openStreams.set(app, left)
        })
      })

    // ---- stored bytes (the ledger's, with what this process's turns add) -------------------

    const storedBytes = new Map<string, { bytes: number; readAt: number }>()

    /** What the app's stored turns take, in bytes: re-read from the ledger when older than the TTL. */
    const storedBytesOf = (app: AppName, now: number): Effect.Effect<number> => {
      const known = storedBytes.get(app)
      if (known !== undefined && now - known.readAt < storedBytesTtlMs) return Effect.succeed(known.bytes)
      return sql<{ n: unknown }>`SELECT COALESCE(SUM(t.stored_bytes), 0) AS n
          FROM turns t JOIN sessions s ON s.session_id = t.session_id WHERE s.app_name = ${app}`.pipe(
        Effect.orDie,
        Effect.map((rows) => {
          // PostgreSQL reads a SUM of BIGINT as a string.
          const bytes = Number(rows[0]?.n ?? 0)
          storedBytes.set(app, { bytes, readAt: now })
          return bytes
        })
      )
    }

    /** A turn of the app stored `bytes` more (at its end): counted at once, before the next re-read. */
    const addStoredBytes = (app: AppName, bytes: number): Effect.Effect<void> =>
      Effect.sync(() => {
        const known = storedBytes.get(app)
        if (known !== undefined) known.bytes += bytes
      })

    /** Refuses with `StorageQuota` once the app's stored turns take its `max_stored_mb` or more. */
    const checkStorage = (app: AppName): Effect.Effect<void, StorageQuota> =>
      checking((copy, now) => {
        const max = limitsFor(copy, app).max_stored_mb
        if (max === null) return Effect.void
        return Effect.flatMap(storedBytesOf(app, now), (bytes) =>
          bytes < max * mb ? Effect.void : refused(app, "max_stored_mb", new StorageQuota({
            message: `App ${app}'s stored turns take ${(bytes / mb).toFixed(1)} MB, its max_stored_mb (${max} MB): ` +
              "close sessions and wait for the sweeper, or ask the operator for more",
            max_stored_mb: max,
            stored_mb: Math.round(bytes / mb * 100) / 100
          })))
      })

    // An app's tagged metrics, made once (a turn's end should not build metric keys).
    const appMetrics = new Map<string, ReturnType<typeof makeAppMetrics>>()
    const makeAppMetrics = (app: string) => ({
      cost: withLabels(appCostUsdTotal, { app }),
      input: withLabels(appTokensTotal, { app, kind: "input" }),
      output: withLabels(appTokensTotal, { app, kind: "output" })
    })
    const metricsOf = (app: string) => {
      let metrics = appMetrics.get(app)
      if (metrics === undefined) appMetrics.set(app, metrics = makeAppMetrics(app))
      return metrics
    }

    /**
     * What a turn (or run) of the app used, at its end: adds its cost to the app's day and both to
     * the metrics. Fields the agent did not report are null or left out.
     */
    const addUsage = (
      app: AppName,
      used: {
        readonly input_tokens?: number | null
        readonly output_tokens?: number | null
        readonly cost_usd?: number | null
      }
    ): Effect.Effect<void> =>
      // Most agents report nothing for most turns: nothing to count, no clock read.
      used.cost_usd == null && used.input_tokens == null && used.output_tokens == null
        ? Effect.void
        : Effect.flatMap(Clock.currentTimeMillis, (now) => {
            const metrics = metricsOf(app)
            const effects: Array<Effect.Effect<void>> = []
            const cost = used.cost_usd
            const costed = cost !== null && cost !== undefined && Number.isFinite(cost) && cost > 0
            if (costed) effects.push(Metric.incrementBy(metrics.cost, cost))
            for (const kind of ["input", "output"] as const) {
              const tokens = used[`${kind}_tokens`]
              if (tokens !== null && tokens !== undefined && tokens > 0) effects.push(Metric.incrementBy(metrics[kind], tokens))
            }
            const counted = effects.length === 0 ? Effect.void : Effect.all(effects, { discard: true })
            return costed ? counters.addCost(app, cost, now, counted) : counted
          })

    /** The app's limits and its use of them: `GET /limits`. */
    const limitsOf = Effect.fn("AppLimits.limitsOf")(function*(app: AppName) {
      const copy = yield* ledgerLimits.get
      const now = yield* Clock.currentTimeMillis
      const limits = limitsFor(copy, app)
      const turns = yield* counters.turnWindow(app, now, limits.turns_per_minute !== null, Effect.succeed)
      return {
        app,
        limits,
        use: {
          live_sessions: yield* counters.liveSessions(app),
          turns_this_minute: turns.count,
          cost_today_usd: yield* counters.costToday(app, now, Effect.succeed),
          open_streams: openStreams.get(app) ?? 0,
          stored_mb: Math.round((yield* storedBytesOf(app, now)) / mb * 100) / 100
        },
        resets: { turns_in_secs: turns.resetSeconds, budget_at: nextMidnight(now) }
      } satisfies LimitsReport
    })

    // ---- the admin's (CLI) ----------------------------------------------------------------

    /** The app's limits as configured now (the ledger read afresh), with where each comes from. */
    const configured = Effect.fn("AppLimits.configured")(
      function*(app: AppName) {
        yield* ledgerLimits.invalidate
        const copy = yield* ledgerLimits.get
        const sources = Object.fromEntries(limitNames.map((name) => [name, resolve(copy, app, name)[0]])) as Record<
          LimitName,
          LimitSource
        >
        const cost_today_usd = yield* counters.costToday(app, yield* Clock.currentTimeMillis, Effect.succeed)
        return { app, limits: limitsFor(copy, app), sources, cost_today_usd } as const
      },
      Effect.orDie
    )

    /**
     * Stores the given limits of the app in the ledger (the others it has there are kept). A
     * `network` that `CLAWDFORGE_AGENT_NETWORK` would refuse, or an empty `permission_modes`, is a
     * `BadRequest` naming it, and nothing is stored.
     */
    const set = Effect.fn("AppLimits.set")(
      function*(app: AppName, patch: LimitsPatch) {
        if (patch.network !== undefined) {
          const parsed = parseNetworkLimit(patch.network)
          if (Either.isLeft(parsed)) return yield* new BadRequest({ message: `Invalid request: ${parsed.left}` })
        }
        const modes = patch.permission_modes === undefined ? undefined : modesOf(patch.permission_modes)
        if (modes !== undefined && modes.length === 0) {
          return yield* new BadRequest({
            message: `Invalid request: permission_modes: expected a non-empty list of ${allPermissionModes.join(", ")}`
          })
        }
        const at = Math.floor((yield* Clock.currentTimeMillis) / 1000)
        const row = {
          max_sessions: patch.max_sessions ?? null,
          turns_per_minute: patch.turns_per_minute ?? null,
          daily_cost_usd: patch.daily_cost_usd ?? null,
          permission_modes: modes?.join(",") ?? null,
          network: patch.network?.trim() ?? null,
          max_queued_turns: patch.max_queued_turns ?? null,
          max_streams: patch.max_streams ?? null,
          max_disk_mb: patch.max_disk_mb ?? null,
          max_stored_mb: patch.max_stored_mb ?? null,
          warm: patch.warm === undefined ? null : JSON.stringify(patch.warm)
        }
        yield* sql`INSERT INTO app_limits
            (app_name, max_sessions, turns_per_minute, daily_cost_usd, permission_modes, network, max_queued_turns,
              max_streams, max_disk_mb, max_stored_mb, warm, updated_at)
          VALUES (${app}, ${row.max_sessions}, ${row.turns_per_minute}, ${row.daily_cost_usd}, ${row.permission_modes},
            ${row.network}, ${row.max_queued_turns}, ${row.max_streams}, ${row.max_disk_mb}, ${row.max_stored_mb}, ${row.warm}, ${at})
          ON CONFLICT (app_name) DO UPDATE SET
            max_sessions = coalesce(excluded.max_sessions, app_limits.max_sessions),
            turns_per_minute = coalesce(excluded.turns_per_minute, app_limits.turns_per_minute),
            daily_cost_usd = coalesce(excluded.daily_cost_usd, app_limits.daily_cost_usd),
            permission_modes = coalesce(excluded.permission_modes, app_limits.permission_modes),
            network = coalesce(excluded.network, app_limits.network),
            max_queued_turns = coalesce(excluded.max_queued_turns, app_limits.max_queued_turns),
            max_streams = coalesce(excluded.max_streams, app_limits.max_streams),
            max_disk_mb = coalesce(excluded.max_disk_mb, app_limits.max_disk_mb),
            max_stored_mb = coalesce(excluded.max_stored_mb, app_limits.max_stored_mb),
            warm = coalesce(excluded.warm, app_limits.warm),
            updated_at = excluded.updated_at`.pipe(Effect.orDie)
      }
    )

    /** Forgets the app's limits in the ledger (those of `CLAWDFORGE_APP_LIMITS` apply again); false when it had none. */
    const clear = Effect.fn("AppLimits.clear")(
      function*(app: AppName) {
        const rows = yield* sql`DELETE FROM app_limits WHERE app_name = ${app} RETURNING app_name`
        return rows.length > 0
      },
      Effect.orDie
    )

    return {
      reserveSession,
      takeTurn,
      admitTurn,
      rateOf,
      checkBudget,
      checkPermissionMode,
      permissionModesFor,
      networkFor,
      maxQueuedTurnsFor,
      maxDiskMbFor,
      currentLimits,
      openStream,
      checkStorage,
      addStoredBytes,
      addUsage,
      limitsOf,
      configured,
      set,
      clear
    } as const
  }),
  dependencies: [DatabaseLive, AppConfig.Default, Usage.Default]
}) {}
