import { SqlClient, SqlSchema } from "@effect/sql"
import { Clock, Effect, Option, Schema } from "effect"
import type { AppName, SessionId } from "../../domain/Ids.js"
import { Meta, type SessionStatus, Session } from "../../domain/Session.js"
import { DatabaseLive } from "./Database.js"

/** What the audit trail records; `detail` is free-form JSON. */
export type SessionEventKind =
  | "create"
  | "turn"
  | "turn_failed"
  | "close"
  | "sweep_close"
  | "agent_exit"
  | "agent_start"

export class SessionEvent extends Schema.Class<SessionEvent>("SessionEvent")({
  id: Schema.Int,
  session_id: Schema.String,
  at: Schema.Int,
  event: Schema.String,
  detail: Schema.NullOr(Schema.parseJson(Schema.Unknown))
}) {}

// Rows are decoded once, here; building the Session from them skips a second validation.
const SessionRow = Schema.Struct({ ...Session.fields, meta: Schema.parseJson(Meta) })

/** Integer Unix seconds from the Effect clock, so tests can drive time with `TestClock`. */
export const nowSeconds = Effect.map(Clock.currentTimeMillis, (ms) => Math.floor(ms / 1000))

export class Ledger extends Effect.Service<Ledger>()("clawdforge/Ledger", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const columns = sql`
      session_id, app_name, agent, meta, cwd, permission_mode, created_at, last_turn_at, closed_at, turn_count,
      CASE WHEN closed_at IS NULL THEN 'open' ELSE 'closed' END AS status`

    const appendEvent = (sessionId: string, event: SessionEventKind, at: number, detail?: unknown) =>
      sql`INSERT INTO session_events ${
        sql.insert({ session_id: sessionId, at, event, detail: detail === undefined ? null : JSON.stringify(detail) })
      }`

    const findById = SqlSchema.findOne({
      Request: Schema.String,
      Result: SessionRow,
      execute: (id) => sql`SELECT ${columns} FROM sessions WHERE session_id = ${id}`
    })

    const createSession = Effect.fn("Ledger.createSession")(
      function*(session: Session, agentSessionId: string | null) {
        yield* sql`INSERT INTO sessions ${
          sql.insert({
            session_id: session.session_id,
            app_name: session.app_name,
            agent: session.agent,
            meta: JSON.stringify(session.meta),
            cwd: session.cwd,
            permission_mode: session.permission_mode,
            agent_session_id: agentSessionId,
            created_at: session.created_at,
            turn_count: 0
          })
        }`
        yield* appendEvent(session.session_id, "create", session.created_at, { agent: session.agent })
      },
      sql.withTransaction,
      Effect.orDie
    )

    /** The session if it exists and belongs to `app`: another app's session does not exist. */
    const getSession = Effect.fn("Ledger.getSession")(
      function*(app: AppName, id: string) {
        const row = yield* findById(id)
        return Option.filter(row, (r) => r.app_name === app).pipe(Option.map((r) => new Session(r, true)))
      },
      Effect.orDie
    )

    /** Any app's session: for the runtime and the sweeper, never for a caller. */
    const findSession = Effect.fn("Ledger.findSession")(
      function*(id: string) {
        return Option.map(yield* findById(id), (r) => new Session(r, true))
      },
      Effect.orDie
    )

    const listSessions = Effect.fn("Ledger.listSessions")(
      function*(app: AppName, options: { readonly status?: SessionStatus | undefined; readonly limit: number }) {
        const status = options.status === undefined
          ? sql``
          : options.status === "open"
          ? sql`AND closed_at IS NULL`
          : sql`AND closed_at IS NOT NULL`
        const rows = yield* SqlSchema.findAll({
          Request: Schema.Void,
          Result: SessionRow,
          execute: () =>
            sql`SELECT ${columns} FROM sessions WHERE app_name = ${app} ${status}
                ORDER BY created_at DESC, rowid DESC LIMIT ${options.limit}`
        })(undefined)
        return rows.map((r) => new Session(r, true))
      },
      Effect.orDie
    )

    const agentSessionId = Effect.fn("Ledger.agentSessionId")(
      function*(id: SessionId) {
        const rows = yield* sql<{ agent_session_id: string | null }>`
          SELECT agent_session_id FROM sessions WHERE session_id = ${id}`
        return Option.fromNullable(rows[0]?.agent_session_id)
      },
      Effect.orDie
    )

    const setAgentSessionId = Effect.fn("Ledger.setAgentSessionId")(
      function*(id: SessionId, agentSessionId: string) {
        yield* sql`UPDATE sessions SET agent_session_id = ${agentSessionId} WHERE session_id = ${id}`
      },
      Effect.orDie
    )

    /**
     * Counts the turn of an open session and records it (its `turn` event is written by a
     * trigger, in the same statement); returns the turn's 1-based index, or none when the
     * session is closed (or gone) in the ledger.
     */
    // On every turn's path: no `Effect.fn` (see `spanWhenTraced`).
    const recordTurn = Effect.fnUntraced(
      function*(id: SessionId, turn: { readonly at: number; readonly stopReason: string; readonly durationMs: number }) {
        const rows = yield* sql<{ turn_count: number }>`
          UPDATE sessions SET turn_count = turn_count + 1, last_turn_at = ${turn.at},
            last_stop_reason = ${turn.stopReason}, last_turn_ms = ${turn.durationMs}
          WHERE session_id = ${id} AND closed_at IS NULL RETURNING turn_count`
        return Option.fromNullable(rows[0]?.turn_count)
      },
      Effect.orDie
    )

    const recordEvent = Effect.fn("Ledger.recordEvent")(
      function*(id: SessionId, event: SessionEventKind, detail?: unknown) {
        yield* appendEvent(id, event, yield* nowSeconds, detail)
      },
      Effect.orDie
    )

    /** Closes an open session (event `close`); false when it was closed already. */
    const closeSession = Effect.fn("Ledger.closeSession")(
      function*(id: SessionId, at: number) {
        const rows = yield* sql`UPDATE sessions SET closed_at = ${at}
          WHERE session_id = ${id} AND closed_at IS NULL RETURNING session_id`
        if (rows.length === 0) return false
        yield* appendEvent(id, "close", at)
        return true
      },
      sql.withTransaction,
      Effect.orDie
    )

    /**
     * Closes every open session whose last activity is older than `cutoff`, with a
     * `sweep_close` event each, in one transaction; returns their ids.
     */
    const closeIdleBefore = Effect.fn("Ledger.closeIdleBefore")(
      function*(cutoff: number, at: number) {
        const idle = sql`closed_at IS NULL AND max(created_at, coalesce(last_turn_at, 0)) < ${cutoff}`
        yield* sql`INSERT INTO session_events (session_id, at, event)
          SELECT session_id, ${at}, 'sweep_close' FROM sessions WHERE ${idle}`
        const rows = yield* sql<{ session_id: SessionId }>`
          UPDATE sessions SET closed_at = ${at} WHERE ${idle} RETURNING session_id`
        return rows.map((r) => r.session_id)
      },
      sql.withTransaction,
      Effect.orDie
    )

    /** Which of `ids` are closed (or gone) in the ledger: their actors should not be running. */
    const closedAmong = Effect.fn("Ledger.closedAmong")(
      function*(ids: ReadonlyArray<SessionId>) {
        if (ids.length === 0) return []
        const open = yield* sql<{ session_id: SessionId }>`
          SELECT session_id FROM sessions WHERE closed_at IS NULL AND session_id IN ${sql.in(ids)}`
        const stillOpen = new Set(open.map((r) => r.session_id))
        return ids.filter((id) => !stillOpen.has(id))
      },
      Effect.orDie
    )

    /** Deletes sessions closed before `cutoff`, with their events; returns what was deleted. */
    const deleteClosedBefore = Effect.fn("Ledger.deleteClosedBefore")(
      function*(cutoff: number) {
        yield* sql`DELETE FROM session_events WHERE session_id IN (
          SELECT session_id FROM sessions WHERE closed_at IS NOT NULL AND closed_at < ${cutoff})`
        const rows = yield* sql<{ session_id: SessionId; app_name: AppName; cwd: string }>`
          DELETE FROM sessions WHERE closed_at IS NOT NULL AND closed_at < ${cutoff}
          RETURNING session_id, app_name, cwd`
        return rows
      },
      sql.withTransaction,
      Effect.orDie
    )

    const sessionEvents = Effect.fn("Ledger.sessionEvents")(
      function*(id: string) {
        return yield* SqlSchema.findAll({
          Request: Schema.String,
          Result: SessionEvent,
          execute: (sid) => sql`SELECT id, session_id, at, event, detail FROM session_events
            WHERE session_id = ${sid} ORDER BY id`
        })(id)
      },
      Effect.orDie
    )

    return {
      createSession,
      getSession,
      findSession,
      listSessions,
      agentSessionId,
      setAgentSessionId,
      recordTurn,
      recordEvent,
      closeSession,
      closeIdleBefore,
      closedAmong,
      deleteClosedBefore,
      sessionEvents
    } as const
  }),
  dependencies: [DatabaseLive]
}) {}
