/**
 * The cluster closed to strangers (issue 22; the `postgres` project only): a node's peer port
 * (`CLAWDFORGE_NODE_PORT`) takes a message only from a peer that proves `CLAWDFORGE_CLUSTER_SECRET`.
 * The message sent here is a real one, made with the library's own runner client: a session's
 * `Create`, exactly as a node sends it to the session's owner.
 */
import * as EntityAddress from "@effect/cluster/EntityAddress"
import * as EntityId from "@effect/cluster/EntityId"
import * as EntityType from "@effect/cluster/EntityType"
import * as Runners from "@effect/cluster/Runners"
import * as ShardId from "@effect/cluster/ShardId"
import * as Snowflake from "@effect/cluster/Snowflake"
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as Headers from "@effect/platform/Headers"
import { Socket } from "@effect/platform/Socket"
import * as RpcClient from "@effect/rpc/RpcClient"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import { Effect, Exit, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import { afterEach, describe, expect, it } from "vitest"
import { connectPeer } from "../src/cluster/PeerSockets.js"
import { api, freePort, runGatewayToExit } from "./support/GatewayProcess.js"
import { postgres } from "./support/Ledgers.js"
import { agentLogFile, scriptedAgents, startedPids } from "./support/ScriptedAgent.js"
import { createDatabase, pgQuery } from "./support/Postgres.js"
import {
  type ClusterNode,
  clusterEnv,
  clusterSecret,
  clusterStatus,
  startCluster,
  stopCluster,
  untilFormed
} from "./support/Cluster.js"
import { appName } from "./support/TestGateway.js"

const server = postgres!
let nodes: Array<ClusterNode> = []
afterEach(async () => {
  await stopCluster(nodes)
  nodes = []
})

/** The shard of an entity id, as `Sharding.getShardId` computes it (its hash is internal to the library). */
const shardOf = (id: string, shards = 60) => {
  let h = 5381
  for (let i = id.length; i;) h = (h * 33) ^ id.charCodeAt(--i)
  h = (h & 0xbfffffff) | ((h >>> 1) & 0x40000000)
  return Math.abs(h % shards) + 1
}

/**
 * Sends the runners' `Effect` RPC carrying a `Create` of session `id` for `appName` over `socket`:
 * its reply, or the failure (a timeout when the port never answers).
 */
const sendCreate = (socket: Effect.Effect<Socket>, id: string) =>
  Effect.gen(function*() {
    const protocol = yield* RpcClient.makeProtocolSocket().pipe(
      Effect.provideService(Socket, yield* socket),
      Effect.provide(RpcSerialization.layerMsgPack)
    )
    const client = yield* Runners.makeRpcClient.pipe(Effect.provideService(RpcClient.Protocol, protocol))
    return yield* client.Effect({
      request: {
        _tag: "Request",
        requestId: Snowflake.Snowflake(BigInt(Date.now()) << 22n),
        address: new EntityAddress.EntityAddress({
          shardId: ShardId.make("default", shardOf(id)),
          entityType: EntityType.EntityType.make("Session"),
          entityId: EntityId.make(id)
        }),
        tag: "Create",
        payload: { app: appName, request: { agent: "scripted" }, delivery: randomBytes(8).toString("hex") },
        headers: Headers.empty
      },
      persisted: false
    })
  }).pipe(Effect.scoped, Effect.timeout("4 seconds"), Effect.runPromiseExit)

const peerOf = (node: ClusterNode) => {
  const [host, port] = node.node.split(":")
  return { host: host!, port: Number(port) }
}

const sessionRows = async (db: string, id: string) =>
  (await pgQuery(db, "SELECT session_id FROM sessions WHERE session_id = $1", [id])).length

describe("the cluster's peer port", () => {
  it("takes no message from a connection without the secret, and the same message from a peer with it", async () => {
    const log = agentLogFile()
    const db = await createDatabase(server)
    nodes = await startCluster(clusterEnv(db, { CLAWDFORGE_AGENTS: scriptedAgents(log) }), 1)
    await untilFormed(nodes[0]!, 1)
    const peer = peerOf(nodes[0]!)

    // A stranger: plain TCP speaking the runners' framing, as any local process could.
    const plainId = randomBytes(18).toString("base64url")
    const plain = await sendCreate(NodeSocket.makeNet({ ...peer, openTimeout: 1000 }).pipe(Effect.orDie), plainId)
    expect(Exit.isFailure(plain)).toBe(true)
    // A peer with another secret fails the handshake just the same.
    const wrongId = randomBytes(18).toString("base64url")
    const wrongSecret = Redacted.make("another-secret-0123456789abcdefghijkl")
    const wrong = await sendCreate(connectPeer({ ...peer, secret: wrongSecret }, { openTimeout: 1000 }), wrongId)
    expect(Exit.isFailure(wrong)).toBe(true)
    // Given time to have acted on it, had it taken it: nothing was made.
    await new Promise((r) => setTimeout(r, 1_000))
    expect(await sessionRows(db, plainId)).toBe(0)
    expect(await sessionRows(db, wrongId)).toBe(0)
    expect(startedPids(log)).toEqual([])

    // The same message from a peer that proves the secret creates the session, as a node's would.
    const trustedId = randomBytes(18).toString("base64url")
    const trusted = await sendCreate(connectPeer({ ...peer, secret: Redacted.make(clusterSecret) }, { openTimeout: 1000 }), trustedId)
    expect(Exit.isSuccess(trusted), String(trusted)).toBe(true)
    expect((trusted as Exit.Success<any, unknown>).value).toMatchObject({ exit: { _tag: "Success", value: { session_id: trustedId } } })
    expect(await sessionRows(db, trustedId)).toBe(1)
    expect(startedPids(log)).toHaveLength(1)
    // And the cluster works as before through its HTTP API.
    const turn = await api(nodes[0]!.gateway, "POST", `/sessions/${trustedId}/turn`, { prompt: "echo hello" })
    expect(turn.status, JSON.stringify(turn.body)).toBe(200)
    expect((await api(nodes[0]!.gateway, "DELETE", `/sessions/${trustedId}`)).status).toBe(200)
  }, 90_000)

  it("a node given another secret stops at start-up with one line, and the cluster goes on without it", async () => {
    const db = await createDatabase(server)
    const env = clusterEnv(db)
    nodes = await startCluster(env, 2)
    await untilFormed(nodes[0]!, 2)
    const { code, stderr } = await runGatewayToExit({
      ...env,
      CLAWDFORGE_CLUSTER_SECRET: "another-secret-0123456789abcdefghijkl",
      CLAWDFORGE_NODE_HOST: "127.0.0.1",
      CLAWDFORGE_NODE_PORT: String(await freePort()),
      CLAWDFORGE_PORT: String(await freePort())
    })
    expect(code).toBe(1)
    const lines = stderr.split("\n").filter((l) => l.trim().length > 0)
    expect(lines, stderr).toHaveLength(1)
    expect(lines[0]).toMatch(/^clawdforge: invalid configuration: CLAWDFORGE_CLUSTER_SECRET: the cluster's nodes \(.+\) refuse/)
    const status = await clusterStatus(nodes[0]!)
    expect(status.nodes.map((n) => n.node).sort()).toEqual(nodes.map((n) => n.node).sort())
  }, 90_000)

  it("start-up in cluster mode stops with one line naming CLAWDFORGE_CLUSTER_SECRET without one, or with a short one", async () => {
    const { CLAWDFORGE_CLUSTER_SECRET: _, ...withoutSecret } = clusterEnv(await createDatabase(server))
    for (const secret of [undefined, "", "only-31-characters-long-0123456"]) {
      const { code, stderr } = await runGatewayToExit({
        ...withoutSecret,
        ...(secret === undefined ? {} : { CLAWDFORGE_CLUSTER_SECRET: secret }),
        CLAWDFORGE_NODE_PORT: String(await freePort()),
        CLAWDFORGE_PORT: String(await freePort())
      })
      expect(code).toBe(1)
      const lines = stderr.split("\n").filter((l) => l.trim().length > 0)
      expect(lines, stderr).toHaveLength(1)
      expect(lines[0]).toContain("CLAWDFORGE_CLUSTER_SECRET")
      expect(lines[0]).toContain("32 characters")
    }
  }, 60_000)
})
