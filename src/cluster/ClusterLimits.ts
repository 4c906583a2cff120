import { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import type { AppName, SessionId } from "../domain/Ids.js"
import { LimitCounters } from "../services/tenancy/LimitCounters.js"
import { Usage } from "../services/tenancy/Usage.js"
import { NodeSettings, NodeSettingsLive } from "./ClusterConfig.js"
import { staleAfterMs } from "./ClusterNodes.js"

const windowMs = 60_000
const dayMs = 86_400_000

// The first key of the two-key advisory locks that make an app's check-and-take atomic across
// the nodes (the second is the app's name, hashed); the one-key space holds the migration lock.
const appLockSpace = 0x636c_64

/** Seconds until a window whose oldest turn started at `oldestMs` loses it (0 when it has none). */
const resetSecondsOf = (oldestMs: number | undefined, nowMs: number) =>
  oldestMs === undefined ? 0 : Math.max(1, Math.ceil((oldestMs + windowMs - nowMs) / 1000))

/**
 * The limit counters of a cluster, in the shared PostgreSQL database (tables of migration 0012):
 * each node's live sessions by app (one row per session, on the node that runs its agent), and
 * the starts of the turns of apps that have a `turns_per_minute`; the day's cost is the shared
 * ledger's. A check and its take are one transaction that holds the app's advisory lock, so racing
 * creates and turns on different nodes cannot overshoot. The sessions of a node that stops
 * heartbeating (it died) stop counting with its heartbeat.
 */
export const ClusterLimitsLive = Layer.effect(
  LimitCounters,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const usage = yield* Usage
    const settings = yield* NodeSettings
    const self = `${settings.host}:${settings.port}`

    // What this node held before a restart is not held any more.
    yield* sql`DELETE FROM clawdforge_cluster_app_sessions WHERE node = ${self}`.pipe(Effect.orDie)

    const lockApp = (app: AppName) => sql`SELECT pg_advisory_xact_lock(${sql.literal(String(appLockSpace))}, hashtext(${app}))`

    /** The app's sessions held by nodes alive now (this one, or one with a recent heartbeat), but `except`. */
    const heldBy = (app: AppName, except: string) =>
      Effect.map(
        sql<{ n: number }>`SELECT count(*) AS n FROM clawdforge_cluster_app_sessions
          WHERE app_name = ${app} AND session_id <> ${except} AND (node = ${self} OR node IN (
            SELECT node FROM clawdforge_cluster_nodes WHERE seen_ms > ${Date.now() - staleAfterMs}))`,
        (rows) => Number(rows[0]?.n ?? 0)
      )

    const holdSession = (app: AppName, session: SessionId, max: number | null) =>
      Effect.acquireRelease(
        Effect.gen(function*() {
          yield* lockApp(app)
          const held = yield* heldBy(app, session)
          if (max !== null && held >= max) return held
          // A session that moved here from a node that died or gave up its shard is held here now.
          yield* sql`INSERT INTO clawdforge_cluster_app_sessions (session_id, app_name, node)
            VALUES (${session}, ${app}, ${self})
            ON CONFLICT (session_id) DO UPDATE SET node = EXCLUDED.node`
          return undefined
        }).pipe(sql.withTransaction, Effect.orDie),
        (refused) =>
          refused !== undefined ? Effect.void : sql`DELETE FROM clawdforge_cluster_app_sessions
            WHERE session_id = ${session} AND node = ${self}`.pipe(Effect.ignore)
      )

    const liveSessions = (app: AppName) => heldBy(app, "").pipe(Effect.orDie)

    const windowOf = (app: AppName, nowMs: number) =>
      Effect.map(
        sql<{ n: number; oldest: number | null }>`SELECT count(*) AS n, min(at_ms) AS oldest
          FROM clawdforge_cluster_turn_starts WHERE app_name = ${app} AND at_ms > ${nowMs - windowMs}`,
        (rows) => ({ count: Number(rows[0]?.n ?? 0), oldestMs: rows[0]?.oldest == null ? undefined : Number(rows[0].oldest) })
      )

    const takeTurnUnder = (app: AppName, limit: number, nowMs: number) =>
      Effect.gen(function*() {
        yield* lockApp(app)
        yield* sql`DELETE FROM clawdforge_cluster_turn_starts WHERE app_name = ${app} AND at_ms <= ${nowMs - windowMs}`
        const window = yield* windowOf(app, nowMs)
        if (window.count >= limit) return { ...window, taken: false }
        yield* sql`INSERT INTO clawdforge_cluster_turn_starts (app_name, at_ms) VALUES (${app}, ${nowMs})`
        return { ...window, taken: true }
      }).pipe(sql.withTransaction, Effect.orDie)

    // An app without a `turns_per_minute` has no starts kept: its turns of the last minute are read
    // from the ledger (to the second), for `GET /limits` only.
    const ledgerWindow = (app: AppName, nowMs: number) =>
      Effect.map(
        sql<{ n: number; oldest: number | null }>`SELECT count(*) AS n, min(t.accepted_at) AS oldest
          FROM turns t JOIN sessions s ON s.session_id = t.session_id
          WHERE s.app_name = ${app} AND t.accepted_at > ${Math.floor((nowMs - windowMs) / 1000)}`,
        (rows) => ({
          count: Number(rows[0]?.n ?? 0),
          oldestMs: rows[0]?.oldest == null ? undefined : Number(rows[0].oldest) * 1000
        })
      )

    return LimitCounters.of({
      holdSession,
      liveSessions,
      takeTurn: (app, limit, nowMs, decide) =>
        limit === null ? decide({ count: 0, resetSeconds: 0 }, true) : Effect.flatMap(
          takeTurnUnder(app, limit, nowMs),
          // A turn taken is the window's oldest when it was empty.
          (window) =>
            decide({
              count: window.count,
              resetSeconds: resetSecondsOf(window.taken ? window.oldestMs ?? nowMs : window.oldestMs, nowMs)
            }, window.taken)
        ),
      turnWindow: (app, nowMs, limited, decide) =>
        Effect.flatMap(
          (limited ? windowOf(app, nowMs) : ledgerWindow(app, nowMs)).pipe(Effect.orDie),
          (window) => decide({ count: window.count, resetSeconds: resetSecondsOf(window.oldestMs, nowMs) })
        ),
      // Every node's turns end in the shared ledger: the day's cost is read there.
      costToday: (app, nowMs, decide) =>
        Effect.flatMap(
          usage.costByApp(Math.floor(nowMs / dayMs) * 86400, app),
          (costs) => decide(costs.get(app) ?? 0)
        ),
      addCost: (_app, _costUsd, _nowMs, then) => then
    })
  })
).pipe(Layer.provide([NodeSettingsLive, Usage.DefaultWithoutDependencies]))
