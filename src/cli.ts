/**
 * `clawdforge`: the gateway (`serve`) and its admin commands. The admin commands work on the
 * ledger named by `CLAWDFORGE_DB` (a SQLite file or PostgreSQL) and never start the HTTP server or an agent.
 */
import { Args, Command, HelpDoc, Options, ValidationError } from "@effect/cli"
import { SqlClient } from "@effect/sql"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Console, Data, Effect, Either, Layer, Option, Order, Array as Arr, Redacted, Schema } from "effect"
import { AppName, SessionId } from "./domain/Ids.js"
import { PermissionMode, type Session } from "./domain/Session.js"
import { AppConfig } from "./services/config/AppConfig.js"
import { AppTokens } from "./services/ledger/AppTokens.js"
import { Webhooks } from "./services/tenancy/Webhooks.js"
import { AppLimits, parseNetworkLimit } from "./services/tenancy/AppLimits.js"
import { AppSecrets } from "./services/tenancy/AppSecrets.js"
import { Usage } from "./services/tenancy/Usage.js"
import { allPermissionModes, LimitCount, LimitUsd, limitNames, UsageGroupBy, type WarmLimit } from "./domain/Tenancy.js"
import { LedgerLive } from "./services/ledger/LedgerLive.js"
import { reportConfigError, serveGateway } from "./Gateway.js"
import { Ledger, nowSeconds } from "./services/ledger/Ledger.js"
import { version } from "./version.js"


/** A refusal the admin caused (unknown session, ...): one line on stderr, exit code 1. */
class CliFailure extends Data.TaggedError("CliFailure")<{ readonly message: string }> {}

/** What the admin commands run on: the ledger alone, migrated, and the configuration. */
const AdminCommandsLive = LedgerLive.pipe(Layer.provideMerge(AppConfig.Default))

const json = Options.boolean("json").pipe(Options.withDescription("Print JSON instead of a table"))

const isoTime = (seconds: number | null) => seconds === null ? "-" : new Date(seconds * 1000).toISOString()

/** Left-aligned columns under a header, for people; `--json` is for programs. */
const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>) => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  return [header, ...rows].map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd())
    .join("\n")
}

// ---- serve ----------------------------------------------------------------------------

const serve = Command.make("serve", {}, () => serveGateway).pipe(
  Command.withDescription("Run the HTTP gateway (what `npm start` runs), configured by the CLAWDFORGE_* variables")
)

// ---- apps -----------------------------------------------------------------------------

/** App names as the gateway accepts them, with a message people can act on. */
const AppNameArg = AppName.annotations({
  message: () => "An app name is a letter or digit, then letters, digits, _ . - (64 at most)"
})

const appName = Args.text({ name: "name" }).pipe(
  Args.withSchema(AppNameArg),
  Args.withDescription("App name: a letter or digit, then letters, digits, _ . - (64 at most)")
)

const appsAdd = Command.make("add", { name: appName }, ({ name }) =>
  Effect.gen(function*() {
    const app = yield* (yield* AppTokens).add(name)
    // The token alone on stdout, so `TOKEN=$(clawdforge apps add NAME)` works; the rest on stderr.
    yield* Console.error(`Added app ${app.name}. Its bearer token, shown only this once:`)
    yield* Console.log(Redacted.value(app.token))
  })).pipe(
    Command.withDescription(
      "Add an app and print its new bearer token once (only its SHA-256 is stored). " +
        "A revoked app can be added again: that issues a new token. A running gateway accepts it within seconds."
    )
  )

const appsList = Command.make("list", { json }, ({ json }) =>
  Effect.gen(function*() {
    const apps = yield* (yield* AppTokens).list()
    if (json) return yield* Console.log(JSON.stringify(apps))
    yield* Console.log(table(
      ["NAME", "STATUS", "CREATED", "REVOKED"],
      apps.map((a) => [a.name, a.revoked_at === null ? "active" : "revoked", isoTime(a.created_at), isoTime(a.revoked_at)])
    ))
  })).pipe(
    Command.withDescription(
      "List the apps in the ledger (not those from CLAWDFORGE_APP_TOKENS); tokens are never shown"
    )
  )

