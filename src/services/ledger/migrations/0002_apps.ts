import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

// Apps issued by the admin CLI: only the token's SHA-256 (hex) is kept.
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE apps (
      name TEXT PRIMARY KEY,
      token_hash TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      revoked_at INTEGER
    )`
  yield* sql`CREATE UNIQUE INDEX apps_by_token_hash ON apps (token_hash)`
})
