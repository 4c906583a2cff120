import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { columnTypes } from "../SqlDialect.js"

// Fair share. `app_limits`: three more limits, NULL where the ledger does not set them.
// `turns`: `truncated` (1 when the stored turn keeps only the first CLAWDFORGE_TURN_MAX_STORED_MB of
// its messages), `stored_bytes` (what its prompt and messages take, counted against the app's
// `max_stored_mb`) and `event_count`. A turn whose messages pass one page (see `Ledger`) keeps them
// in `turn_event_pages` instead of `turns.events`, so that a page of a big turn is read without the
// rest of it.
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { integer } = columnTypes(sql)
  yield* sql`ALTER TABLE app_limits ADD COLUMN max_queued_turns ${integer}`
  yield* sql`ALTER TABLE app_limits ADD COLUMN max_streams ${integer}`
  yield* sql`ALTER TABLE app_limits ADD COLUMN max_stored_mb ${integer}`
  yield* sql`ALTER TABLE turns ADD COLUMN truncated ${integer} NOT NULL DEFAULT 0`
  yield* sql`ALTER TABLE turns ADD COLUMN stored_bytes ${integer}`
  yield* sql`ALTER TABLE turns ADD COLUMN event_count ${integer}`
  yield* sql`
    CREATE TABLE turn_event_pages (
      session_id TEXT NOT NULL,
      turn_index ${integer} NOT NULL,
      first_seq ${integer} NOT NULL,
      last_seq ${integer} NOT NULL,
      events TEXT NOT NULL,
      PRIMARY KEY (session_id, turn_index, first_seq)
    )`
})
