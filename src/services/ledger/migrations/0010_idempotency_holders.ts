import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { columnTypes } from "../SqlDialect.js"

// Who runs a key that has no reply yet (a gateway process's own random id) and when it last said
// it still does: a repeat in another process that finds it silent for long (the process died, a
// cluster node killed) releases the key instead of waiting for it until it expires.
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { integer } = columnTypes(sql)
  yield* sql`ALTER TABLE idempotency_keys ADD COLUMN holder TEXT`
  yield* sql`ALTER TABLE idempotency_keys ADD COLUMN seen_at ${integer}`
})
