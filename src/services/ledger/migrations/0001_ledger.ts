import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE sessions (
      session_id TEXT PRIMARY KEY,
      app_name TEXT NOT NULL,
      agent TEXT NOT NULL,
      meta TEXT NOT NULL DEFAULT '{}',
      cwd TEXT NOT NULL,
      permission_mode TEXT NOT NULL,
      agent_session_id TEXT,
      created_at INTEGER NOT NULL,
      last_turn_at INTEGER,
      closed_at INTEGER,
      turn_count INTEGER NOT NULL DEFAULT 0
    )`
  yield* sql`CREATE INDEX sessions_by_app ON sessions (app_name, created_at)`
  // The sweeper's two scans: idle open sessions, and closed ones past the hard TTL.
  yield* sql`
    CREATE INDEX sessions_open_by_activity ON sessions (max(created_at, coalesce(last_turn_at, 0)))
    WHERE closed_at IS NULL`
  yield* sql`CREATE INDEX sessions_closed ON sessions (closed_at) WHERE closed_at IS NOT NULL`
  yield* sql`
    CREATE TABLE session_events (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      session_id TEXT NOT NULL,
      at INTEGER NOT NULL,
      event TEXT NOT NULL,
      detail TEXT
    )`
  yield* sql`CREATE INDEX session_events_by_session ON session_events (session_id, id)`
})