const appsRevoke = Command.make("revoke", { name: appName }, ({ name }) =>
  Effect.gen(function*() {
    const { alreadyRevoked, closedSessions } = yield* (yield* AppTokens).revoke(name)
    yield* Console.log(
      alreadyRevoked
        ? `App ${name} was already revoked`
        : `Revoked app ${name}` + (closedSessions.length === 0 ? "" : ` and closed its ${closedSessions.length} open sessions ` +
          "(a running gateway stops their agents within seconds)")
    )
  })).pipe(
    Command.withDescription(
      "Revoke an app's token. A running gateway refuses it (401) within 5 seconds; its sessions stay in the ledger."
    )
  )

// ---- apps webhook ---------------------------------------------------------------------

const appArg = Args.text({ name: "app" }).pipe(
  Args.withSchema(AppNameArg),
  Args.withDescription("A configured app: from CLAWDFORGE_APP_TOKENS or active in the ledger")
)

/** The app, if it is configured (its token from CLAWDFORGE_APP_TOKENS or active in the ledger). */
const configuredApp = (app: AppName) =>
  Effect.gen(function*() {
    const { appTokens } = yield* AppConfig
    if (appTokens.some(([name]) => name === app)) return app
    const ledgerApps = yield* (yield* AppTokens).list()
    if (ledgerApps.some((a) => a.name === app && a.revoked_at === null)) return app
    return yield* new CliFailure({
      message: `No app ${app} (neither in CLAWDFORGE_APP_TOKENS nor active in the ledger)`
    })
  })

const webhookSet = Command.make("set", { app: appArg, url: Args.text({ name: "url" }) }, ({ app, url }) =>
  Effect.gen(function*() {
    yield* configuredApp(app)
    const hook = yield* (yield* Webhooks).set(app, url)
    // The secret alone on stdout, so `SECRET=$(clawdforge apps webhook set APP URL)` works.
    yield* Console.error(`Set the webhook of app ${app} to ${hook.url}. Its signing secret, shown only this once:`)
    yield* Console.log(Redacted.value(hook.secret))
  })).pipe(
    Command.withDescription(
      "Set an app's webhook URL (http or https) and print a new signing secret once. " +
        "A URL with a user or password, or whose host is or resolves to a loopback, private, link-local, shared, " +
        "unspecified or multicast address, is refused unless CLAWDFORGE_WEBHOOK_ALLOW_PRIVATE=true. " +
        "A running gateway uses it within 5 seconds."
    )
  )

const webhookShow = Command.make("show", { app: appArg, json }, ({ app, json }) =>
  Effect.gen(function*() {
    yield* configuredApp(app)
    const hook = yield* (yield* Webhooks).show(app)
    if (json) return yield* Console.log(JSON.stringify(hook ?? null))
    if (hook === undefined) return yield* Console.log(`App ${app} has no webhook`)
    yield* Console.log(table(["APP", "URL", "SET"], [[hook.app, hook.url, isoTime(hook.created_at)]]))
  })).pipe(Command.withDescription("Show an app's webhook URL (never its secret; a user or password in it masked)"))

const webhookRemove = Command.make("remove", { app: appArg }, ({ app }) =>
  Effect.gen(function*() {
    yield* configuredApp(app)
    const removed = yield* (yield* Webhooks).remove(app)
    yield* Console.log(removed ? `Removed the webhook of app ${app}` : `App ${app} had no webhook`)
  })).pipe(
    Command.withDescription("Remove an app's webhook; its pending deliveries are dropped")
  )

const appsWebhook = Command.make("webhook").pipe(
  Command.withDescription("An app's webhook: signed events (turn.completed, turn.failed, session.closed)"),
  Command.withSubcommands([webhookSet, webhookShow, webhookRemove])
)

// ---- apps limits ----------------------------------------------------------------------

