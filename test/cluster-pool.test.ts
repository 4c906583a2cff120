/**
 * The cluster's pool (the `postgres` project only): two nodes of two slots each hold four live
 * agents between them, never five, from the moment `GET /cluster` lists the second (while shards
 * still move to it) and round after round; and `GET /cluster`'s live counts are the agents
 * each node runs, within 3 s of a change.
 */
import { readFileSync } from "node:fs"
import { afterEach, describe, expect, it } from "vitest"
import { api } from "./support/GatewayProcess.js"
import { postgres } from "./support/Ledgers.js"
import { agentLogFile, isAlive, scriptedAgents, startedPids } from "./support/ScriptedAgent.js"
import { createDatabase } from "./support/Postgres.js"
import { type ClusterNode, clusterEnv, clusterStatus, startNode, stopCluster } from "./support/Cluster.js"
import { until } from "./support/Poll.js"

const server = postgres!
let nodes: Array<ClusterNode> = []
afterEach(async () => {
  await stopCluster(nodes)
  nodes = []
})

const rounds = 20
const slotsPerNode = 2

/** The parent of a process, or undefined once it is gone. */
const parentOf = (pid: number) => {
  try {
    // `pid (comm) state ppid ...`: comm may hold spaces, so read after its closing parenthesis.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
  } catch {
    return undefined
  }
}

/** The running agents (of the scripted agent's log) under each node's gateway process, by node. */
const agentsByNode = (log: string) => {
  const counts = new Map(nodes.map((node) => [node.gateway.child.pid!, 0]))
  for (const pid of startedPids(log).filter(isAlive)) {
    for (let ancestor = parentOf(pid), depth = 0; ancestor !== undefined && ancestor > 1 && depth < 8; ancestor = parentOf(ancestor), depth++) {
      if (counts.has(ancestor)) {
        counts.set(ancestor, counts.get(ancestor)! + 1)
        break
      }
    }
  }
  return Object.fromEntries(nodes.map((node) => [node.node, counts.get(node.gateway.child.pid!)!]).sort())
}

/** `GET /cluster`'s live sessions by node. */
const listedByNode = async (node: ClusterNode) =>
  Object.fromEntries((await clusterStatus(node)).nodes.map((n) => [n.node, n.live_sessions]).sort())

/** Waits (3 s at most) until `GET /cluster` through `node` counts, on every node, the agents it runs. */
const untilCountsTrue = async (node: ClusterNode, log: string, total: number) => {
  let listed: Record<string, number> = {}
  let running: Record<string, number> = {}
  const changedAt = Date.now()
  await until("GET /cluster's live counts to match the running agents", async () => {
    listed = await listedByNode(node)
    running = agentsByNode(log)
    return JSON.stringify(listed) === JSON.stringify(running) &&
      Object.values(running).reduce((sum, n) => sum + n, 0) === total
  }, 3_000).catch((error) => {
    throw new Error(`${error.message}: listed ${JSON.stringify(listed)}, running ${JSON.stringify(running)}`)
  })
  return Date.now() - changedAt
}

describe("the cluster's pool", () => {
  it(`two nodes of ${slotsPerNode} slots from the moment both are listed: capacity + 1 creates give capacity sessions and one 503, ${rounds} rounds in a row, live counts true`, async () => {
    const log = agentLogFile()
    const env = clusterEnv(await createDatabase(server), {
      CLAWDFORGE_AGENTS: scriptedAgents(log),
      CLAWDFORGE_MAX_LIVE_SESSIONS: String(slotsPerNode)
    })
    // The first node holds every shard before the second starts: the first round begins as soon as
    // the second is listed, while the shards it takes are still moving to it.
    nodes = [await startNode(env)]
    await until("the first node holding every shard", async () =>
      (await clusterStatus(nodes[0]!).catch(() => undefined))?.nodes[0]?.shard_count === 60, 30_000)
    nodes.push(await startNode(env))
    let listed: Awaited<ReturnType<typeof clusterStatus>> | undefined
    await until("both nodes listed", async () => (listed = await clusterStatus(nodes[0]!).catch(() => undefined))?.nodes.length === 2, 30_000)
    const shardsWhenListed = listed!.nodes.map((n) => n.shard_count)
    const capacity = slotsPerNode * nodes.length
    const lags: Array<number> = []
    for (let round = 1; round <= rounds; round++) {
      // Odd rounds one create after the other through the first node, even rounds all at once through both.
      const create = (i: number) => api(nodes[round % 2 === 1 ? 0 : i % 2]!.gateway, "POST", "/sessions", { agent: "scripted" })
      const replies = round % 2 === 1
        ? await Array.from({ length: capacity + 1 }).reduce<Promise<Array<Awaited<ReturnType<typeof create>>>>>(
          async (done, _, i) => [...await done, await create(i)],
          Promise.resolve([])
        )
        : await Promise.all(Array.from({ length: capacity + 1 }, (_, i) => create(i)))
      const summary = `round ${round}: ${JSON.stringify(replies.map((r) => [r.status, r.body.error ?? r.body.session_id]))}`
      const created = replies.filter((r) => r.status === 200)
      expect(created, summary).toHaveLength(capacity)
      const refused = replies.filter((r) => r.status !== 200)
      expect(refused, summary).toHaveLength(1)
      expect(refused[0], summary).toMatchObject({ status: 503, body: { error: "pool_full", capacity } })
      lags.push(await untilCountsTrue(nodes[round % 2]!, log, capacity))
      for (const [i, reply] of created.entries()) {
        const closed = await api(nodes[i % 2]!.gateway, "DELETE", `/sessions/${reply.body.session_id}`)
        expect(closed.status, summary).toBe(200)
      }
    }
    lags.push(await untilCountsTrue(nodes[0]!, log, 0))
    console.log(`pool rounds (shards per node when both were listed: ${shardsWhenListed.join(", ")}): ${rounds} in a row exact; GET /cluster's counts true after ${lags.join(", ")} ms`)
  }, 120_000)
})
