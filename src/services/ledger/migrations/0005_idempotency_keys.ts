import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { columnTypes } from "../SqlDialect.js"

// Idempotency keys: one row per (app, key), inserted by the first request with the key before it
// runs (the insert is the lock: a repeat's insert finds the row), finished with the reply's status
// and body once it has one (`body` is the reply as it was sent). The key is kept as its SHA-256
// digest and the request as the digest of its method, path and canonical body: no key or token is
// stored here. `created_at` is what the sweeper expires them by.
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { integer } = columnTypes(sql)
  yield* sql`
    CREATE TABLE idempotency_keys (
      app_name TEXT NOT NULL,
      key_digest TEXT NOT NULL,
      request_digest TEXT NOT NULL,
      created_at ${integer} NOT NULL,
      status ${integer},
      body TEXT,
      PRIMARY KEY (app_name, key_digest)
    )`
  yield* sql`CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at)`
})
