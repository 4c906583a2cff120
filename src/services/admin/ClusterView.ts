import { Context, type Effect } from "effect"
import type { ClusterStatus } from "../../domain/Cluster.js"

/**
 * The cluster as an operator sees it (`GET /cluster`). Only a node of a cluster has one: src/cluster
 * provides it from its nodes' heartbeats. A single gateway's context lacks it, so readers take it
 * as an option, and the cluster's code stays unloaded there.
 */
export class ClusterView extends Context.Tag("clawdforge/ClusterView")<ClusterView, {
  /** The answering node, the live nodes with their sessions, capacity and shards, and each shard's owner. */
  readonly status: () => Effect.Effect<typeof ClusterStatus.Type>
}>() {}
