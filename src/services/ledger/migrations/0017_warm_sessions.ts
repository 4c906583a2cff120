import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

// The pool's warm starts. `app_limits.warm`: the app's `warm` limit as JSON (`{"agent": N}`),
// NULL where the ledger does not set it. Ready sessions themselves are never stored: a session's
// row is written when a create takes one.
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE app_limits ADD COLUMN warm TEXT`
})