/** A limit's option: a number checked by the limit's schema, its error naming the option. */
const limitOption = (
  name: string,
  kind: typeof Options.integer,
  schema: typeof LimitCount | typeof LimitUsd,
  description: string
) =>
  kind(name).pipe(
    Options.withSchema(schema.annotations({
      message: () => `--${name}: expected ${schema === LimitUsd ? "an amount in US dollars" : "a whole number"}, 0 or more`
    })),
    Options.optional,
    Options.withDescription(description)
  )

const invalidOption = (message: string) => Effect.fail(ValidationError.invalidValue(HelpDoc.p(message)))

/** `--permission-modes approve-reads,ask`: the modes the app's creates may ask for, at least one. */
const permissionModesOption = Options.text("permission-modes").pipe(
  Options.mapEffect((raw) => {
    const modes = raw.split(",").map((mode) => mode.trim()).filter((mode) => mode.length > 0)
    const unknown = modes.find((mode) => !Schema.is(PermissionMode)(mode))
    return modes.length === 0 || unknown !== undefined
      ? invalidOption(
        `--permission-modes: expected a comma-separated list of ${allPermissionModes.join(", ")}` +
          (unknown === undefined ? "" : ` (got "${unknown.slice(0, 40)}")`)
      )
      : Effect.succeed(modes as ReadonlyArray<PermissionMode>)
  }),
  Options.optional,
  Options.withDescription(
    `The permission modes the app's creates may ask for, comma-separated (${allPermissionModes.join(", ")}; ` +
      "beyond: 400 permission_mode_not_allowed)"
  )
)

/** `--warm claude=2,echo=1`: ready sessions kept per agent (0 keeps none of that agent). */
const warmOption = Options.text("warm").pipe(
  Options.mapEffect((raw) => {
    const warm: Record<string, number> = {}
    for (const entry of raw.split(",").map((part) => part.trim()).filter((part) => part.length > 0)) {
      const match = /^([^=\s]+)=(\d{1,6})$/.exec(entry)
      if (match === null) return invalidOption(`--warm: expected AGENT=N,... (got "${entry.slice(0, 40)}")`)
      warm[match[1]!] = Number(match[2])
    }
    return Effect.succeed(warm as WarmLimit)
  }),
  Options.optional,
  Options.withDescription("Ready sessions to keep for the app, per agent: AGENT=N,... (a create of that agent takes one)")
)

/** `--network host|none|allow:HOST[:PORT],...`, checked as CLAWDFORGE_AGENT_NETWORK is. */
const networkOption = Options.text("network").pipe(
  Options.mapEffect((raw) =>
    Either.match(parseNetworkLimit(raw, "--network"), { onLeft: invalidOption, onRight: () => Effect.succeed(raw.trim()) })
  ),
  Options.optional,
  Options.withDescription(
    "What the app's agents reach: host, none or allow:HOST[:PORT],... (over CLAWDFORGE_AGENT_NETWORK)"
  )
)

