import { Migrator } from "@effect/sql"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export const migrations = Migrator.fromRecord({
  "0001_ledger": Effect.gen(function*() {
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
  }),
  // Apps issued by the admin CLI: only the token's SHA-256 (hex) is kept.
  "0002_apps": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      CREATE TABLE apps (
        name TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
      )`
    yield* sql`CREATE UNIQUE INDEX apps_by_token_hash ON apps (token_hash)`
  }),
  // A turn is one statement: counting it on the session writes its audit event (same
  // transaction, by the trigger), from the turn's columns on the row.
  "0003_turn_trigger": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE sessions ADD COLUMN last_stop_reason TEXT`
    yield* sql`ALTER TABLE sessions ADD COLUMN last_turn_ms INTEGER`
    yield* sql`
      CREATE TRIGGER sessions_turn_event AFTER UPDATE OF turn_count ON sessions
      BEGIN
        INSERT INTO session_events (session_id, at, event, detail)
        VALUES (NEW.session_id, NEW.last_turn_at, 'turn', json_object(
          'turn_index', NEW.turn_count, 'stop_reason', NEW.last_stop_reason, 'duration_ms', NEW.last_turn_ms));
      END`
  })
})
