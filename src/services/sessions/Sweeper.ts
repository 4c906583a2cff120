import { Duration, Effect, Layer, Schedule } from "effect"
import { AppConfig } from "../config/AppConfig.js"
import { IdempotencyKeys } from "../ledger/IdempotencyKeys.js"
import { Ledger, nowSeconds } from "../ledger/Ledger.js"
import { Sessions } from "./Sessions.js"
import { Workspaces } from "./Workspaces.js"
import { Webhooks } from "../tenancy/Webhooks.js"

export interface SweepCounts {
  readonly soft_closed: number
  readonly hard_deleted: number
}

export class Sweeper extends Effect.Service<Sweeper>()("clawdforge/Sweeper", {
  scoped: Effect.gen(function*() {
    const config = yield* AppConfig
    const ledger = yield* Ledger
    const idempotencyKeys = yield* IdempotencyKeys
    const sessions = yield* Sessions
    const workspaces = yield* Workspaces
    const webhooks = yield* Webhooks
    const ttl = Duration.toSeconds(config.sessionTtl)
    const hardTtl = Duration.toSeconds(config.sessionHardTtl)

    /**
     * The ledger's part of a pass: soft-close sessions idle past the TTL, then delete sessions
     * closed longer than the hard TTL, with their events and workspaces, webhook deliveries that
     * ended as long ago, and idempotency keys older than theirs. Answers the ids it closed and
     * deleted (their agents are still to stop).
     */
    const scope = yield* Effect.scope
    const sweepLedger = Effect.gen(function*() {
      const now = yield* nowSeconds
      const closed = yield* ledger.closeIdleBefore(now - ttl, now)
      yield* webhooks.sessionsClosed(closed)
      const deleted = yield* ledger.deleteClosedBefore(now - hardTtl)
      yield* webhooks.purgeEndedBefore(now - hardTtl)
      yield* idempotencyKeys.purgeExpired(now)
      // Removing directories is slow and nobody waits on it: in the background.
      yield* Effect.forEach(deleted, (row) => workspaces.remove(row.app_name, row.session_id), {
        discard: true,
        concurrency: 8
      }).pipe(Effect.forkIn(scope))
      return { closed, deleted: deleted.map((row) => row.session_id) }
    })

    /**
     * Stops this process's agents of the sessions in `stale`, and of sessions closed behind the
     * gateway's back (the admin CLI): only live ones have anything to stop.
     */
    const stopClosed = (stale: ReadonlySet<string>) =>
      Effect.gen(function*() {
        const live = yield* sessions.liveSessionIds
        const orphaned = yield* ledger.closedAmong(live.filter((id) => !stale.has(id)))
        yield* Effect.forEach([...live.filter((id) => stale.has(id)), ...orphaned], sessions.stop, { discard: true })
      })

    /** What a pass did, logged when it did anything. */
    const report = (swept: { readonly closed: ReadonlyArray<string>; readonly deleted: ReadonlyArray<string> }) => {
      const counts: SweepCounts = { soft_closed: swept.closed.length, hard_deleted: swept.deleted.length }
      return counts.soft_closed + counts.hard_deleted > 0 ? Effect.as(Effect.logInfo("sweep", counts), counts) : Effect.succeed(counts)
    }

    /** One pass: the ledger's part, then the agents of what it closed or deleted are stopped. */
    const sweepOnce = Effect.gen(function*() {
      const swept = yield* sweepLedger
      yield* stopClosed(new Set([...swept.closed, ...swept.deleted]))
      return yield* report(swept)
    }).pipe(Effect.withSpan("Sweeper.sweepOnce"))

    return { sweepOnce, sweepLedger, stopClosed, report } as const
  }),
  dependencies: [AppConfig.Default, Ledger.Default, IdempotencyKeys.Default, Sessions.Default, Workspaces.Default, Webhooks.Default]
}) {}

/** One sweeper pass, for an embedding program or a test. */
export const sweepOnce = Effect.flatMap(Sweeper, (sweeper) => sweeper.sweepOnce)

/** The sweeper's scheduled fiber, every `CLAWDFORGE_SWEEP_INTERVAL_SECS`, for the life of the layer. */
export const SweeperLoop = Layer.scopedDiscard(
  Effect.gen(function*() {
    const config = yield* AppConfig
    const sweeper = yield* Sweeper
    const pass = sweeper.sweepOnce.pipe(Effect.catchAllCause((cause) => Effect.logError("sweep failed", cause)))
    // The first pass (what expired while the gateway was down) ends before the gateway serves: a
    // pass still running in the background could otherwise race the first requests' sessions.
    yield* pass
    yield* pass.pipe(Effect.repeat(Schedule.spaced(config.sweepInterval)), Effect.delay(config.sweepInterval), Effect.forkScoped)
  })
)
