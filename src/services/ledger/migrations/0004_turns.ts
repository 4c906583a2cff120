import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { columnTypes, createTrigger, jsonObject } from "../SqlDialect.js"

// Every turn, stored: a row when it is accepted (status `queued`, its index taken from the
// session's count in the same statement), finished by one UPDATE at its end that writes its
// status, timing, usage, error and all of its ACP messages (one JSON column, so that storing a
// turn of thousands of messages is still one row, and reading one is one primary-key lookup).
// `running` costs no write: the row stays `queued` until its end, and the session's live actor
// reports that it runs.
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { integer, real } = columnTypes(sql)
  yield* sql`
    CREATE TABLE turns (
      session_id TEXT NOT NULL,
      turn_index ${integer} NOT NULL,
      prompt TEXT NOT NULL,
      files TEXT,
      status TEXT NOT NULL,
      accepted_at ${integer} NOT NULL,
      started_at ${integer},
      ended_at ${integer},
      duration_ms ${integer},
      stop_reason TEXT,
      input_tokens ${integer},
      output_tokens ${integer},
      total_tokens ${integer},
      cost_usd ${real},
      error TEXT,
      error_message TEXT,
      events TEXT,
      PRIMARY KEY (session_id, turn_index)
    )`
  // What start-up looks for: turns that a gateway which died left queued or running.
  yield* sql`CREATE INDEX turns_unfinished ON turns (session_id) WHERE status IN ('queued', 'running')`
  const json = jsonObject(sql)
  // Accepting a turn counts it on the session (same statement, by this trigger).
  yield* createTrigger(sql, {
    name: "turns_accept",
    on: "AFTER INSERT ON turns",
    body: "UPDATE sessions SET turn_count = NEW.turn_index WHERE session_id = NEW.session_id;"
  })
  // The `turn` audit event (and the session's last_turn_at) now follow a turn's end, not its
  // count: a turn the agent answered (completed, or cancelled with its stop reason). The turn's
  // row has what 0003 kept on the session for it (last_stop_reason, last_turn_ms: no longer written).
  yield* sql.onDialectOrElse({ pg: () => Effect.void, orElse: () => sql`DROP TRIGGER sessions_turn_event` })
  yield* createTrigger(sql, {
    name: "turns_answered",
    on: "AFTER UPDATE OF status ON turns",
    when: "NEW.stop_reason IS NOT NULL AND OLD.stop_reason IS NULL",
    body: `UPDATE sessions SET last_turn_at = NEW.ended_at WHERE session_id = NEW.session_id;
      INSERT INTO session_events (session_id, at, event, detail)
      VALUES (NEW.session_id, NEW.ended_at, 'turn', ${json}(
        'turn_index', NEW.turn_index, 'stop_reason', NEW.stop_reason, 'duration_ms', NEW.duration_ms));`
  })
  // A turn whose outcome is unknown (the gateway stopped during it) is audited as such.
  yield* createTrigger(sql, {
    name: "turns_interrupted",
    on: "AFTER UPDATE OF status ON turns",
    when: "NEW.status = 'interrupted' AND OLD.status IN ('queued', 'running')",
    body: `INSERT INTO session_events (session_id, at, event, detail)
      VALUES (NEW.session_id, NEW.ended_at, 'turn_interrupted', ${json}(
        'turn_index', NEW.turn_index, 'accepted_at', NEW.accepted_at));`
  })
})
