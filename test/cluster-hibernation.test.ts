/**
 * Hibernation in a gateway cluster (the `postgres` project only): a session's `live` is its owner's
 * to say, so every node answers it alike (GET through the owner, lists from the nodes' rows); a
 * session hibernated on its node is resumed by a turn sent through another node.
 */
import { afterEach, describe, expect, it } from "vitest"
import { api } from "./support/GatewayProcess.js"
import { postgres } from "./support/Ledgers.js"
import { agentLogFile, isAlive, scriptedAgents, startedPids } from "./support/ScriptedAgent.js"
import { createDatabase } from "./support/Postgres.js"
import { type ClusterNode, clusterEnv, startCluster, stopCluster, untilFormed } from "./support/Cluster.js"
import { until } from "./support/Poll.js"

const server = postgres!
let nodes: Array<ClusterNode> = []
afterEach(async () => {
  await stopCluster(nodes)
  nodes = []
})

/** What `node` says of the session: from `GET /sessions/{id}` and from the list. */
const liveness = async (node: ClusterNode, id: string) => {
  const one = (await api(node.gateway, "GET", `/sessions/${id}`)).body
  const listed = (await api(node.gateway, "GET", "/sessions")).body.sessions.find((s: any) => s.session_id === id)
  return [one.live, listed.live]
}

describe("hibernation in a cluster", () => {
  it("every node tells whether a session's agent runs, and a turn through any node resumes it", async () => {
    const log = agentLogFile()
    const env = clusterEnv(await createDatabase(server), {
      CLAWDFORGE_AGENTS: scriptedAgents(log),
      CLAWDFORGE_AGENT_IDLE_SECS: "3"
    })
    nodes = await startCluster(env, 2)
    await untilFormed(nodes[0]!, 2)

    const created = await api(nodes[0]!.gateway, "POST", "/sessions", { agent: "scripted" })
    expect(created.status, JSON.stringify(created.body)).toBe(200)
    const id = created.body.session_id
    expect((await api(nodes[1]!.gateway, "POST", `/sessions/${id}/turn`, { prompt: "remember this" })).body.turn_index)
      .toBe(1)
    const [pid] = startedPids(log)

    // Idle past its 3 s: stopped on its node, and every node says so.
    await until("the agent stops", () => !isAlive(pid!), 10_000)
    for (const node of nodes) {
      await until("every node reads live: false", async () => (await liveness(node, id)).every((live) => live === false), 5_000)
    }

    // A turn through each node in turn: the session resumes on its owner, turn_index going on.
    for (const [i, node] of nodes.entries()) {
      const reply = await api(node.gateway, "POST", `/sessions/${id}/turn`, { prompt: "history" })
      expect(reply.status, JSON.stringify(reply.body)).toBe(200)
      expect(reply.body.turn_index).toBe(i + 2)
      expect(JSON.stringify(reply.body.events)).toContain("remember this")
      for (const other of nodes) {
        await until("every node reads live: true", async () => (await liveness(other, id)).every((live) => live === true), 5_000)
      }
      await until("it hibernates again", async () => (await liveness(node, id))[0] === false, 10_000)
    }
    expect(startedPids(log)).toHaveLength(3)
  }, 90_000)
})
