import { SqlClient } from "@effect/sql"
import { Clock, Effect, Option, Redacted, Schema } from "effect"
import { type AdminSession, AppExists, AppNotFound } from "../../domain/Admin.js"
import { SessionNotFound } from "../../domain/Errors.js"
import { AppName, SessionId } from "../../domain/Ids.js"
import type { PermissionAnswer } from "../../domain/Permission.js"
import type { Session, SessionStatus } from "../../domain/Session.js"
import type { AppLimitsSpec, UsageTotals } from "../../domain/Tenancy.js"
import { AppConfig } from "../config/AppConfig.js"
import { AppTokens } from "../ledger/AppTokens.js"
import { Ledger } from "../ledger/Ledger.js"
import { Sandbox } from "../sandbox/Sandbox.js"
import { Sessions } from "../sessions/Sessions.js"
import { AppLimits } from "../tenancy/AppLimits.js"
import { Usage } from "../tenancy/Usage.js"

/** How many minutes the overview's activity covers. */
const overviewMinutes = 30

interface AuditRow {
  readonly id: unknown
  readonly session_id: string
  readonly app_name: string | null
  readonly at: unknown
  readonly event: string
  readonly detail: string | null
}

// PostgreSQL reads BIGINT and SUM() as strings.
const num = (value: unknown) => value === null || value === undefined ? 0 : Number(value)

const auditEvent = (row: AuditRow) => ({
  id: num(row.id),
  session_id: row.session_id,
  app_name: row.app_name,
  at: num(row.at),
  event: row.event,
  detail: row.detail === null ? null : JSON.parse(row.detail) as unknown
})

/**
 * What the admin API (`/admin/*`) and the console read and change: every app's sessions, apps,
 * limits, usage and audit trail. The app-scoped services do the work; this adds the reads across
 * apps that no app may make. Built over the gateway's services (no layer of its own below them).
 *
 * A session's own operations (a turn, its stream, an answer, a close) are the app's, called as
 * the session's app: they go where the app's would (in a cluster, to the node that owns it).
 */
