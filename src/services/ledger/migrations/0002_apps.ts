import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { columnTypes } from "../SqlDialect.js"

// Apps issued by the admin CLI: only the token's SHA-256 (hex) is kept.
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { integer } = columnTypes(sql)
  yield* sql`
    CREATE TABLE apps (
      name TEXT PRIMARY KEY,
      token_hash TEXT NOT NULL,
      created_at ${integer} NOT NULL,
      revoked_at ${integer}
    )`
  yield* sql`CREATE UNIQUE INDEX apps_by_token_hash ON apps (token_hash)`
})
