/**
 * What does a gateway cluster (`CLAWDFORGE_CLUSTER=true`, src/cluster) cost a turn? Three nodes on
 * this machine over one throwaway PostgreSQL database (test/support/Postgres.ts) and one workspace
 * root. Two questions:
 *
 * - routing: turn p50 on one session sent to the node that owns it, and sent to another node
 *   (which hands it to the owner over the runners' socket and relays the reply): the difference
 *   is the routing cost, in steady state (a session's first 10 s on its owner add one INSERT per
 *   routed turn);
 * - scale: turns/s of 10 sessions on three nodes, each turn sent to any node in turn (a load
 *   balancer without stickiness: two in three are routed), against a cluster of one node. The
 *   three nodes, the bench client, PostgreSQL and the agents share this machine's cores: the
 *   figure to watch is that routing does not collapse throughput, not that it triples.
 */
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import { createDatabase, startPostgres } from "../test/support/Postgres.js"
import { freePort } from "../test/support/freePort.js"
import { type Bench, ms, type Question, ratio } from "./support/bench.js"
import { type ClawdforgeGateway, closeSession, createSession, startClawdforge, stopGateway, turn } from "./support/gateways.js"
import { sleep, work } from "./support/processes.js"
import { timeSequential, turnsPerSecond } from "./support/timing.js"

const adminToken = "bench-cluster-admin-token-0123456789"
/** What the nodes prove to each other on their peer ports (at least 32 characters). */
const clusterSecret = "bench-cluster-secret-0123456789abcdef"
const sessions = 10

interface ClusterStatus {
  readonly nodes: ReadonlyArray<{ readonly node: string; readonly live_sessions: number; readonly shard_count: number }>
}

const status = async (gateway: ClawdforgeGateway) =>
  (await gateway.call("GET", "/cluster", undefined, adminToken)).body as ClusterStatus

/** `n` nodes over `db`, sharing one workspace root; waits until every one holds shards. */
const startNodes = async (db: string, n: number) => {
  const workspaces = join(work, `cluster-workspaces-${Date.now()}`)
  mkdirSync(workspaces, { recursive: true })
  const nodes: Array<ClawdforgeGateway & { readonly node: string }> = []
  try {
    // Ports free when chosen, not reserved: a node that lost one as the nodes start together is
    // started again on others.
    const startOne = async (attempt: number): Promise<void> => {
      const port = await freePort()
      try {
        const gateway = await startClawdforge({
          env: {
            CLAWDFORGE_DB: db,
            CLAWDFORGE_CLUSTER: "true",
            CLAWDFORGE_CLUSTER_SECRET: clusterSecret,
            CLAWDFORGE_NODE_HOST: "127.0.0.1",
            CLAWDFORGE_NODE_PORT: String(port),
            CLAWDFORGE_WORKSPACE_ROOT: workspaces,
            CLAWDFORGE_ADMIN_TOKEN: adminToken
          }
        })
        nodes.push({ ...gateway, node: `127.0.0.1:${port}` })
      } catch (error) {
        if (attempt >= 3 || !String(error).includes("EADDRINUSE")) throw error
        return startOne(attempt + 1)
      }
    }
    await Promise.all(Array.from({ length: n }, () => startOne(1)))
    const deadline = Date.now() + 30_000
    for (;;) {
      const { nodes: listed } = await status(nodes[0]!)
      if (listed.length === n && listed.every((node) => node.shard_count > 0)) return nodes
      if (Date.now() > deadline) throw new Error(`the cluster did not form: ${JSON.stringify(listed)}`)
      await sleep(200)
    }
  } catch (error) {
    await Promise.all(nodes.map(stopGateway))
    throw error
  }
}

/** The node that runs the session's agent: the one whose live count it raised (heartbeats are 1 s apart). */
const ownerOf = async (nodes: ReadonlyArray<ClawdforgeGateway & { readonly node: string }>) => {
  await sleep(1_500)
  const { nodes: listed } = await status(nodes[0]!)
  const owner = listed.find((node) => node.live_sessions > 0)!.node
  return nodes.find((node) => node.node === owner)!
}

/** Turns/s of `sessions` sessions, each turn sent to the next node in turn. */
const spreadRate = async (
  nodes: ReadonlyArray<ClawdforgeGateway>,
  window: { readonly warmupMs: number; readonly ms: number }
) => {
  const ids = await Promise.all(Array.from({ length: sessions }, (_, i) => createSession(nodes[i % nodes.length]!)))
  let next = 0
  try {
    return await turnsPerSecond(ids.map((id) => () => turn(nodes[next++ % nodes.length]!, id)), window, nodes[0]!.pid)
  } finally {
    await Promise.all(ids.map((id) => closeSession(nodes[0]!, id)))
  }
}

export const cluster: Question = {
  name: "cluster",
  run: async (bench: Bench) => {
    const { sizes } = bench
    const pg = await startPostgres()
    process.once("exit", pg.stop)
    try {
      bench.note("cluster: one node")
      const single = await startNodes(await createDatabase(pg.server), 1)
      const oneRate = await spreadRate(single, sizes.throughputWindow).finally(() => Promise.all(single.map(stopGateway)))
      bench.note("cluster: three nodes")
      const nodes = await startNodes(await createDatabase(pg.server), 3)
      try {
        const id = await createSession(nodes[0]!)
        const owner = await ownerOf(nodes)
        const other = nodes.find((node) => node !== owner)!
        bench.note("cluster: turn latency through the owner, then through another node")
        const viaOwner = await timeSequential(() => turn(owner, id), sizes.turnWarmup, sizes.turnsLogOff, owner.pid)
        // Steady state: for its first 10 s on the owner, a session's routed creates and turns are
        // also claimed in the database (at most once across a failover: src/cluster/Deliveries.ts).
        await turn(other, id)
        await sleep(10_500)
        const routed = await timeSequential(() => turn(other, id), sizes.turnWarmup, sizes.turnsLogOff, other.pid)
        await closeSession(nodes[0]!, id)
        bench.note(`cluster: throughput, ${sessions} sessions over three nodes`)
        const threeRate = await spreadRate(nodes, sizes.throughputWindow)
        const added = routed.p50 - viaOwner.p50
        return {
          results: { viaOwner, routed, routingMs: added, oneNode: oneRate, threeNodes: threeRate },
          rows: [
            {
              metric: "cluster turn p50 ms, via a non-owner",
              gateway: ms(routed.p50),
              direct: ms(viaOwner.p50),
              ratio: ratio(routed.p50, viaOwner.p50, "owner"),
              target: "< 2 ms added",
              pass: added < 2,
              note: `direct column: through the owner; routing adds ${ms(added)} ms (steady state); p99 ${
                ms(routed.p99)
              } vs ${ms(viaOwner.p99)}`
            },
            {
              metric: `cluster turns/s, ${sessions} sessions, 3 nodes`,
              gateway: String(threeRate.turnsPerSecond),
              direct: String(oneRate.turnsPerSecond),
              ratio: ratio(threeRate.turnsPerSecond, oneRate.turnsPerSecond, "one node"),
              note: "direct column: a one-node cluster; turns sent round-robin to the nodes (2 in 3 routed), " +
                "all on this machine's cores with PostgreSQL and the agents"
            }
          ]
        }
      } finally {
        await Promise.all(nodes.map(stopGateway))
      }
    } finally {
      process.removeListener("exit", pg.stop)
      pg.stop()
    }
  }
}
