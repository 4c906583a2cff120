import type { SqlClient } from "@effect/sql"
import { Config, ConfigError, Effect, Layer, Option } from "effect"
import { HttpLive } from "./http/Server.js"
import { AgentPool } from "./services/sessions/AgentPool.js"
import { AgentRegistry } from "./services/agents/AgentRegistry.js"
import { AppConfig, describeConfigError, ListenFailed } from "./services/config/AppConfig.js"
import { Auth } from "./services/tenancy/Auth.js"
import type { LimitCounters } from "./services/tenancy/LimitCounters.js"
import { LocalLimitCounters } from "./services/tenancy/LocalLimitCounters.js"
import { AppSecretsCheck } from "./services/tenancy/AppSecrets.js"
import { WebhookDeliveryLoop } from "./services/tenancy/WebhookDelivery.js"
import { ClaudeRunner } from "./services/agents/ClaudeRunner.js"
import { layerLedger } from "./services/ledger/LedgerLive.js"
import { LedgerUnavailable } from "./services/ledger/LedgerUnavailable.js"
import { IdempotencyKeys } from "./services/ledger/IdempotencyKeys.js"
import { Sessions, SessionsDrain } from "./services/sessions/Sessions.js"
import { Sweeper, SweeperLoop } from "./services/sessions/Sweeper.js"
import { LoggingLive, TracingLive } from "./services/observability/Telemetry.js"
import { Workspaces } from "./services/sessions/Workspaces.js"
import { WorkspaceFiles } from "./services/workspaces/WorkspaceFiles.js"
import { WorkspacePaths } from "./services/workspaces/WorkspacePaths.js"
import { WorkspaceQuota } from "./services/workspaces/WorkspaceQuota.js"
import { WorkspaceChanges } from "./services/workspaces/WorkspaceChanges.js"
import { Sandbox, SandboxUnavailable } from "./services/sandbox/Sandbox.js"
import { GitClone } from "./services/workspaces/GitClone.js"
import { NodeContext } from "@effect/platform-node"

/**
 * Every gateway service (and the ledger's SqlClient) over a given agent pool and `/run`
 * runner (the real ones, or fakes in tests), with the sweeper's scheduled fiber running.
 * Configuration comes from the `ConfigProvider`.
 */
export const layerServices = <EP, RP, ER, RR>(
  pool: Layer.Layer<AgentPool, EP, RP>,
  runner: Layer.Layer<ClaudeRunner, ER, RR>,
  options: {
    /** Off for a cluster node: there the sweeper runs once per cluster (src/cluster). */
    readonly sweeperLoop?: boolean
    /** What the per-app limits count with: this process's memory (the default), or a cluster node's shared counters. */
    readonly limitCounters?: Layer.Layer<LimitCounters, ConfigError.ConfigError, SqlClient.SqlClient | AppConfig>
  } = {}
) => {
  // The idempotency keys (with their expiry loop) are the gateway's own: the admin CLI opens the ledger without them.
  const ledger = IdempotencyKeys.DefaultWithoutDependencies.pipe(
    Layer.provideMerge(layerLedger({ limitCounters: options.limitCounters ?? LocalLimitCounters })),
    Layer.provide(AppConfig.Default)
  )
  // A workspace's paths (never through a link) and its quotas, which creates and turns are admitted by too.
  const workspaceQuota = WorkspaceQuota.DefaultWithoutDependencies.pipe(
    Layer.provideMerge(WorkspacePaths.Default),
    Layer.provide(ledger),
    Layer.provide(AppConfig.Default)
  )
  const core = Layer.mergeAll(
    AppConfig.Default, ledger, AgentRegistry.Default, Workspaces.Default, WorkspaceChanges.Default, Sandbox.Default, pool, workspaceQuota
  )
  // A create's `git` clone runs git as a child process (in the session's sandbox).
  const gitClone = GitClone.DefaultWithoutDependencies.pipe(Layer.provide(NodeContext.layer))
  const sessions = Sessions.DefaultWithoutDependencies.pipe(Layer.provide(gitClone), Layer.provideMerge(core))
  const sweeper = Sweeper.DefaultWithoutDependencies.pipe(Layer.provideMerge(sessions))
  // The files routes' service, over the sessions (whose workspace, open or closed).
  const workspaceFiles = WorkspaceFiles.DefaultWithoutDependencies.pipe(Layer.provideMerge(sweeper))
  return Layer.mergeAll(options.sweeperLoop === false ? Layer.empty : SweeperLoop, WebhookDeliveryLoop, AppSecretsCheck, Auth.DefaultWithoutDependencies).pipe(
    Layer.provideMerge(workspaceFiles),
    Layer.merge(runner)
  )
}

