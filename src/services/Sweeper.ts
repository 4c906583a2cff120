import { Duration, Effect, Layer, Schedule } from "effect"
import { AppConfig } from "./AppConfig.js"
import { Ledger, nowSeconds } from "./Ledger.js"
import { Sessions } from "./Sessions.js"
import { Workspaces } from "./Workspaces.js"

export interface SweepCounts {
  readonly soft_closed: number
  readonly hard_deleted: number
}

export class Sweeper extends Effect.Service<Sweeper>()("clawdforge/Sweeper", {
  effect: Effect.gen(function*() {
    const config = yield* AppConfig
    const ledger = yield* Ledger
    const sessions = yield* Sessions
    const workspaces = yield* Workspaces
    const ttl = Duration.toSeconds(config.sessionTtl)
    const hardTtl = Duration.toSeconds(config.sessionHardTtl)

    /**
     * One pass: soft-close sessions idle past the TTL (stopping their agents), then delete
     * sessions closed longer than the hard TTL, with their events and workspaces.
     */
    const sweepOnce = Effect.gen(function*() {
      const now = yield* nowSeconds
      let softClosed = 0
      for (const id of yield* ledger.idleSessionIds(now - ttl)) {
        if (yield* ledger.closeSession(id, "sweep_close", now)) softClosed++
        yield* sessions.stop(id)
      }
      // Sessions closed behind the gateway's back (the admin CLI): stop their agents too.
      for (const id of yield* ledger.closedAmong(yield* sessions.liveSessionIds)) {
        yield* sessions.stop(id)
      }
      const deleted = yield* ledger.deleteClosedBefore(now - hardTtl)
      yield* Effect.forEach(deleted, (row) =>
        sessions.stop(row.session_id).pipe(Effect.zipRight(workspaces.remove(row.app_name, row.session_id))), {
        discard: true,
        concurrency: 8
      })
      const counts: SweepCounts = { soft_closed: softClosed, hard_deleted: deleted.length }
      if (counts.soft_closed + counts.hard_deleted > 0) yield* Effect.logInfo("sweep", counts)
      return counts
    }).pipe(Effect.withSpan("Sweeper.sweepOnce"))

    return { sweepOnce } as const
  }),
  dependencies: [AppConfig.Default, Ledger.Default, Sessions.Default, Workspaces.Default]
}) {}

/** One sweeper pass, for an embedding program or a test. */
export const sweepOnce = Effect.flatMap(Sweeper, (sweeper) => sweeper.sweepOnce)

/** The sweeper's scheduled fiber, every `CLAWDFORGE_SWEEP_INTERVAL_SECS`, for the life of the layer. */
export const SweeperLoop = Layer.scopedDiscard(
  Effect.gen(function*() {
    const config = yield* AppConfig
    const sweeper = yield* Sweeper
    yield* sweeper.sweepOnce.pipe(
      Effect.catchAllCause((cause) => Effect.logError("sweep failed", cause)),
      Effect.repeat(Schedule.spaced(config.sweepInterval)),
      Effect.forkScoped
    )
  })
)
