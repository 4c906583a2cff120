import { Effect, Layer } from "effect"
import { ClusterView } from "../services/admin/ClusterView.js"
import { ClusterNodes } from "./ClusterNodes.js"

/** Consecutive shard numbers as `a-b` ranges: 60 shards read as a few ranges. */
const ranges = (shards: ReadonlyArray<number>) => {
  const out: Array<string> = []
  const sorted = [...shards].sort((a, b) => a - b)
  for (let i = 0; i < sorted.length;) {
    let j = i
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++
    out.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`)
    i = j + 1
  }
  return out
}

/** `GET /cluster`'s data on a node: the nodes' heartbeats, as `ClusterNodes` reads them. */
export const ClusterViewLive = Layer.effect(
  ClusterView,
  Effect.map(ClusterNodes, (nodes) =>
    ClusterView.of({
      status: Effect.fn("ClusterView.status")(function*() {
        const live = yield* nodes.nodes
        const owners: Record<string, string> = {}
        for (const node of live) for (const shard of node.shards) owners[shard] = node.node
        return {
          ok: true as const,
          node: nodes.self,
          live_sessions: live.reduce((sum, node) => sum + node.live, 0),
          capacity: live.reduce((sum, node) => sum + node.capacity, 0),
          nodes: live.map((node) => ({
            node: node.node,
            live_sessions: node.live,
            capacity: node.capacity,
            shard_count: node.shards.length,
            shards: ranges(node.shards),
            last_seen_ms: node.seen_ms
          })),
          shard_owners: owners
        }
      })
    }))
)
