/**
 * Revocation across a cluster (the `postgres` project only): an app whose sessions live on both
 * nodes is revoked through one node's admin API; within seconds every one of its sessions is
 * closed, its agents are gone on both nodes, their slots are free, and its token is refused.
 */
import { afterEach, describe, expect, it } from "vitest"
import { api } from "./support/GatewayProcess.js"
import { postgres } from "./support/Ledgers.js"
import { agentLogFile, isAlive, scriptedAgents, startedPids } from "./support/ScriptedAgent.js"
import { createDatabase } from "./support/Postgres.js"
import { adminToken, type ClusterNode, clusterEnv, clusterStatus, startCluster, stopCluster, untilFormed } from "./support/Cluster.js"
import { until } from "./support/Poll.js"

const server = postgres!
let nodes: Array<ClusterNode> = []
afterEach(async () => {
  await stopCluster(nodes)
  nodes = []
})

describe("revocation in a cluster", () => {
  it("ends the app's sessions on every node within 5 s: closed with audit revoked, agents stopped, slots freed, token refused", async () => {
    const log = agentLogFile()
    const env = clusterEnv(await createDatabase(server), {
      CLAWDFORGE_AGENTS: scriptedAgents(log),
      CLAWDFORGE_MAX_LIVE_SESSIONS: "6"
    })
    nodes = await startCluster(env, 2)
    await untilFormed(nodes[0]!, 2)
    const [first, second] = nodes as [ClusterNode, ClusterNode]
    const added = await api(first.gateway, "POST", "/admin/apps", { name: "app-r" }, adminToken)
    expect(added.status).toBe(201)
    const token = added.body.token as string
    // Sessions are placed by their id's shard: create until both nodes hold some of the app's.
    const sessions: Array<string> = []
    await until("the app's sessions on both nodes", async () => {
      const created = await api(sessions.length % 2 === 0 ? first.gateway : second.gateway, "POST", "/sessions", { agent: "scripted" }, token)
      expect(created.status, JSON.stringify(created.body)).toBe(200)
      sessions.push(created.body.session_id)
      const status = await clusterStatus(first)
      return status.nodes.length === 2 && status.nodes.every((n) => n.live_sessions > 0)
    }, 30_000)
    for (const id of sessions) expect((await api(first.gateway, "POST", `/sessions/${id}/turn`, { prompt: "hi" }, token)).status).toBe(200)
    const agents = startedPids(log)
    expect(agents.filter(isAlive).length).toBe(sessions.length)

    const started = Date.now()
    expect((await api(second.gateway, "DELETE", "/admin/apps/app-r", undefined, adminToken)).status).toBe(200)
    await until("every session of the app closed and its agents gone", async () => {
      const closed = await Promise.all(sessions.map(async (id) => (await api(first.gateway, "GET", `/admin/sessions/${id}`, undefined, adminToken)).body.closed_at !== null))
      return closed.every(Boolean) && agents.every((pid) => !isAlive(pid))
    }, 5_000)
    const took = Date.now() - started
    await until("both nodes' slots free", async () => (await clusterStatus(second)).live_sessions === 0, 3_000)
    for (const id of sessions) {
      const session = await api(second.gateway, "GET", `/admin/sessions/${id}`, undefined, adminToken)
      expect(session.body.events.map((e: any) => e.event), id).toContain("revoked")
    }
    // Each node refuses the token once it has seen the revocation (it checks every second).
    for (const node of nodes) {
      await until("the token refused", async () => (await api(node.gateway, "GET", "/sessions", undefined, token)).status === 401, 5_000)
    }
    console.log(`revoked ${sessions.length} sessions across 2 nodes in ${took} ms`)
  }, 90_000)
})
