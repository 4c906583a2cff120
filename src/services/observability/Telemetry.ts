import { HttpMiddleware } from "@effect/platform"
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
 * `OTEL_SERVICE_NAME`). Otherwise spans are switched off, the HTTP server's request spans
 * too: nobody would read them, and making them is a good part of a turn's cost. The exporter's
 * modules are loaded only when it is configured.
 */
export const TracingLive = Layer.unwrapEffect(
  Effect.gen(function*() {
    const base = yield* Config.option(Config.string("OTEL_EXPORTER_OTLP_ENDPOINT"))
    const traces = yield* Config.option(Config.string("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    const serviceName = yield* Config.string("OTEL_SERVICE_NAME").pipe(Config.withDefault("clawdforge"))
    const url = Option.orElse(traces, () => Option.map(base, (endpoint) => `${endpoint.replace(/\/$/, "")}/v1/traces`))
    if (Option.isNone(url)) {
      return Layer.mergeAll(
        Layer.setTracerEnabled(false),
        Layer.locallyScoped(HttpMiddleware.currentTracerDisabledWhen, () => true)
      )
    }
    const [OtlpTracer, OtlpSerialization, NodeHttpClient] = yield* Effect.promise(() =>
      Promise.all([
        import("@effect/opentelemetry/OtlpTracer"),
        import("@effect/opentelemetry/OtlpSerialization"),
        import("@effect/platform-node/NodeHttpClient")
      ])
    )
    return OtlpTracer.layer({ url: url.value, resource: { serviceName, serviceVersion: version } }).pipe(
      Layer.provide([NodeHttpClient.layerUndici, OtlpSerialization.layerJson])
    )
  })
)
