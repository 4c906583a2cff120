import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { columnTypes } from "../SqlDialect.js"

// Workspaces. `app_limits.max_disk_mb`: what an app's workspaces and its HOME may hold on disk (MB),
// NULL where the ledger does not set it (CLAWDFORGE_APP_MAX_DISK_MB applies then).
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { integer } = columnTypes(sql)
  yield* sql`ALTER TABLE app_limits ADD COLUMN max_disk_mb ${integer}`
})
