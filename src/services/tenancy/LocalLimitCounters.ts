import { Clock, Effect, Layer } from "effect"
import type { AppName } from "../../domain/Ids.js"
import { LimitCounters, type LimitCountersService } from "./LimitCounters.js"
import { Usage } from "./Usage.js"

/** The window `turns_per_minute` counts turns in: any 60 s (a sliding window, not clock minutes). */
const windowMs = 60_000
const dayMs = 86_400_000

/**
 * The start times (ms) of an app's turns in the last 60 s, oldest first: a queue whose expired
 * head is dropped as time passes, so each turn costs O(1) however high the limit.
 */
class TurnWindow {
  private times: Array<number> = []
  private head = 0

  /** How many turns started within the window ending at `now`. */
  count(now: number): number {
    const times = this.times
    while (this.head < times.length && times[this.head]! <= now - windowMs) this.head++
    // Compact now and then rather than shift() per turn.
    if (this.head > 1024 && this.head * 2 > times.length) {
      this.times = times.slice(this.head)
      this.head = 0
    }
    return this.times.length - this.head
  }

  add(now: number) {
    this.times.push(now)
  }

  /** Seconds until the oldest turn in the window leaves it (0 when there is none). */
  resetSeconds(now: number): number {
    const oldest = this.times[this.head]
    return oldest === undefined ? 0 : Math.max(1, Math.ceil((oldest + windowMs - now) / 1000))
  }
}

const emptyWindow = { count: 0, resetSeconds: 0 }

/**
 * The limits' counters of one gateway process, in memory: live sessions, turn windows and the
 * day's cost, each check-and-take one synchronous step (racing fibers cannot overshoot), each
 * result handed on without an effect of its own. The day's cost is seeded from the ledger (the
 * turns and runs that ended since 00:00 UTC) and grows by `addCost`; at 00:00 UTC it starts again
 * at 0.
 */
export const makeLocalLimitCounters: Effect.Effect<LimitCountersService, never, Usage> = Effect.gen(function*() {
  const usage = yield* Usage

  const liveSessions = new Map<string, number>()
  const windows = new Map<string, TurnWindow>()
  let day = Math.floor((yield* Clock.currentTimeMillis) / dayMs)
  let costToday = new Map<string, number>(yield* usage.costByApp(day * 86400))

  /** At 00:00 UTC every app's cost starts again at 0. */
  const rollDay = (nowMs: number) => {
    const today = Math.floor(nowMs / dayMs)
    if (today !== day) {
      day = today
      costToday = new Map()
    }
  }

  const release = (app: AppName) =>
    Effect.sync(() => {
      const live = (liveSessions.get(app) ?? 1) - 1
      if (live <= 0) liveSessions.delete(app)
      else liveSessions.set(app, live)
    })

  return LimitCounters.of({
    holdSession: (app, _session, max) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const live = liveSessions.get(app) ?? 0
          if (max !== null && live >= max) return live
          liveSessions.set(app, live + 1)
          return undefined
        }),
        (refused) => refused !== undefined ? Effect.void : release(app)
      ),

    liveSessions: (app) => Effect.sync(() => liveSessions.get(app) ?? 0),

    takeTurn: (app, limit, nowMs, decide) => {
      let window = windows.get(app)
      if (window === undefined) windows.set(app, window = new TurnWindow())
      const count = window.count(nowMs)
      if (limit !== null && count >= limit) return decide({ count, resetSeconds: window.resetSeconds(nowMs) }, false)
      window.add(nowMs)
      return decide({ count, resetSeconds: window.resetSeconds(nowMs) }, true)
    },

    turnWindow: (app, nowMs, _limited, decide) => {
      const window = windows.get(app)
      return decide(window === undefined ? emptyWindow : { count: window.count(nowMs), resetSeconds: window.resetSeconds(nowMs) })
    },

    costToday: (app, nowMs, decide) => {
      rollDay(nowMs)
      return decide(costToday.get(app) ?? 0)
    },

    addCost: (app, costUsd, nowMs, then) => {
      rollDay(nowMs)
      costToday.set(app, (costToday.get(app) ?? 0) + costUsd)
      return then
    }
  })
})

/** A single gateway's limit counters: in memory. */
export const LocalLimitCounters = Layer.effect(LimitCounters, makeLocalLimitCounters).pipe(
  Layer.provide(Usage.DefaultWithoutDependencies)
)
