import { Config, ConfigError, Data, Duration, Effect, Either, Layer, Option, ParseResult, Redacted, Schema } from "effect"
import { PermissionMode } from "../../domain/Session.js"
import { AgentDefinition } from "../../domain/Agent.js"
import { AppLimitsByApp } from "../../domain/Tenancy.js"

const positiveInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "Expected a positive integer", validation: (n) => n > 0 }),
    Config.withDefault(fallback)
  )

const seconds = (name: string, fallback: number) => Config.map(positiveInt(name, fallback), Duration.seconds)

/** `app=token,app2=token2`: the tokens stay redacted from here on. */
const appTokens = Config.string("CLAWDFORGE_APP_TOKENS").pipe(
  Config.withDefault(""),
  Config.mapOrFail((raw) => {
    const pairs: Array<readonly [string, Redacted.Redacted]> = []
    for (const entry of raw.split(",").map((s) => s.trim()).filter((s) => s.length > 0)) {
      const eq = entry.indexOf("=")
      const app = entry.slice(0, eq).trim()
      const token = entry.slice(eq + 1).trim()
      if (eq <= 0 || token.length === 0 || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(app)) {
        // Never echo the entry: it holds a token.
        return Either.left(
          ConfigErrorInvalid("CLAWDFORGE_APP_TOKENS", `entry ${pairs.length + 1} is not app=token`)
        )
      }
      pairs.push([app, Redacted.make(token)])
    }
    return Either.right(pairs as ReadonlyArray<readonly [string, Redacted.Redacted]>)
  })
)

/** A JSON variable decoded by `schema`, its issues on one line naming it. */
const jsonConfig = <A, I>(
  name: string,
  schema: Schema.Schema<A, I>,
  onExcessProperty: "ignore" | "error" = "ignore"
) =>
  Config.string(name).pipe(
    Config.withDefault("{}"),
    Config.mapOrFail((raw) =>
      Schema.decodeUnknownEither(Schema.parseJson(schema), { onExcessProperty })(raw).pipe(
        Either.mapLeft((error) =>
          ConfigErrorInvalid(
            name,
            ParseResult.ArrayFormatter.formatErrorSync(error)
              .map((issue) => `${issue.path.length === 0 ? "value" : issue.path.join(".")}: ${issue.message}`)
              .join("; ")
          )
        )
      )
    )
  )

/** `CLAWDFORGE_AGENTS`: entries to merge over the built-in registry. */
const agents = jsonConfig("CLAWDFORGE_AGENTS", Schema.Record({ key: Schema.String, value: AgentDefinition }))

/** `CLAWDFORGE_APP_LIMITS`: `{"app": {"max_sessions": N, ...}, "*": {...}}`; a misspelt limit is refused. */
const appLimits = jsonConfig("CLAWDFORGE_APP_LIMITS", AppLimitsByApp, "error")

/** A secret of 16 characters or more; unset or empty: none. */
const optionalSecret = (name: string) =>
  Config.redacted(name).pipe(
    Config.withDefault(Redacted.make("")),
    Config.mapOrFail((key) => {
      const length = Redacted.value(key).length
      if (length === 0) return Either.right(Option.none<Redacted.Redacted>())
      return length >= 16
        ? Either.right(Option.some(key))
        : Either.left(ConfigErrorInvalid(name, "Expected at least 16 characters"))
    })
  )
/**
 * `CLAWDFORGE_SECRET_KEY`: what apps' agent environments are encrypted under (any string of 16
 * characters or more; `openssl rand -base64 32` makes a good one). Unset or empty: none.
 */
const secretKey = optionalSecret("CLAWDFORGE_SECRET_KEY")

const ConfigErrorInvalid = (name: string, message: string) => ConfigError.InvalidData([name], message)

/** Where the ledger lives: a SQLite file (or `:memory:`), or a PostgreSQL database. */
export type LedgerLocation =
  | { readonly _tag: "Sqlite"; readonly filename: string }
  | {
    readonly _tag: "Postgres"
    readonly url: Redacted.Redacted
    /** The URL without its password: what logs and errors may name. */
    readonly display: string
  }

