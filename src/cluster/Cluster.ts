/**
 * A gateway node of a cluster (`CLAWDFORGE_CLUSTER=true`): loaded by the composition root with
 * `import()` only then, so a single gateway loads none of it.
 */
import * as Singleton from "@effect/cluster/Singleton"
import { Effect, Layer, Schedule } from "effect"
import { AppConfig } from "../services/config/AppConfig.js"
import { Ledger } from "../services/ledger/Ledger.js"
import { Sweeper } from "../services/sessions/Sweeper.js"
import { NodeSettingsLive } from "./ClusterConfig.js"
import { ClusterNodes } from "./ClusterNodes.js"
import { Deliveries } from "./Deliveries.js"
import { ClusterViewLive } from "./ClusterViewLive.js"
import { RunnerLive } from "./ClusterRunner.js"
import { RoutedSessionsLive, SessionEntityLive } from "./RoutedSessions.js"
import { SessionEntity } from "./SessionEntity.js"

/**
 * Once per cluster, on whichever node holds the singleton: the sweeper's ledger pass, whose
 * closed sessions are stopped by their owners; and the recovery of turns a node left queued or
 * running when it died (each session's owner interrupts them unless it runs them), at start and
 * at every sweep.
 */
const SweeperSingleton = Singleton.make(
  "clawdforge/sweeper",
  Effect.gen(function*() {
    const config = yield* AppConfig
    const sweeper = yield* Sweeper
    const ledger = yield* Ledger
    const client = yield* SessionEntity.client
    const deliveries = yield* Deliveries
    const pass = Effect.gen(function*() {
      const unfinished = yield* ledger.sessionsWithUnfinishedTurns()
      yield* Effect.forEach(unfinished, (id) => client(id).Recover(), { concurrency: 8, discard: true })
      const swept = yield* sweeper.sweepLedger
      yield* Effect.forEach([...swept.closed, ...swept.deleted], (id) => client(id).Stop(), { concurrency: 8, discard: true })
      yield* deliveries.purge
      yield* sweeper.report(swept)
    }).pipe(Effect.withSpan("Cluster.sweep"))
    yield* pass.pipe(
      Effect.catchAllCause((cause) => Effect.logError("cluster sweep failed", cause)),
      Effect.repeat(Schedule.spaced(config.sweepInterval))
    )
  })
)

/** On every node: agents of sessions closed behind the gateway's back (the admin CLI) are stopped. */
const OrphansLoop = Layer.scopedDiscard(
  Effect.gen(function*() {
    const config = yield* AppConfig
    const sweeper = yield* Sweeper
    yield* sweeper.stopClosed(new Set()).pipe(
      Effect.catchAllCause((cause) => Effect.logError("stopping closed sessions failed", cause)),
      Effect.repeat(Schedule.spaced(config.sweepInterval)),
      Effect.forkScoped
    )
  })
)

/**
 * This node of the cluster, over the gateway's services (without their sweeper loop): it
 * serves the session entity, takes part in the singletons, and gives the HTTP handlers the
 * `Sessions` that routes each session's requests to its owner.
 */
export const ClusterNodeLive = RoutedSessionsLive.pipe(
  Layer.provideMerge(Layer.mergeAll(SessionEntityLive, SweeperSingleton, OrphansLoop, ClusterViewLive)),
  Layer.provideMerge(Layer.mergeAll(ClusterNodes.Default, Deliveries.Default)),
  Layer.provideMerge(RunnerLive),
  Layer.provideMerge(NodeSettingsLive)
)

/** The per-app limits of this node's services, counted across the cluster. */
export { ClusterLimitsLive } from "./ClusterLimits.js"
