import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { columnTypes } from "../SqlDialect.js"

// The tables of a cluster's limit counters (src/cluster/ClusterLimits.ts), created on both dialects
// like every table, unused by a single gateway. `IF NOT EXISTS`: clusters older than this migration
// created them at start-up.
// clawdforge_cluster_app_sessions: each live session's app and the node that runs its agent.
// clawdforge_cluster_turn_starts: the start (ms) of each turn of the last minute of apps with a turns_per_minute.
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { integer } = columnTypes(sql)
  yield* sql`CREATE TABLE IF NOT EXISTS clawdforge_cluster_app_sessions (
    session_id TEXT PRIMARY KEY,
    app_name TEXT NOT NULL,
    node TEXT NOT NULL
  )`
  yield* sql`CREATE INDEX IF NOT EXISTS clawdforge_cluster_app_sessions_app
    ON clawdforge_cluster_app_sessions (app_name)`
  yield* sql`CREATE TABLE IF NOT EXISTS clawdforge_cluster_turn_starts (
    app_name TEXT NOT NULL,
    at_ms ${integer} NOT NULL
  )`
  yield* sql`CREATE INDEX IF NOT EXISTS clawdforge_cluster_turn_starts_app
    ON clawdforge_cluster_turn_starts (app_name, at_ms)`
})