const appsLimits = Command.make("limits", {
  app: appArg,
  maxSessions: limitOption(
    "max-sessions",
    Options.integer,
    LimitCount,
    "Live sessions the app may hold at once (beyond: 429 app_session_limit)"
  ),
  turnsPerMinute: limitOption(
    "turns-per-minute",
    Options.integer,
    LimitCount,
    "Turns the app may start in any 60 s (beyond: 429 rate_limited)"
  ),
  dailyCostUsd: limitOption(
    "daily-cost-usd",
    Options.float,
    LimitUsd,
    "What the app's agents may cost per UTC day, in US dollars (beyond: 429 budget_exhausted)"
  ),
  permissionModes: permissionModesOption,
  network: networkOption,
  maxQueuedTurns: limitOption(
    "max-queued-turns",
    Options.integer,
    LimitCount,
    "Turns each session may hold accepted and not yet running (beyond: 429 queue_full; over CLAWDFORGE_MAX_QUEUED_TURNS)"
  ),
  maxStreams: limitOption(
    "max-streams",
    Options.integer,
    LimitCount,
    "SSE streams the app may hold open at once (beyond: 429 too_many_streams; over CLAWDFORGE_MAX_STREAMS_PER_APP)"
  ),
  maxDiskMb: limitOption(
    "max-disk-mb",
    Options.integer,
    LimitCount,
    "What the app\'s workspaces and HOME may hold on disk, in MB (at or past it: 429 disk_quota; over CLAWDFORGE_APP_MAX_DISK_MB)"
  ),
  maxStoredMb: limitOption(
    "max-stored-mb",
    Options.integer,
    LimitCount,
    "What the app's stored turns may take in the ledger, in MB (at or past it: 429 storage_quota)"
  ),
  warm: warmOption,
  clear: Options.boolean("clear").pipe(
    Options.withDescription("First forget the app's limits in the ledger (CLAWDFORGE_APP_LIMITS applies again)")
  ),
  json
}, (options) =>
  Effect.gen(function*() {
    const { app } = options
    yield* configuredApp(app)
    const limits = yield* AppLimits
    const patch = {
      max_sessions: Option.getOrUndefined(options.maxSessions),
      turns_per_minute: Option.getOrUndefined(options.turnsPerMinute),
      daily_cost_usd: Option.getOrUndefined(options.dailyCostUsd),
      permission_modes: Option.getOrUndefined(options.permissionModes),
      network: Option.getOrUndefined(options.network),
      max_queued_turns: Option.getOrUndefined(options.maxQueuedTurns),
      max_streams: Option.getOrUndefined(options.maxStreams),
      max_disk_mb: Option.getOrUndefined(options.maxDiskMb),
      max_stored_mb: Option.getOrUndefined(options.maxStoredMb),
      warm: Option.getOrUndefined(options.warm)
    }
    const changes = Object.values(patch).some((value) => value !== undefined)
    if (options.clear) yield* limits.clear(app)
    if (changes) yield* limits.set(app, patch)
    const now = yield* limits.configured(app)
    if (options.json) return yield* Console.log(JSON.stringify(now))
    if (options.clear || changes) {
      yield* Console.error(`Set the limits of app ${app}; a running gateway applies them within 5 seconds.`)
    }
    yield* Console.log(table(
      ["LIMIT", "VALUE", "FROM"],
      limitNames.map((name) => {
        const value = now.limits[name]
        const shown = value === null
          ? "none"
          : Array.isArray(value)
          ? value.join(",")
          : typeof value === "object"
          ? Object.entries(value).map(([agent, n]) => `${agent}=${n}`).join(",") || "none"
          : String(value)
        return [name, shown, now.sources[name]]
      })
    ))
    yield* Console.log(`cost today: ${now.cost_today_usd} USD`)
  })).pipe(
    Command.withDescription(
      "Show an app's limits, or set those given (in the ledger, over CLAWDFORGE_APP_LIMITS). " +
        "A running gateway applies them within 5 seconds."
    )
  )

// ---- apps env -------------------------------------------------------------------------

const envName = Args.text({ name: "name" }).pipe(Args.withDescription("A variable name: a letter or _, then letters, digits, _"))

const envSet = Command.make("set", {
  app: appArg,
  assignment: Args.text({ name: "KEY=VALUE" }).pipe(Args.withDescription("The variable and its value"))
}, ({ app, assignment }) =>
  Effect.gen(function*() {
    yield* configuredApp(app)
    const eq = assignment.indexOf("=")
    // Never echo the argument: it holds the value.
    if (eq <= 0) return yield* new CliFailure({ message: "Expected KEY=VALUE" })
    const name = assignment.slice(0, eq)
    yield* (yield* AppSecrets).set(app, name, assignment.slice(eq + 1))
    yield* Console.log(`Set ${name} in the agent environment of app ${app}; its new agents get it within 5 seconds.`)
  })).pipe(
    Command.withDescription(
      "Set a variable of an app's agent environment (e.g. its own ANTHROPIC_API_KEY), encrypted under " +
        "CLAWDFORGE_SECRET_KEY; given only to that app's agents, over the registry's env."
    )
  )

const envUnset = Command.make("unset", { app: appArg, name: envName }, ({ app, name }) =>
  Effect.gen(function*() {
    yield* configuredApp(app)
    const removed = yield* (yield* AppSecrets).unset(app, name)
    yield* Console.log(removed ? `Removed ${name} from the agent environment of app ${app}` : `App ${app} has no ${name}`)
  })).pipe(Command.withDescription("Remove a variable from an app's agent environment"))

