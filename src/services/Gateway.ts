import { Layer } from "effect"
import { AcpxPool } from "./AcpxPool.js"
import { AgentRegistry } from "./AgentRegistry.js"
import { AppConfig } from "./AppConfig.js"
import { Auth } from "./Auth.js"
import { ClaudeRunner } from "./ClaudeRunner.js"
import { DatabaseLive } from "./Database.js"
import { Ledger } from "./Ledger.js"
import { Sessions } from "./Sessions.js"
import { Sweeper, SweeperLoop } from "./Sweeper.js"
import { Workspaces } from "./Workspaces.js"

/**
 * Every gateway service (and the ledger's SqlClient) over a given agent pool and `/run`
 * runner (the real ones, or fakes in tests), with the sweeper's scheduled fiber running.
 * Configuration comes from the `ConfigProvider`.
 */
export const layerServices = <EP, RP, ER, RR>(
  pool: Layer.Layer<AcpxPool, EP, RP>,
  runner: Layer.Layer<ClaudeRunner, ER, RR>
) => {
  const ledger = Ledger.DefaultWithoutDependencies.pipe(Layer.provideMerge(DatabaseLive))
  const core = Layer.mergeAll(AppConfig.Default, ledger, AgentRegistry.Default, Workspaces.Default, pool)
  const sessions = Sessions.DefaultWithoutDependencies.pipe(Layer.provideMerge(core))
  const sweeper = Sweeper.DefaultWithoutDependencies.pipe(Layer.provideMerge(sessions))
  return Layer.mergeAll(
    SweeperLoop.pipe(Layer.provideMerge(sweeper)),
    Auth.Default,
    runner
  )
}

/** The gateway's services with real agent processes. */
export const ServicesLive = layerServices(AcpxPool.Default, ClaudeRunner.Default)
