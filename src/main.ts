import { NodeRuntime } from "@effect/platform-node"
import { ConfigError, Effect, Layer } from "effect"
import { HttpLive } from "./http/Server.js"
import { ServicesLive } from "./services/Gateway.js"

/** One line naming the variable: `CLAWDFORGE_PORT: Expected an integer ...`. */
const describeConfigError = (error: ConfigError.ConfigError): string =>
  ConfigError.reduceWithContext(error, undefined, {
    andCase: (_, left, right) => `${left}; ${right}`,
    orCase: (_, left, right) => `${left}; ${right}`,
    invalidDataCase: (_, path, message) => `${path.join(".")}: ${message}`,
    missingDataCase: (_, path, message) => `${path.join(".")}: ${message}`,
    sourceUnavailableCase: (_, path, message) => `${path.join(".")}: ${message}`,
    unsupportedCase: (_, path, message) => `${path.join(".")}: ${message}`
  })

Layer.launch(HttpLive.pipe(Layer.provide(ServicesLive))).pipe(
  Effect.catchIf(ConfigError.isConfigError, (error) =>
    Effect.sync(() => {
      console.error(`clawdforge: invalid configuration: ${describeConfigError(error)}`)
      process.exitCode = 1
    })),
  NodeRuntime.runMain
)
