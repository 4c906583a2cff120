import { OtlpSerialization, OtlpTracer } from "@effect/opentelemetry"
import { NodeHttpClient } from "@effect/platform-node"
import { Config, ConfigError, Effect, Either, Layer, Logger, LogLevel, Option } from "effect"
import { version } from "../../version.js"

const logLevels: Record<string, LogLevel.LogLevel> = {
  all: LogLevel.All,
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  warn: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  none: LogLevel.None,
  off: LogLevel.None
}

/**
 * Structured JSON log lines (or Effect's pretty format with `CLAWDFORGE_LOG_FORMAT=pretty`),
 * at `CLAWDFORGE_LOG_LEVEL` (info by default).
 */
export const LoggingLive = Layer.unwrapEffect(
  Effect.gen(function*() {
    const format = yield* Config.literal("json", "pretty")("CLAWDFORGE_LOG_FORMAT").pipe(Config.withDefault("json"))
    const level = yield* Config.string("CLAWDFORGE_LOG_LEVEL").pipe(
      Config.withDefault("info"),
      Config.mapOrFail((name) => {
        const level = logLevels[name.toLowerCase()]
        return level === undefined
          ? Either.left(
            ConfigError.InvalidData(["CLAWDFORGE_LOG_LEVEL"], `Expected one of ${Object.keys(logLevels).join(", ")}`)
          )
          : Either.right(level)
      })
    )
    return Layer.merge(format === "json" ? Logger.json : Logger.pretty, Logger.minimumLogLevel(level))
  })
)

/**
 * Exports the `Effect.fn` spans over OTLP/HTTP when the standard OpenTelemetry variables
 * ask for it (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
 * `OTEL_SERVICE_NAME`); nothing otherwise.
 */
export const TracingLive = Layer.unwrapEffect(
  Effect.gen(function*() {
    const base = yield* Config.option(Config.string("OTEL_EXPORTER_OTLP_ENDPOINT"))
    const traces = yield* Config.option(Config.string("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    const serviceName = yield* Config.string("OTEL_SERVICE_NAME").pipe(Config.withDefault("clawdforge"))
    const url = Option.orElse(traces, () => Option.map(base, (endpoint) => `${endpoint.replace(/\/$/, "")}/v1/traces`))
    if (Option.isNone(url)) return Layer.empty
    return OtlpTracer.layer({ url: url.value, resource: { serviceName, serviceVersion: version } }).pipe(
      Layer.provide([NodeHttpClient.layerUndici, OtlpSerialization.layerJson])
    )
  })
)
