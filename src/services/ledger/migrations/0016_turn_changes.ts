import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

// Workspaces: `turns.changes`, what a turn did to its session's workspace (a JSON array of
// `{path, status, size}`); NULL while the turn has not ended, or when it could not be seen.
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE turns ADD COLUMN changes TEXT`
})
