import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { columnTypes, lastActivity } from "../SqlDialect.js"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { integer, serial } = columnTypes(sql)
  // SQLite's implicit rowid, a column on PostgreSQL: sessions created within a second list in order by it.
  const rowid = sql.onDialectOrElse({ pg: () => sql`, rowid BIGINT GENERATED ALWAYS AS IDENTITY`, orElse: () => sql`` })
  yield* sql`
    CREATE TABLE sessions (
      session_id TEXT PRIMARY KEY,
      app_name TEXT NOT NULL,
      agent TEXT NOT NULL,
      meta TEXT NOT NULL DEFAULT '{}',
      cwd TEXT NOT NULL,
      permission_mode TEXT NOT NULL,
      agent_session_id TEXT,
      created_at ${integer} NOT NULL,
      last_turn_at ${integer},
      closed_at ${integer},
      turn_count ${integer} NOT NULL DEFAULT 0
      ${rowid}
    )`
  yield* sql`CREATE INDEX sessions_by_app ON sessions (app_name, created_at)`
  // The sweeper's two scans: idle open sessions, and closed ones past the hard TTL.
  yield* sql`
    CREATE INDEX sessions_open_by_activity ON sessions (${lastActivity(sql)})
    WHERE closed_at IS NULL`
  yield* sql`CREATE INDEX sessions_closed ON sessions (closed_at) WHERE closed_at IS NOT NULL`
  yield* sql`
    CREATE TABLE session_events (
      id ${serial},
      session_id TEXT NOT NULL,
      at ${integer} NOT NULL,
      event TEXT NOT NULL,
      detail TEXT
    )`
  yield* sql`CREATE INDEX session_events_by_session ON session_events (session_id, id)`
})
