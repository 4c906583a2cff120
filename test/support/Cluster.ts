/**
 * Gateway clusters for the tests and the bench: real gateway processes (`dist/app/main.js`) on
 * loopback, each a node (`CLAWDFORGE_CLUSTER=true`) with its own runner port, over one PostgreSQL
 * database and one workspace root they share.
 */
import { join } from "node:path"
import { freePort, type GatewayProcess, startGateway } from "./GatewayProcess.js"
import { tempDir } from "./TempDirs.js"

export const adminToken = "cluster-admin-token-0123456789"
/** What the nodes prove to each other on their peer ports (`CLAWDFORGE_CLUSTER_SECRET`, 32 characters or more). */
export const clusterSecret = "cluster-secret-0123456789abcdefghij"

export interface ClusterNode {
  readonly gateway: GatewayProcess
  /** `host:port` of its runner: how `GET /cluster` names it. */
  readonly node: string
}

/** The environment every node of one cluster shares. */
export const clusterEnv = (db: string, env: Record<string, string> = {}) => ({
  CLAWDFORGE_DB: db,
  CLAWDFORGE_CLUSTER: "true",
  CLAWDFORGE_CLUSTER_SECRET: clusterSecret,
  CLAWDFORGE_ADMIN_TOKEN: adminToken,
  CLAWDFORGE_WORKSPACE_ROOT: join(tempDir("clawdforge-cluster-"), "workspaces"),
  // The scripted agent's log and pids must be the host's: the sandbox has tests of its own.
  CLAWDFORGE_SANDBOX: "off",
  CLAWDFORGE_LOG_LEVEL: "warning",
  ...env
})

/**
 * Starts one node of the cluster whose shared environment is `env`. Its two ports are free when
 * chosen, not reserved: a node that lost one to another process (nodes start together) is
 * started again on others.
 */
export const startNode = async (env: Record<string, string>, own: Record<string, string> = {}): Promise<ClusterNode> => {
  for (let attempt = 1;; attempt++) {
    const port = await freePort()
    try {
      const gateway = await startGateway({
        ...env,
        CLAWDFORGE_NODE_HOST: "127.0.0.1",
        CLAWDFORGE_NODE_PORT: String(port),
        ...own
      })
      return { gateway, node: `127.0.0.1:${port}` }
    } catch (error) {
      if (attempt >= 3 || !String(error).includes("EADDRINUSE")) throw error
    }
  }
}

/** `n` nodes started together (on an empty database, they race to migrate and register). */
export const startCluster = (env: Record<string, string>, n: number, own: Record<string, string> = {}) =>
  Promise.all(Array.from({ length: n }, () => startNode(env, own)))

/** Every node SIGKILLed (the test's own processes, by pid). */
export const stopCluster = (nodes: ReadonlyArray<ClusterNode | undefined>) =>
  Promise.all(nodes.map((node) => node?.gateway.stop("SIGKILL")))

export const clusterStatus = async (node: ClusterNode) => {
  const response = await fetch(`${node.gateway.url}/cluster`, { headers: { authorization: `Bearer ${adminToken}` } })
  return await response.json() as {
    nodes: Array<{ node: string; live_sessions: number; capacity: number; shard_count: number }>
    shard_owners: Record<string, string>
    live_sessions: number
    capacity: number
  }
}

/**
 * Waits until `GET /cluster` on `node` lists `count` nodes holding every shard between them, the
 * same way twice in a row over a few heartbeats (shards move while nodes join).
 */
export const untilFormed = async (node: ClusterNode, count: number, shards = 60, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs
  let previous: string | undefined
  for (;;) {
    const status = await clusterStatus(node).catch(() => undefined)
    const formed = status !== undefined && status.nodes.length === count &&
      Object.keys(status.shard_owners).length === shards && status.nodes.every((n) => n.shard_count > 0)
    const owners = formed ? JSON.stringify(status.shard_owners) : undefined
    if (owners !== undefined && owners === previous) return status!
    previous = owners
    if (Date.now() > deadline) throw new Error(`the cluster did not form: ${JSON.stringify(status)}`)
    await new Promise((r) => setTimeout(r, formed ? 1_500 : 200))
  }
}
