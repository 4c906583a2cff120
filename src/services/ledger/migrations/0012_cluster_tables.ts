import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { columnTypes } from "../SqlDialect.js"

// The cluster's own tables (`@effect/cluster`'s storage tables stay the library's), created on both
// dialects like every table, unused by a single gateway. `IF NOT EXISTS`: clusters older than this
// migration created them at start-up.
// clawdforge_cluster_nodes: each node's last heartbeat (ClusterNodes).
// clawdforge_cluster_deliveries: the keys of messages taken at most once (Deliveries).
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { integer } = columnTypes(sql)
  yield* sql`CREATE TABLE IF NOT EXISTS clawdforge_cluster_nodes (
    node TEXT PRIMARY KEY,
    live INTEGER NOT NULL,
    capacity INTEGER NOT NULL,
    shards TEXT NOT NULL,
    sessions TEXT NOT NULL DEFAULT '[]',
    pending TEXT NOT NULL DEFAULT '[]',
    seen_ms ${integer} NOT NULL
  )`
  yield* sql`CREATE TABLE IF NOT EXISTS clawdforge_cluster_deliveries (
    delivery TEXT PRIMARY KEY,
    at_ms ${integer} NOT NULL
  )`
})
