import { Layer } from "effect"
import { AppLimits } from "../tenancy/AppLimits.js"
import { AppSecrets } from "../tenancy/AppSecrets.js"
import { Usage } from "../tenancy/Usage.js"
import { Webhooks } from "../tenancy/Webhooks.js"
import { AppTokens } from "./AppTokens.js"
import { DatabaseLive } from "./Database.js"
import { Ledger } from "./Ledger.js"

/**
 * What the ledger keeps, as services over the one SqlClient for `CLAWDFORGE_DB` (one connection
 * even for `:memory:`), which the layer provides too: sessions and turns, app tokens, webhooks,
 * the apps' sealed secrets, limits and usage. It needs `AppConfig`.
 */
export const layerLedger = <Counters = never, E = never, R = never>(options: {
  /** A cluster node's: what the per-app limits count with across the nodes (else this process counts alone). */
  readonly limitCounters?: Layer.Layer<Counters, E, R> | undefined
} = {}) => {
  // Given the usage: counters may count with it (a day's cost).
  const limits = AppLimits.DefaultWithoutDependencies.pipe(
    Layer.provide(options.limitCounters ?? Layer.empty),
    Layer.provideMerge(Usage.DefaultWithoutDependencies)
  )
  return Layer.mergeAll(
    Ledger.DefaultWithoutDependencies,
    AppTokens.DefaultWithoutDependencies,
    // Webhooks' signing secrets are sealed with the apps' environments.
    Webhooks.DefaultWithoutDependencies.pipe(Layer.provideMerge(AppSecrets.DefaultWithoutDependencies)),
    limits
  ).pipe(Layer.provideMerge(DatabaseLive))
}

/** The ledger's services with limits counted by this process alone: a single gateway's, the admin CLI's. */
export const LedgerLive = layerLedger()
