import { Layer } from "effect"
import { AcpxPool } from "./AcpxPool.js"
import { AgentRegistry } from "./AgentRegistry.js"
import { AppConfig } from "./AppConfig.js"
import { Auth } from "./Auth.js"
import { ClaudeRunner } from "./ClaudeRunner.js"
import { Ledger } from "./Ledger.js"
import { Sessions } from "./Sessions.js"
import { Sweeper, SweeperLoop } from "./Sweeper.js"
import { Workspaces } from "./Workspaces.js"

/**
 * Every gateway service over a given agent pool (the real one, or a fake in tests), with
 * the sweeper's scheduled fiber running. Configuration comes from the `ConfigProvider`.
 */
export const layerServices = <E, R>(pool: Layer.Layer<AcpxPool, E, R>) => {
  const core = Layer.mergeAll(AppConfig.Default, Ledger.Default, AgentRegistry.Default, Workspaces.Default, pool)
  const sessions = Sessions.DefaultWithoutDependencies.pipe(Layer.provideMerge(core))
  const sweeper = Sweeper.DefaultWithoutDependencies.pipe(Layer.provideMerge(sessions))
  return Layer.mergeAll(
    SweeperLoop.pipe(Layer.provideMerge(sweeper)),
    Auth.Default,
    ClaudeRunner.Default
  )
}

/** The gateway's services with real agent processes. */
export const ServicesLive = layerServices(AcpxPool.Default)
