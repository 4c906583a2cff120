/**
 * Per-app limits (issue 13): `CLAWDFORGE_APP_LIMITS` parsed at start-up, merged with the ledger's,
 * and the counters on the create and turn paths: live sessions (exact under a race), the 60 s
 * turn window, the day's cost; each refusal counted in `clawdforge_limited_total`.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, ConfigProvider, Duration, Effect, Either, Exit, Layer, Metric, MetricState, Scope, TestClock } from "effect"
import { AppName, SessionId } from "../src/domain/Ids.js"
import { AppConfig, describeConfigError } from "../src/services/config/AppConfig.js"
import { AppLimits, ledgerLimitsTtl } from "../src/services/tenancy/AppLimits.js"
import { appCostUsdTotal, appTokensTotal, limitedTotal } from "../src/services/observability/Metrics.js"
import { Usage } from "../src/services/tenancy/Usage.js"
import { insertSession, layerTenancy } from "./support/Tenancy.js"

const app = AppName.make("app-a")
const other = AppName.make("app-b")
const sessionIdOf = (i: number) => SessionId.make(`sess_${String(i).padStart(24, "0")}`)
const limitsEnv = (limits: unknown) => ({ CLAWDFORGE_APP_LIMITS: JSON.stringify(limits) })

const loadConfig = (env: Record<string, string>) =>
  AppConfig.pipe(
    Effect.provide(AppConfig.Default),
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))),
    Effect.either
  )

const limitedCount = (app: string, limit: string) =>
  Metric.value(Metric.tagged(Metric.tagged(limitedTotal, "app", app), "limit", limit)).pipe(
    Effect.map((state) => (state as MetricState.MetricState.Counter<number>).count)
  )

describe("CLAWDFORGE_APP_LIMITS", () => {
  it.effect("reads limits by app with a \"*\" default; null is no limit for that app", () =>
    Effect.gen(function*() {
      const config = Either.getOrThrow(yield* loadConfig(limitsEnv({
        "*": { max_sessions: 2, daily_cost_usd: 1.5 },
        "app-a": { turns_per_minute: 10, max_sessions: null }
      })))
      expect(config.appLimits).toEqual({
        "*": { max_sessions: 2, daily_cost_usd: 1.5 },
        "app-a": { turns_per_minute: 10, max_sessions: null }
      })
      expect(Either.getOrThrow(yield* loadConfig({})).appLimits).toEqual({})
    }))

  it.effect.each([
    ["malformed JSON", "{\"app-a\": {"],
    ["not an object", "[1, 2]"],
    ["an unknown limit", JSON.stringify({ "app-a": { max_session: 3 } })],
    ["a negative limit", JSON.stringify({ "*": { max_sessions: -1 } })],
    ["a negative cost", JSON.stringify({ "*": { daily_cost_usd: -0.5 } })],
    ["a non-numeric limit", JSON.stringify({ "app-a": { turns_per_minute: "ten" } })],
    ["a fractional count", JSON.stringify({ "app-a": { turns_per_minute: 1.5 } })],
    ["an invalid app name", JSON.stringify({ "no spaces": { max_sessions: 1 } })]
  ])("%s stops start-up with one line naming the variable", ([, value]) =>
    Effect.gen(function*() {
      const result = yield* loadConfig({ CLAWDFORGE_APP_LIMITS: value })
      expect(Either.isLeft(result)).toBe(true)
      const line = describeConfigError(Either.getLeft(result).pipe((o) => o._tag === "Some" ? o.value : undefined)!)
      expect(line).toMatch(/^CLAWDFORGE_APP_LIMITS: /)
      expect(line.split("\n")).toHaveLength(1)
    }))
})

describe("AppLimits", () => {
  it.effect("the ledger wins per field over the app's entry, which wins over \"*\"", () =>
    Effect.gen(function*() {
      const limits = yield* AppLimits
      expect((yield* limits.configured(app)).limits).toMatchObject({ max_sessions: 5, turns_per_minute: 60, daily_cost_usd: 2 })
      yield* limits.set(app, { turns_per_minute: 7 })
      yield* limits.set(app, { daily_cost_usd: 0.25 })
      const now = yield* limits.configured(app)
      expect(now.limits).toMatchObject({ max_sessions: 5, turns_per_minute: 7, daily_cost_usd: 0.25 })
      expect(now.sources).toMatchObject({
        max_sessions: "CLAWDFORGE_APP_LIMITS *",
        turns_per_minute: "ledger",
        daily_cost_usd: "ledger"
      })
      // Another app has only the default.
      expect((yield* limits.limitsOf(other)).limits).toMatchObject({ max_sessions: 5, turns_per_minute: null, daily_cost_usd: 2 })
      expect(yield* limits.clear(app)).toBe(true)
      expect(yield* limits.clear(app)).toBe(false)
      expect((yield* limits.configured(app)).limits.turns_per_minute).toBe(60)
    }).pipe(Effect.provide(layerTenancy(limitsEnv({
      "*": { max_sessions: 5, daily_cost_usd: 2 },
      "app-a": { turns_per_minute: 60 }
    })))))

  it.live("a change in the ledger (the CLI's) reaches a running gateway's limits within the TTL", () =>
    Effect.gen(function*() {
      const limits = yield* AppLimits
      yield* limits.takeTurn(app)
      yield* limits.takeTurn(app)
      // Set as the CLI does (its own copy is read afresh); this copy is stale for up to the TTL.
      yield* limits.set(app, { turns_per_minute: 2 })
      yield* Effect.sleep(Duration.sum(ledgerLimitsTtl, Duration.millis(100)))
      const refused = yield* Effect.flip(limits.takeTurn(app))
      expect(refused).toMatchObject({ _tag: "RateLimited", error: "rate_limited", turns_per_minute: 2 })
    }).pipe(Effect.provide(layerTenancy({}))))

  it.scoped("30 racing reservations with max_sessions 5: exactly 5 hold a slot, and a closed one frees it", () =>
    Effect.gen(function*() {
      const limits = yield* AppLimits
      const before = yield* limitedCount(app, "max_sessions")
      const scopes = yield* Effect.forEach(Array.from({ length: 30 }), () => Scope.make())
      const results = yield* Effect.forEach(
        scopes,
        (scope, i) => limits.reserveSession(app, sessionIdOf(i)).pipe(Scope.extend(scope), Effect.exit),
        { concurrency: "unbounded" }
      )
      expect(results.filter(Exit.isSuccess)).toHaveLength(5)
      const failures = results.filter(Exit.isFailure)
      expect(failures).toHaveLength(25)
      expect(Exit.isFailure(failures[0]!) && Cause.squash(failures[0].cause)).toMatchObject({
        _tag: "AppSessionLimit",
        error: "app_session_limit",
        max_sessions: 5
      })
      expect((yield* limitedCount(app, "max_sessions")) - before).toBe(25)
      expect((yield* limits.limitsOf(app)).use.live_sessions).toBe(5)
      // Another app is not affected.
      yield* limits.reserveSession(other, sessionIdOf(30))

      const held = results.findIndex(Exit.isSuccess)
      yield* Scope.close(scopes[held]!, Exit.void)
      expect((yield* limits.limitsOf(app)).use.live_sessions).toBe(4)
      yield* limits.reserveSession(app, sessionIdOf(31))
      expect(Exit.isFailure(yield* Effect.exit(limits.reserveSession(app, sessionIdOf(32))))).toBe(true)
      yield* Effect.forEach(scopes, (scope) => Scope.close(scope, Exit.void))
      expect((yield* limits.limitsOf(app)).use.live_sessions).toBe(1)
    }).pipe(Effect.provide(layerTenancy(limitsEnv({ "app-a": { max_sessions: 5 } })))))

  it.effect("turns_per_minute is a sliding 60 s window: Retry-After until the oldest turn leaves it", () =>
    Effect.gen(function*() {
      const limits = yield* AppLimits
      expect(yield* limits.takeTurn(app)).toEqual({ limit: 3, remaining: 2, resetSeconds: 60 })
      yield* TestClock.adjust("20 seconds")
      expect(yield* limits.takeTurn(app)).toEqual({ limit: 3, remaining: 1, resetSeconds: 40 })
      expect(yield* limits.takeTurn(app)).toEqual({ limit: 3, remaining: 0, resetSeconds: 40 })
      const refused = yield* Effect.flip(limits.takeTurn(app))
      expect(refused).toMatchObject({ _tag: "RateLimited", turns_per_minute: 3, retry_after_secs: 40 })
      // The other app has no rate: no headers, never refused.
      for (let i = 0; i < 10; i++) expect(yield* limits.takeTurn(other)).toBeUndefined()
      expect((yield* limits.limitsOf(other)).use.turns_this_minute).toBe(10)

      yield* TestClock.adjust("39 seconds")
      expect(Exit.isFailure(yield* Effect.exit(limits.takeTurn(app)))).toBe(true)
      // The first turn leaves the window at 60 s; the two at 20 s are still in it.
      yield* TestClock.adjust("1 second")
      expect(yield* limits.takeTurn(app)).toEqual({ limit: 3, remaining: 0, resetSeconds: 20 })
      const report = yield* limits.limitsOf(app)
      expect(report.use.turns_this_minute).toBe(3)
      expect(report.resets.turns_in_secs).toBe(20)
      yield* TestClock.adjust("60 seconds")
      expect((yield* limits.takeTurn(app))?.remaining).toBe(2)
      expect(yield* limitedCount(app, "turns_per_minute")).toBeGreaterThanOrEqual(2)
    }).pipe(Effect.provide(layerTenancy(limitsEnv({ "app-a": { turns_per_minute: 3 } })))))

  it.effect("turns_per_minute 0 refuses every turn", () =>
    Effect.gen(function*() {
      const refused = yield* Effect.flip((yield* AppLimits).takeTurn(app))
      expect(refused).toMatchObject({ _tag: "RateLimited", retry_after_secs: 60 })
    }).pipe(Effect.provide(layerTenancy(limitsEnv({ "*": { turns_per_minute: 0 } })))))

  it.effect("daily_cost_usd: refused once the day's cost reaches it, for that app only, until 00:00 UTC", () =>
    Effect.gen(function*() {
      const limits = yield* AppLimits
      // Day 1, 10:00 UTC.
      yield* TestClock.setTime(Duration.toMillis("34 hours"))
      yield* limits.checkBudget(app)
      yield* limits.addUsage(app, { input_tokens: 100, output_tokens: 20, cost_usd: 0.6 })
      yield* limits.checkBudget(app)
      // A running turn that crosses the budget still ends and adds its cost.
      yield* limits.addUsage(app, { cost_usd: 0.5 })
      const refused = yield* Effect.flip(limits.checkBudget(app))
      expect(refused).toMatchObject({
        _tag: "BudgetExhausted",
        error: "budget_exhausted",
        daily_cost_usd: 1,
        resets_at: 2 * 86400
      })
      expect(refused.cost_today_usd).toBeCloseTo(1.1)
      yield* limits.checkBudget(other)
      expect((yield* limits.limitsOf(app)).use.cost_today_usd).toBeCloseTo(1.1)
      expect((yield* limits.limitsOf(app)).resets.budget_at).toBe(2 * 86400)
      const counted = (metric: Metric.Metric.Counter<number>) =>
        Effect.map(Metric.value(metric), (state) => state.count)
      expect(yield* counted(Metric.tagged(appCostUsdTotal, "app", app))).toBeCloseTo(1.1)
      expect(yield* counted(Metric.tagged(Metric.tagged(appTokensTotal, "app", app), "kind", "input"))).toBe(100)
      expect(yield* counted(Metric.tagged(Metric.tagged(appTokensTotal, "app", app), "kind", "output"))).toBe(20)

      // 00:00 UTC: a new day.
      yield* TestClock.adjust("14 hours")
      yield* limits.checkBudget(app)
      expect((yield* limits.limitsOf(app)).use.cost_today_usd).toBe(0)
      expect(yield* limitedCount(app, "daily_cost_usd")).toBeGreaterThanOrEqual(1)
    }).pipe(Effect.provide(layerTenancy(limitsEnv({ "*": { daily_cost_usd: 1 } })))))

  it.live("the day's cost is seeded from the ledger's turns and runs that ended since 00:00 UTC", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(layerTenancy(limitsEnv({ "*": { daily_cost_usd: 1 } })))
      const now = Math.floor(Date.now() / 1000)
      const midnight = now - (now % 86400)
      yield* Effect.gen(function*() {
        yield* insertSession({ id: "s".repeat(24), app, agent: "echo", createdAt: midnight - 100 }, [
          { endedAt: midnight - 10, cost: 5 }, // yesterday: not counted
          { endedAt: midnight, cost: 0.4 },
          { endedAt: null }
        ])
        yield* (yield* Usage).recordRun(app, {
          at: midnight + 1,
          status: "completed",
          durationMs: 10,
          usage: { input_tokens: 1, output_tokens: 1, total_tokens: 2, cost_usd: 0.7 }
        })
      }).pipe(Effect.provide(context))
      // A gateway started now on that ledger.
      const restarted = yield* AppLimits.DefaultWithoutDependencies.pipe(
        Layer.provide(Layer.succeedContext(context)),
        Layer.build
      )
      const limits = yield* Effect.provide(AppLimits, restarted)
      expect((yield* limits.limitsOf(app)).use.cost_today_usd).toBeCloseTo(1.1)
      expect(Exit.isFailure(yield* Effect.exit(limits.checkBudget(app)))).toBe(true)
    }).pipe(Effect.scoped))
})
