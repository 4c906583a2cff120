import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { columnTypes } from "../SqlDialect.js"

// Webhooks. `app_webhooks`: an app's webhook URL and its signing secret (kept as it is: it signs
// every delivery; it is printed once by the CLI and never read back out). `webhook_deliveries`:
// the outbox, one row per event, its body fixed when it is enqueued; `next_attempt_at` (ms) is when
// it is due, `delivered_at` set by a 2xx (it is never sent again), `given_up_at` after the last
// try. `webhook_attempts`: every attempt, its HTTP status or why there was none.
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { integer, serial } = columnTypes(sql)
  yield* sql`
    CREATE TABLE app_webhooks (
      app_name TEXT PRIMARY KEY,
      url TEXT NOT NULL,
      secret TEXT NOT NULL,
      created_at ${integer} NOT NULL
    )`
  yield* sql`
    CREATE TABLE webhook_deliveries (
      delivery_id ${serial},
      app_name TEXT NOT NULL,
      session_id TEXT NOT NULL,
      event TEXT NOT NULL,
      body TEXT NOT NULL,
      created_at ${integer} NOT NULL,
      attempts ${integer} NOT NULL DEFAULT 0,
      next_attempt_at ${integer} NOT NULL,
      delivered_at ${integer},
      given_up_at ${integer}
    )`
  yield* sql`CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND given_up_at IS NULL`
  yield* sql`
    CREATE TABLE webhook_attempts (
      delivery_id ${integer} NOT NULL,
      attempt ${integer} NOT NULL,
      at ${integer} NOT NULL,
      status ${integer},
      error TEXT,
      duration_ms ${integer} NOT NULL,
      PRIMARY KEY (delivery_id, attempt)
    )`
})
