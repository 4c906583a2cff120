import { Config, ConfigError, Data, Duration, Effect, Either, Layer, Option, ParseResult, Redacted, Schema } from "effect"
import { PermissionMode } from "../../domain/Session.js"
import { AgentDefinition } from "../../domain/Agent.js"
import { AppLimitsByApp } from "../../domain/Tenancy.js"

const positiveInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "Expected a positive integer", validation: (n) => n > 0 }),
    Config.withDefault(fallback)
  )

/** A count where 0 means off. */
const nonNegativeInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "Expected 0 (off) or more", validation: (n) => n >= 0 }),
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

/** How far an agent's network reaches: the host's, none, or only the listed hosts through the gateway's proxy. */
export type AgentNetwork =
  | { readonly _tag: "host" }
  | { readonly _tag: "none" }
  | { readonly _tag: "allow"; readonly hosts: ReadonlyArray<AllowedHost> }

/** A host an agent may reach through the proxy; without a port, any port of it. */
export interface AllowedHost {
  readonly host: string
  readonly port: number | undefined
}

/** `host`, `none` or `allow:HOST[:PORT],...` (an IPv6 address in brackets); `variable` names it in errors. */
export const parseAgentNetwork = (raw: string, variable: string): Either.Either<AgentNetwork, ConfigError.ConfigError> => {
  const value = raw.trim()
  if (value === "host" || value === "none") return Either.right({ _tag: value })
  if (!value.startsWith("allow:")) {
    return Either.left(ConfigErrorInvalid(variable, `expected host, none or allow:HOST[:PORT],... (got "${value.slice(0, 40)}")`))
  }
  const hosts: Array<AllowedHost> = []
  for (const entry of value.slice("allow:".length).split(",").map((s) => s.trim()).filter((s) => s.length > 0)) {
    const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.*-]+)(?::(\d{1,5}))?$/.exec(entry)
    const port = match?.[2] === undefined ? undefined : Number(match[2])
    if (match === null || (port !== undefined && (port < 1 || port > 65535))) {
      return Either.left(ConfigErrorInvalid(variable, `"${entry.slice(0, 80)}" is not HOST or HOST:PORT`))
    }
    hosts.push({ host: match[1]!.replace(/^\[|\]$/g, "").toLowerCase(), port })
  }
  return Either.right({ _tag: "allow", hosts })
}

const agentNetwork = Config.string("CLAWDFORGE_AGENT_NETWORK").pipe(
  Config.withDefault("host"),
  Config.mapOrFail((raw) => parseAgentNetwork(raw, "CLAWDFORGE_AGENT_NETWORK"))
)