/** `CLAWDFORGE_DB`: a SQLite path, or `postgres://` / `postgresql://`; any other URL scheme is refused. */
const database = Config.string("CLAWDFORGE_DB").pipe(
  Config.withDefault("./data/clawdforge.db"),
  Config.mapOrFail((raw): Either.Either<LedgerLocation, ConfigError.ConfigError> => {
    const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(raw)?.[1]?.toLowerCase()
    if (scheme === undefined) return Either.right({ _tag: "Sqlite", filename: raw })
    if (scheme !== "postgres" && scheme !== "postgresql") {
      return Either.left(ConfigErrorInvalid(
        "CLAWDFORGE_DB",
        `${scheme}:// is not a ledger: give a SQLite file path or a postgres:// URL`
      ))
    }
    const url = URL.canParse(raw) ? new URL(raw) : undefined
    // Never echo the value: it may hold a password.
    if (url === undefined || url.hostname === "" || url.pathname.length <= 1) {
      return Either.left(
        ConfigErrorInvalid("CLAWDFORGE_DB", "expected postgres://user:password@host:port/database")
      )
    }
    url.password = ""
    return Either.right({ _tag: "Postgres", url: Redacted.make(raw), display: url.href })
  })
)

/** A port the gateway is configured to listen on that it cannot have (another process holds it). */
export class ListenFailed extends Data.TaggedError("ListenFailed")<{
  readonly variable: string
  readonly message: string
}> {}

/**
 * `layer`, a server listening on `host:port`, whose failure to listen stops start-up as
 * `ListenFailed` naming `variable` (one line, instead of the error's stack).
 */
export const listeningOn = <A, E, R>(layer: Layer.Layer<A, E, R>, variable: string, host: string, port: number) =>
  Layer.catchAll(layer, (error) => {
    const cause = (error as { readonly cause?: unknown }).cause
    const reason = cause instanceof Error ? cause.message : String(error)
    return Layer.die(new ListenFailed({ variable, message: `cannot listen on ${host}:${port} (${reason})` }))
  })

export class AppConfig extends Effect.Service<AppConfig>()("clawdforge/AppConfig", {
  effect: Effect.gen(function*() {
    return yield* Config.all({
      host: Config.string("CLAWDFORGE_HOST").pipe(Config.withDefault("127.0.0.1")),
      port: Config.port("CLAWDFORGE_PORT").pipe(Config.withDefault(8787)),
      database,
      appTokens,
      maxLiveSessions: positiveInt("CLAWDFORGE_MAX_LIVE_SESSIONS", 8),
      // One node of a gateway cluster (src/cluster): the rest of its settings are read only then.
      cluster: Config.boolean("CLAWDFORGE_CLUSTER").pipe(Config.withDefault(false)),
      sessionTtl: seconds("CLAWDFORGE_SESSION_TTL_SECS", 3600),
      sessionHardTtl: seconds("CLAWDFORGE_SESSION_HARD_TTL_SECS", 604800),
      sweepInterval: seconds("CLAWDFORGE_SWEEP_INTERVAL_SECS", 60),
      turnTimeout: seconds("CLAWDFORGE_TURN_TIMEOUT_SECS", 600),
      // How long an ask-mode request waits for the caller before the policy answers it.
      permissionTimeout: seconds("CLAWDFORGE_PERMISSION_TIMEOUT_SECS", 300),
      idempotencyTtl: seconds("CLAWDFORGE_IDEMPOTENCY_TTL_SECS", 86400),
      agents,
      appLimits,
      secretKey,
      claudeBin: Config.string("CLAWDFORGE_CLAUDE_BIN").pipe(Config.withDefault("claude")),
      workspaceRoot: Config.string("CLAWDFORGE_WORKSPACE_ROOT").pipe(Config.withDefault("./data/workspaces")),
      defaultPermissionMode: Config.literal(...PermissionMode.literals)("CLAWDFORGE_PERMISSION_MODE").pipe(
        Config.withDefault("approve-reads" as const)
      ),
      maxBodyBytes: positiveInt("CLAWDFORGE_MAX_BODY_BYTES", 1024 * 1024),
      // The operators' token (`/admin/*`, the console); unset or empty: the admin API is off.
      adminToken: optionalSecret("CLAWDFORGE_ADMIN_TOKEN")
    })
  })
}) {}

/** One line naming the variable: `CLAWDFORGE_PORT: Expected a network port value ...`. */
export const describeConfigError = (error: ConfigError.ConfigError): string =>
  ConfigError.reduceWithContext(error, undefined, {
    andCase: (_, left, right) => `${left}; ${right}`,
    orCase: (_, left, right) => `${left}; ${right}`,
    invalidDataCase: (_, path, message) => `${path.join(".")}: ${message}`,
    missingDataCase: (_, path, message) => `${path.join(".")}: ${message}`,
    sourceUnavailableCase: (_, path, message) => `${path.join(".")}: ${message}`,
    unsupportedCase: (_, path, message) => `${path.join(".")}: ${message}`
  })
