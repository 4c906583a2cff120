import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { columnTypes } from "../SqlDialect.js"

// A turn is one statement: counting it on the session writes its audit event (same
// transaction, by the trigger), from the turn's columns on the row.
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { integer } = columnTypes(sql)
  yield* sql`ALTER TABLE sessions ADD COLUMN last_stop_reason TEXT`
  yield* sql`ALTER TABLE sessions ADD COLUMN last_turn_ms ${integer}`
  // 0004 replaces this trigger, and no PostgreSQL ledger predates 0004: SQLite's alone.
  yield* sql.onDialectOrElse({
    pg: () => Effect.void,
    orElse: () =>
      sql`
        CREATE TRIGGER sessions_turn_event AFTER UPDATE OF turn_count ON sessions
        BEGIN
          INSERT INTO session_events (session_id, at, event, detail)
          VALUES (NEW.session_id, NEW.last_turn_at, 'turn', json_object(
            'turn_index', NEW.turn_count, 'stop_reason', NEW.last_stop_reason, 'duration_ms', NEW.last_turn_ms));
        END`
  })
})