const envList = Command.make("list", { app: appArg, json }, ({ app, json }) =>
  Effect.gen(function*() {
    yield* configuredApp(app)
    const names = yield* (yield* AppSecrets).names(app)
    if (json) return yield* Console.log(JSON.stringify(names))
    yield* Console.log(names.length === 0 ? `App ${app} has no agent environment` : names.join("\n"))
  })).pipe(Command.withDescription("List the names in an app's agent environment (never the values)"))

const appsEnv = Command.make("env").pipe(
  Command.withDescription("An app's own agent environment (its API keys), encrypted under CLAWDFORGE_SECRET_KEY"),
  Command.withSubcommands([envSet, envUnset, envList])
)

const apps = Command.make("apps").pipe(
  Command.withDescription("Manage the apps (bearer tokens) kept in the ledger, their webhooks, limits and agent environments"),
  Command.withSubcommands([appsAdd, appsList, appsRevoke, appsWebhook, appsLimits, appsEnv])
)

// ---- sessions -------------------------------------------------------------------------

const sessionId = Args.text({ name: "id" }).pipe(
  Args.withSchema(SessionId.annotations({ message: () => "A session id is 16 to 64 url-safe characters" })),
  Args.withDescription("Session id")
)

const findSession = (id: SessionId) =>
  Effect.flatMap(Ledger, (ledger) => ledger.findSession(id)).pipe(
    Effect.flatMap(Option.match({
      onNone: () => Effect.fail(new CliFailure({ message: `No session ${id}` })),
      onSome: Effect.succeed
    }))
  )

const byNewest = Order.combine(
  Order.reverse(Order.mapInput(Order.number, (s: Session) => s.created_at)),
  Order.mapInput(Order.string, (s: Session) => s.session_id)
)

const sessionsList = Command.make("list", {
  app: Options.text("app").pipe(
    Options.withSchema(AppNameArg),
    Options.optional,
    Options.withDescription("Only this app's sessions")
  ),
  status: Options.choice("status", ["open", "closed"]).pipe(Options.optional),
  limit: Options.integer("limit").pipe(Options.withDefault(100), Options.withDescription("At most this many")),
  json
}, (options) =>
  Effect.gen(function*() {
    const ledger = yield* Ledger
    const sql = yield* SqlClient.SqlClient
    const query = { status: Option.getOrUndefined(options.status), limit: options.limit }
    // The ledger lists one app at a time (callers only see their own): merge the apps' lists.
    const appNames = Option.isSome(options.app)
      ? [options.app.value]
      : (yield* sql<{ app_name: string }>`SELECT DISTINCT app_name FROM sessions ORDER BY app_name`.pipe(Effect.orDie))
        .map((row) => AppName.make(row.app_name))
    const perApp = yield* Effect.forEach(appNames, (app) => ledger.listSessions(app, query))
    const sessions = Arr.sort(perApp.flat(), byNewest).slice(0, options.limit)
    if (options.json) return yield* Console.log(JSON.stringify(sessions))
    yield* Console.log(table(
      ["SESSION", "APP", "AGENT", "STATUS", "TURNS", "CREATED", "LAST TURN"],
      sessions.map((s) => [
        s.session_id,
        s.app_name,
        s.agent,
        s.status,
        String(s.turn_count),
        isoTime(s.created_at),
        isoTime(s.last_turn_at)
      ])
    ))
  })).pipe(Command.withDescription("List sessions of every app (newest first)"))

const sessionsShow = Command.make("show", { id: sessionId }, ({ id }) =>
  Effect.gen(function*() {
    const session = yield* findSession(id)
    const events = yield* (yield* Ledger).sessionEvents(id)
    yield* Console.log(JSON.stringify({ session, events }, null, 2))
  })).pipe(Command.withDescription("Print a session's state and its audit events as JSON"))