export class Admin extends Effect.Service<Admin>()("clawdforge/Admin", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const config = yield* AppConfig
    const ledger = yield* Ledger
    const sessions = yield* Sessions
    const tokens = yield* AppTokens
    const limits = yield* AppLimits
    const usage = yield* Usage
    const sandbox = yield* Sandbox
    const envApps = new Set(config.appTokens.map(([name]) => name))

    /** Any app's session, or 404. */
    const sessionById = (id: string) =>
      (Schema.is(SessionId)(id) ? ledger.findSession(id) : Effect.succeed(Option.none())).pipe(
        Effect.flatMap(Option.match({
          onNone: () => Effect.fail(new SessionNotFound({ message: `No session ${id.slice(0, 64)}` })),
          onSome: Effect.succeed
        }))
      )
    /** Runs the app-scoped `f` as the session's own app. */
    const asOwner = <A, E, R>(id: string, f: (app: AppName) => Effect.Effect<A, E, R>) =>
      Effect.flatMap(sessionById(id), (session) => f(session.app_name))

    /** A session as an operator sees it: whether its agent runs, how many requests wait in it. */
    const annotate = Effect.fnUntraced(function*(list: ReadonlyArray<Session>) {
      const live = yield* sessions.admin.liveSessions
      const pending = yield* sessions.admin.pendingPermissions
      return list.map((session): AdminSession => ({
        ...session,
        live: live.has(session.session_id),
        pending_permissions: pending.filter((request) => request.session_id === session.session_id).length
      }))
    })

    const overview = Effect.fn("Admin.overview")(function*() {
      const now = Math.floor((yield* Clock.currentTimeMillis) / 1000)
      const minute = Math.floor(now / 60) * 60
      const from = minute - (overviewMinutes - 1) * 60
      const rows = yield* sql<{ m: unknown; n: unknown; cost: unknown }>`
        SELECT ended_at / 60 AS m, COUNT(*) AS n, SUM(cost_usd) AS cost FROM turns
        WHERE ended_at IS NOT NULL AND ended_at >= ${from} GROUP BY ended_at / 60`.pipe(Effect.orDie)
      const byMinute = new Map(rows.map((row) => [num(row.m) * 60, row]))
      const minutes = Array.from({ length: overviewMinutes }, (_, i) => {
        const at = from + i * 60
        const row = byMinute.get(at)
        return { at, turns: num(row?.n), cost_usd: num(row?.cost) }
      })
      const lastMinute = yield* sql<{ n: unknown }>`SELECT COUNT(*) AS n FROM turns WHERE ended_at > ${now - 60}`.pipe(
        Effect.orDie
      )
      const today = yield* usage.usage(undefined, { from: Math.floor(now / 86400) * 86400 })
      const live = yield* sessions.admin.liveSessions
      const byApp = new Map<AppName, number>()
      for (const app of live.values()) byApp.set(app, (byApp.get(app) ?? 0) + 1)
      const apps = yield* activeApps
      return {
        ok: true as const,
        at: now,
        pool: yield* sessions.admin.pool,
        live_by_app: [...byApp].sort(([a], [b]) => a.localeCompare(b)).map(([app, n]) => ({ app, live_sessions: n })),
        turns_last_minute: num(lastMinute[0]?.n),
        minutes,
        cost_today_usd: today.totals.cost_usd,
        turns_today: today.totals.turns,
        pending_permissions: (yield* sessions.admin.pendingPermissions).length,
        apps: apps.filter((app) => app.revoked_at === null).length,
        sandbox: sandbox.mode,
        limits: sandbox.limited
      }
    })

    /** The apps of the environment and of the ledger, by name: never a token. */
    const activeApps = Effect.gen(function*() {
      const stored = yield* tokens.list()
      const byName = new Map<string, { name: AppName; source: "environment" | "ledger"; created_at: number | null; revoked_at: number | null }>()
      for (const record of stored) {
        byName.set(record.name, { name: record.name, source: "ledger", created_at: record.created_at, revoked_at: record.revoked_at })
      }
      // An app in both answers to either token; the environment's is the one an operator cannot revoke here.
      for (const name of envApps) byName.set(name, { name: AppName.make(name), source: "environment", created_at: null, revoked_at: null })
      return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name))
    })

    const apps = Effect.fn("Admin.apps")(function*() {
      return yield* Effect.forEach(yield* activeApps, (app) =>
        Effect.map(limits.limitsOf(app.name), (report) => ({ ...app, limits: report.limits, use: report.use })))
    })

    const createApp = Effect.fn("Admin.createApp")(function*(name: AppName) {
      if (envApps.has(name)) {
        return yield* new AppExists({ message: `App ${name} is configured in CLAWDFORGE_APP_TOKENS` })
      }
      const created = yield* tokens.add(name).pipe(
        Effect.catchTag("AppExists", (error) => Effect.fail(new AppExists({ message: error.message })))
      )
      return { ok: true as const, name: created.name, token: Redacted.value(created.token), created_at: created.created_at }
    })

    const revokeApp = Effect.fn("Admin.revokeApp")(function*(name: AppName) {
      const { alreadyRevoked } = yield* tokens.revoke(name).pipe(
        Effect.catchTag("AppNotFound", (error) => Effect.fail(new AppNotFound({ message: error.message })))
      )
      return alreadyRevoked ? { ok: true as const, already_revoked: true as const } : { ok: true as const }
    })

    /** Replaces the app's limits in the ledger: those given are set, the others cleared. */
    const setLimits = Effect.fn("Admin.setLimits")(function*(name: AppName, spec: AppLimitsSpec) {
      yield* limits.clear(name)
      const patch = {
        max_sessions: spec.max_sessions ?? undefined,
        turns_per_minute: spec.turns_per_minute ?? undefined,
        daily_cost_usd: spec.daily_cost_usd ?? undefined,
        permission_modes: spec.permission_modes ?? undefined,
        network: spec.network ?? undefined,
        max_queued_turns: spec.max_queued_turns ?? undefined,
        max_streams: spec.max_streams ?? undefined,
        max_disk_mb: spec.max_disk_mb ?? undefined,
        max_stored_mb: spec.max_stored_mb ?? undefined,
        warm: spec.warm ?? undefined
      }
      if (Object.values(patch).some((value) => value !== undefined)) yield* limits.set(name, patch)
      const now = yield* limits.configured(name)
      return { ok: true as const, app: now.app, limits: now.limits, sources: now.sources }
    }, sql.withTransaction, Effect.catchTag("SqlError", Effect.die))

    /** Sessions of one app or of every app, newest first. */
    const listSessions = Effect.fn("Admin.listSessions")(
      function*(options: { readonly app?: AppName | undefined; readonly status?: SessionStatus | undefined; readonly limit?: number | undefined }) {
        const limit = options.limit ?? 100
        const names = options.app !== undefined
          ? [options.app]
          : (yield* sql<{ app_name: string }>`SELECT DISTINCT app_name FROM sessions`.pipe(Effect.orDie))
            .map((row) => AppName.make(row.app_name))
        // Each app's newest `limit`, merged: the newest `limit` of all are among them.
        const found = yield* Effect.forEach(names, (app) => ledger.listSessions(app, { status: options.status, limit }))
        const merged = found.flat().sort((a, b) => b.created_at - a.created_at).slice(0, limit)
        return yield* annotate(merged)
      }
    )

    const session = Effect.fn("Admin.session")(function*(id: string) {
      const found = yield* sessionById(id)
      const [annotated] = yield* annotate([found])
      const turns = yield* sessions.listTurns(found.app_name, id, { limit: 1000 })
      const events = yield* ledger.sessionEvents(id)
      // Asked of the session itself (in a cluster, of the node that runs it), not of an overview.
      const permissions = yield* sessions.listPermissions(found.app_name, id)
      return {
        ok: true as const,
        session: { ...annotated!, pending_permissions: permissions.length },
        turns,
        events: events.map((event) => ({ ...event, app_name: found.app_name })),
        permissions
      }
    })

    const usageByApp = Effect.fn("Admin.usageByApp")(
      function*(query: { readonly from?: number | undefined; readonly to?: number | undefined }) {
        const totals = yield* usage.usage(undefined, query)
        const rows = yield* sql<{ app_name: string }>`
          SELECT app_name FROM sessions UNION SELECT app_name FROM runs UNION SELECT app_name FROM usage_history`.pipe(
          Effect.orDie
        )
        const names = [...new Set([...rows.map((row) => row.app_name), ...(yield* activeApps).map((app) => app.name)])].sort()
        const apps = yield* Effect.forEach(names, (app) =>
          Effect.map(usage.usage(AppName.make(app), query), (report): { app: string } & UsageTotals => ({ app, ...report.totals })))
        return { ok: true as const, totals: totals.totals, apps }
      }
    )

    const audit = Effect.fn("Admin.audit")(
      function*(options: { readonly app?: AppName | undefined; readonly before?: number | undefined; readonly limit?: number | undefined }) {
        const where = sql.and([
          ...(options.app === undefined ? [] : [sql`s.app_name = ${options.app}`]),
          ...(options.before === undefined ? [] : [sql`e.id < ${options.before}`])
        ])
        const rows = yield* sql<AuditRow>`
          SELECT e.id AS id, e.session_id AS session_id, s.app_name AS app_name, e.at AS at, e.event AS event, e.detail AS detail
          FROM session_events e LEFT JOIN sessions s ON s.session_id = e.session_id
          WHERE ${where} ORDER BY e.id DESC LIMIT ${options.limit ?? 100}`.pipe(Effect.orDie)
        return rows.map(auditEvent)
      }
    )

    const pending = Effect.fn("Admin.pending")(function*() {
      return yield* sessions.admin.pendingPermissions
    })

    return {
      sessionById,
      getTurn: (id: string, turnIndex: number, page?: { readonly after?: number | undefined; readonly limit?: number | undefined }) =>
        asOwner(id, (app) => sessions.getTurn(app, id, turnIndex, page)),
      followTurn: (id: string, turnIndex: number) => asOwner(id, (app) => sessions.followTurn(app, id, turnIndex)),
      close: (id: string) => asOwner(id, (app) => sessions.close(app, id)),
      /** Answers a pending request as an operator: audited `by: "admin"`. */
      answer: (id: string, requestId: string, answer: PermissionAnswer) =>
        asOwner(id, (app) => sessions.answerPermission(app, id, requestId, answer, "admin")),
      overview,
      apps,
      createApp,
      revokeApp,
      setLimits,
      listSessions,
      session,
      usageByApp,
      audit,
      pending
    } as const
  })
}) {}