/** `NAME,NAME`: variables of the gateway's own environment that agents get too. */
const agentEnvPass = Config.string("CLAWDFORGE_AGENT_ENV_PASS").pipe(
  Config.withDefault(""),
  Config.mapOrFail((raw) => {
    const names = raw.split(",").map((s) => s.trim()).filter((s) => s.length > 0)
    const bad = names.find((name) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
    return bad === undefined
      ? Either.right(names as ReadonlyArray<string>)
      : Either.left(ConfigErrorInvalid("CLAWDFORGE_AGENT_ENV_PASS", `"${bad.slice(0, 40)}" is not a variable name`))
  })
)

/** `CLAWDFORGE_AGENT_CPUS`: a positive number of CPUs (`1.5`); unset: no CPU limit. */
const agentCpus = Config.number("CLAWDFORGE_AGENT_CPUS").pipe(
  Config.validate({ message: "Expected a positive number of CPUs", validation: (n) => n > 0 && n <= 1024 }),
  Config.option
)

const userId = (name: string) =>
  Config.integer(name).pipe(
    Config.validate({ message: "Expected a user or group id above 0", validation: (n) => n > 0 && n < 2 ** 32 }),
    Config.withDefault(65534)
  )

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

/**
 * A token that names two apps, or an app and the operators, would let one act as the other:
 * start-up stops, naming the apps (never the token).
 */
const refuseSharedTokens = <
  C extends {
    readonly appTokens: ReadonlyArray<readonly [string, Redacted.Redacted]>
    readonly adminToken: Option.Option<Redacted.Redacted>
  }
>(config: C): Either.Either<C, ConfigError.ConfigError> => {
  const appsByToken = new Map<string, Array<string>>()
  for (const [app, token] of config.appTokens) {
    const apps = appsByToken.get(Redacted.value(token)) ?? []
    appsByToken.set(Redacted.value(token), [...apps, app])
  }
  for (const apps of appsByToken.values()) {
    if (apps.length > 1) {
      return Either.left(ConfigErrorInvalid("CLAWDFORGE_APP_TOKENS", `apps ${apps.join(", ")} have the same token: give each its own`))
    }
  }
  const shared = Option.flatMap(config.adminToken, (admin) => Option.fromNullable(appsByToken.get(Redacted.value(admin))))
  if (Option.isSome(shared)) {
    return Either.left(ConfigErrorInvalid(
      "CLAWDFORGE_APP_TOKENS",
      `app ${shared.value.join(", ")} has the CLAWDFORGE_ADMIN_TOKEN as its token: give the operators a token of their own`
    ))
  }
  return Either.right(config)
}

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
      adminToken: optionalSecret("CLAWDFORGE_ADMIN_TOKEN"),
      // Isolation (src/services/sandbox): how agents are boxed, what they reach, what they may use.
      sandbox: Config.literal("auto", "bwrap", "off")("CLAWDFORGE_SANDBOX").pipe(Config.withDefault("auto" as const)),
      agentNetwork,
      agentMemoryMb: positiveInt("CLAWDFORGE_AGENT_MEMORY_MB", 4096),
      agentPids: positiveInt("CLAWDFORGE_AGENT_PIDS", 512),
      agentCpus,
      agentEnvPass,
      // The unprivileged user agents run as when the gateway runs as root (65534: nobody).
      agentUid: userId("CLAWDFORGE_AGENT_UID"),
      agentGid: userId("CLAWDFORGE_AGENT_GID"),
      // Who may scrape `/metrics` besides the operators; with neither token set, any app token (as before).
      metricsToken: optionalSecret("CLAWDFORGE_METRICS_TOKEN"),
      // How long a request (its head and body) may take to arrive: a trickled body holds no connection longer.
      bodyTimeout: seconds("CLAWDFORGE_BODY_TIMEOUT_SECS", 30),
      // Wrong tokens one client address may send per minute before its further wrong ones are 429 (0: no limit).
      authFailuresPerMinute: nonNegativeInt("CLAWDFORGE_AUTH_FAILURES_PER_MINUTE", 20),
      // Refusals (429s for its own limits) one app's token gets answered at once per second; past it they are paced (0: never).
      refusalsPerSecond: nonNegativeInt("CLAWDFORGE_REFUSALS_PER_SECOND", 20),
      // Fair share: the defaults of the per-app limits `max_queued_turns` (per session) and `max_streams`.
      maxQueuedTurns: positiveInt("CLAWDFORGE_MAX_QUEUED_TURNS", 32),
      maxStreamsPerApp: positiveInt("CLAWDFORGE_MAX_STREAMS_PER_APP", 64),
      // What one stored turn keeps of its messages (MB); past it the stored turn is `truncated`.
      turnMaxStoredBytes: Config.map(positiveInt("CLAWDFORGE_TURN_MAX_STORED_MB", 16), (mb) => mb * 1024 * 1024),
      // Webhook targets on the host's own networks (loopback, private, ...): refused unless on-prem receivers are meant.
      webhookAllowPrivate: Config.boolean("CLAWDFORGE_WEBHOOK_ALLOW_PRIVATE").pipe(Config.withDefault(false)),
      // A create's `git` may name a repository on the gateway's own disk (a bare path or file://): trusted setups only.
      gitAllowFile: Config.boolean("CLAWDFORGE_GIT_ALLOW_FILE").pipe(Config.withDefault(false)),
      // How long a create's clone (and checkout) may take before it is stopped: 400 git_clone_failed.
      gitCloneTimeout: seconds("CLAWDFORGE_GIT_TIMEOUT_SECS", 300),
      // Hibernation: an agent with no turn this long is stopped, its session kept (0: never).
      agentIdle: Config.map(nonNegativeInt("CLAWDFORGE_AGENT_IDLE_SECS", 0), Duration.seconds),
      // Workspaces: the largest file a PUT takes, what one session's workspace may hold, and the default of the
      // app limit `max_disk_mb` (all of an app's workspaces and its HOME).
      maxFileBytes: Config.map(positiveInt("CLAWDFORGE_MAX_FILE_MB", 25), (mb) => mb * 1024 * 1024),
      workspaceMaxBytes: Config.map(positiveInt("CLAWDFORGE_WORKSPACE_MAX_MB", 1024), (mb) => mb * 1024 * 1024),
      appMaxDiskMb: positiveInt("CLAWDFORGE_APP_MAX_DISK_MB", 10240)
    }).pipe(Config.mapOrFail(refuseSharedTokens))
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