const sessionsClose = Command.make("close", { id: sessionId }, ({ id }) =>
  Effect.gen(function*() {
    yield* findSession(id)
    const closed = yield* (yield* Ledger).closeSession(id, yield* nowSeconds)
    // Its app's webhook hears of it: a running gateway's sender finds it in the outbox within seconds.
    if (closed) yield* (yield* Webhooks).sessionsClosed([id])
    yield* Console.log(closed ? `Closed session ${id}` : `Session ${id} was already closed`)
  })).pipe(
    Command.withDescription(
      "Close a session in the ledger (audit event `close`). A running gateway answers 410 to the " +
        "session's next turn at once, and its next sweeper pass stops the session's live agent."
    )
  )

const sessions = Command.make("sessions").pipe(
  Command.withDescription("Inspect and close sessions in the ledger"),
  Command.withSubcommands([sessionsList, sessionsShow, sessionsClose])
)

// ---- usage ----------------------------------------------------------------------------

const unixOption = (name: string, description: string) =>
  Options.integer(name).pipe(Options.withSchema(LimitCount), Options.optional, Options.withDescription(description))

const usage = Command.make("usage", {
  app: Options.text("app").pipe(Options.withSchema(AppNameArg), Options.optional, Options.withDescription("Only this app")),
  from: unixOption("from", "From this Unix time (seconds, included)"),
  to: unixOption("to", "Until this Unix time (seconds, excluded)"),
  groupBy: Options.choice("group-by", UsageGroupBy.literals).pipe(Options.optional),
  json
}, (options) =>
  Effect.gen(function*() {
    const groupBy = Option.getOrUndefined(options.groupBy)
    const report = yield* (yield* Usage).usage(Option.getOrUndefined(options.app), {
      from: Option.getOrUndefined(options.from),
      to: Option.getOrUndefined(options.to),
      groupBy
    })
    if (options.json) return yield* Console.log(JSON.stringify(report))
    const row = (label: string, t: typeof report.totals) => [
      label,
      String(t.turns),
      String(t.sessions),
      String(t.runs),
      String(t.input_tokens),
      String(t.output_tokens),
      t.cost_usd.toFixed(4)
    ]
    yield* Console.log(table(
      [groupBy?.toUpperCase() ?? "", "TURNS", "SESSIONS", "RUNS", "INPUT TOKENS", "OUTPUT TOKENS", "COST USD"],
      [...report.groups.map((g) => row(g.day ?? g.agent ?? "", g)), row("total", report.totals)]
    ))
  })).pipe(
    Command.withDescription(
      "What apps used: turns (by when they ended), sessions (by when they were created), /run jobs, tokens and cost"
    )
  )

// ---- clawdforge -----------------------------------------------------------------------

const admin = <Name extends string, R, E, A>(command: Command.Command<Name, R, E, A>) =>
  Command.provide(command, AdminCommandsLive)

const clawdforge = Command.make("clawdforge").pipe(
  Command.withDescription(
    "Self-hosted HTTP gateway for coding agents. Every command reads the CLAWDFORGE_* variables; " +
      "`apps` and `sessions` work on the ledger (CLAWDFORGE_DB) without starting the server."
  ),
  Command.withSubcommands([serve, admin(apps), admin(sessions), admin(usage)])
)

const cli = Command.run(clawdforge, { name: "clawdforge", version })

cli(process.argv).pipe(
  Effect.catchTags({
    AppExists: (e) => fail(e.message),
    AppNotFound: (e) => fail(e.message),
    WebhookUrlRefused: (e) => fail(e.message),
    InvalidAppEnv: (e) => fail(e.message),
    BadRequest: (e) => fail(e.message),
    SecretsUnavailable: (e) => fail(e.message),
    CliFailure: (e) => fail(e.message)
  }),
  // @effect/cli has printed the usage error already.
  Effect.catchIf(ValidationError.isValidationError, () => Effect.sync(() => process.exitCode = 1)),
  reportConfigError,
  Effect.provide(NodeContext.layer),
  // `serve` installs its own logger (JSON by default).
  NodeRuntime.runMain({ disablePrettyLogger: true })
)

function fail(message: string) {
  return Effect.sync(() => {
    console.error(`clawdforge: ${message}`)
    process.exitCode = 1
  })
}
