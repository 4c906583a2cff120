/**
 * `clawdforge`: the gateway (`serve`) and its admin commands. The admin commands work on the
 * SQLite ledger named by `CLAWDFORGE_DB` and never start the HTTP server or an agent.
 */
import { Args, Command, Options, ValidationError } from "@effect/cli"
import { SqlClient } from "@effect/sql"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Console, Data, Effect, Layer, Option, Order, Array as Arr, Redacted } from "effect"
import { AppName, SessionId } from "./domain/Ids.js"
import type { Session } from "./domain/Session.js"
import { AppConfig } from "./services/config/AppConfig.js"
import { AppTokens } from "./services/ledger/AppTokens.js"
import { Webhooks } from "./services/tenancy/Webhooks.js"
import { DatabaseLive } from "./services/ledger/Database.js"
import { reportConfigError, serveGateway } from "./Gateway.js"
import { Ledger, nowSeconds } from "./services/ledger/Ledger.js"
import { version } from "./version.js"


/** A refusal the admin caused (unknown session, ...): one line on stderr, exit code 1. */
class CliFailure extends Data.TaggedError("CliFailure")<{ readonly message: string }> {}

/** The ledger alone, migrated: what the admin commands need. */
const AdminLive = Layer.mergeAll(
  Ledger.DefaultWithoutDependencies,
  AppTokens.DefaultWithoutDependencies,
  Webhooks.DefaultWithoutDependencies
).pipe(
  Layer.provideMerge(DatabaseLive),
  Layer.merge(AppConfig.Default)
)

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
    const { alreadyRevoked } = yield* (yield* AppTokens).revoke(name)
    yield* Console.log(alreadyRevoked ? `App ${name} was already revoked` : `Revoked app ${name}`)
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
  })).pipe(Command.withDescription("Show an app's webhook URL (never its secret)"))

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

const apps = Command.make("apps").pipe(
  Command.withDescription("Manage the apps (bearer tokens) kept in the ledger, and their webhooks"),
  Command.withSubcommands([appsAdd, appsList, appsRevoke, appsWebhook])
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

// ---- clawdforge -----------------------------------------------------------------------

const admin = <Name extends string, R, E, A>(command: Command.Command<Name, R, E, A>) =>
  Command.provide(command, AdminLive)

const clawdforge = Command.make("clawdforge").pipe(
  Command.withDescription(
    "Self-hosted HTTP gateway for coding agents. Every command reads the CLAWDFORGE_* variables; " +
      "`apps` and `sessions` work on the ledger (CLAWDFORGE_DB) without starting the server."
  ),
  Command.withSubcommands([serve, admin(apps), admin(sessions)])
)

const cli = Command.run(clawdforge, { name: "clawdforge", version })

cli(process.argv).pipe(
  Effect.catchTags({
    AppExists: (e) => fail(e.message),
    AppNotFound: (e) => fail(e.message),
    InvalidWebhookUrl: (e) => fail(e.message),
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