/** The gateway's services with real agent processes. */
export const ServicesLive = layerServices(AgentPool.Default, ClaudeRunner.Default)

/**
 * What a serving gateway does once it listens: say how its agents run (a start refused
 * before, such as a port taken, prints only its refusal), and drain the sessions before it closes.
 */
const ServingLive = Layer.merge(SessionsDrain, Layer.effectDiscard(Effect.flatMap(Sandbox, (sandbox) => sandbox.announce)))

/** A single gateway: the HTTP server over the live services, drained before it closes. */
const SingleGatewayLive = ServingLive.pipe(
  Layer.provide(HttpLive.pipe(Layer.provideMerge(ServicesLive))),
  Layer.provide([LoggingLive, TracingLive])
)

/**
 * A node of a cluster (`CLAWDFORGE_CLUSTER=true`): its HTTP handlers route each session's
 * requests to the node that owns it. The cluster's code is loaded only then.
 */
const ClusterGatewayLive = Layer.unwrapEffect(
  Effect.map(Effect.promise(() => import("./cluster/Cluster.js")), ({ ClusterLimitsLive, ClusterNodeLive }) =>
    ServingLive.pipe(
      Layer.provide(
        HttpLive.pipe(
          Layer.provide(ClusterNodeLive),
          Layer.provideMerge(layerServices(AgentPool.Default, ClaudeRunner.Default, {
            sweeperLoop: false,
            limitCounters: ClusterLimitsLive
          }))
        )
      ),
      Layer.provide([LoggingLive, TracingLive])
    ))
)

/** The whole gateway, a single one or a node of a cluster. */
export const GatewayLive = Layer.unwrapEffect(
  Effect.map(
    Config.boolean("CLAWDFORGE_CLUSTER").pipe(Config.withDefault(false)),
    (cluster) => cluster ? ClusterGatewayLive : SingleGatewayLive
  )
)

/** Prints an invalid configuration (or a ledger it cannot open) as one line naming the variable, and fails the exit code. */
export const reportConfigError = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.catchIf(self, ConfigError.isConfigError as (e: E) => e is Extract<E, ConfigError.ConfigError>, (error) =>
    Effect.sync(() => {
      console.error(`clawdforge: invalid configuration: ${describeConfigError(error)}`)
      process.exitCode = 1
    })).pipe(
      // A ledger that cannot be opened (a PostgreSQL server refusing us), or a port held by
      // another process, is one line too.
      Effect.catchSomeDefect((defect) => {
        const line = defect instanceof LedgerUnavailable
          ? `CLAWDFORGE_DB: ${defect.message}`
          : defect instanceof ListenFailed || defect instanceof SandboxUnavailable
          ? `${defect.variable}: ${defect.message}`
          : undefined
        return line === undefined ? Option.none() : Option.some(Effect.sync(() => {
          console.error(`clawdforge: ${line}`)
          process.exitCode = 1
        }))
      })
    )

/** Runs the gateway until interrupted: `src/main.ts` and `clawdforge serve`. */
export const serveGateway = Layer.launch(GatewayLive).pipe(reportConfigError)
