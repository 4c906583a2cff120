import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import { Schema } from "effect"
import { errorFields } from "./Errors.js"

// `GET /cluster`: the nodes of a cluster as their heartbeats in the shared database show them.

export class NotACluster extends Schema.TaggedError<NotACluster>()(
  "NotACluster",
  errorFields("not_a_cluster"),
  HttpApiSchema.annotations({
    status: 404,
    description: "This gateway is a single one, not a node of a cluster (CLAWDFORGE_CLUSTER is not set)"
  })
) {}

export const ClusterNode = Schema.Struct({
  node: Schema.String.annotations({
    description: "The node's peer address, `host:port` (CLAWDFORGE_NODE_HOST:CLAWDFORGE_NODE_PORT)"
  }),
  live_sessions: Schema.Int.annotations({ description: "Its live agents (pool slots taken)" }),
  capacity: Schema.Int.annotations({ description: "Its CLAWDFORGE_MAX_LIVE_SESSIONS" }),
  shard_count: Schema.Int.annotations({ description: "How many shards it holds" }),
  shards: Schema.Array(Schema.String).annotations({
    description: "The shards it holds, consecutive ones as ranges (`1-20`, `31`)"
  }),
  last_seen_ms: Schema.Int.annotations({ description: "Its last heartbeat, Unix milliseconds" })
}).annotations({ identifier: "ClusterNode", description: "One node of the cluster, as its last heartbeat left it" })

export const ClusterStatus = Schema.Struct({
  ok: Schema.Literal(true),
  node: Schema.String.annotations({ description: "The node that answered (its peer address)" }),
  live_sessions: Schema.Int.annotations({ description: "Live agents on every listed node" }),
  capacity: Schema.Int.annotations({ description: "The cluster's capacity: the sum of the listed nodes'" }),
  nodes: Schema.Array(ClusterNode).annotations({
    description: "The nodes with a heartbeat in the last 5 s, by address"
  }),
  shard_owners: Schema.Record({ key: Schema.String, value: Schema.String }).annotations({
    description: "Each held shard's number and the node that holds it"
  })
}).annotations({
  identifier: "ClusterStatus",
  description: "The cluster's nodes, their live sessions and capacity, and who owns each shard"
})
