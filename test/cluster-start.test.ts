/**
 * Cluster nodes started together on an empty database (the `postgres` project only): they race to
 * migrate the ledger and to create the cluster's tables, and all come up, every time.
 */
import { afterEach, describe, expect, it } from "vitest"
import { postgres } from "./support/Ledgers.js"
import { createDatabase } from "./support/Postgres.js"
import { type ClusterNode, clusterEnv, startCluster, stopCluster, untilFormed } from "./support/Cluster.js"

const server = postgres!
let nodes: Array<ClusterNode> = []
afterEach(async () => {
  await stopCluster(nodes)
  nodes = []
})

describe("cluster start-up", () => {
  it("three nodes started together on an empty database come up and form a cluster, five times over", async () => {
    for (let round = 0; round < 5; round++) {
      nodes = await startCluster(clusterEnv(await createDatabase(server)), 3)
      const status = await untilFormed(nodes[0]!, 3)
      expect(status.capacity).toBe(24)
      await stopCluster(nodes)
      nodes = []
    }
  }, 180_000)
})
