import { NodeRuntime } from "@effect/platform-node"
import { ConfigError, Effect, Layer } from "effect"
import { describeConfigError } from "./services/AppConfig.js"
import { HttpLive } from "./http/Server.js"
import { ServicesLive } from "./services/Gateway.js"

Layer.launch(HttpLive.pipe(Layer.provide(ServicesLive))).pipe(
  Effect.catchIf(ConfigError.isConfigError, (error) =>
    Effect.sync(() => {
      console.error(`clawdforge: invalid configuration: ${describeConfigError(error)}`)
      process.exitCode = 1
    })),
  NodeRuntime.runMain
)
