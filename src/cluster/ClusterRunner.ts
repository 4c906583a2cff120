import * as RunnerHealth from "@effect/cluster/RunnerHealth"
import * as Runners from "@effect/cluster/Runners"
import * as ShardingConfig from "@effect/cluster/ShardingConfig"
import * as SocketRunner from "@effect/cluster/SocketRunner"
import * as SqlMessageStorage from "@effect/cluster/SqlMessageStorage"
import * as SqlRunnerStorage from "@effect/cluster/SqlRunnerStorage"
import { Socket } from "@effect/platform/Socket"
import * as RpcClient from "@effect/rpc/RpcClient"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import { Effect, Layer } from "effect"
import { listeningOn } from "../services/config/AppConfig.js"
import { layerUnderMigrationLock } from "../services/ledger/Postgres.js"
import { NodeSettings, shardingConfig } from "./ClusterConfig.js"
import { staleAfterMs } from "./ClusterNodes.js"
import { connectPeer, layerPeerServer, proveSecretToPeers } from "./PeerSockets.js"

/**
 * The runners' sockets to each other: TLS with the cluster's key (`PeerSockets`), with Nagle's
 * algorithm off (as node:http has it): a turn's message and its reply are small writes that must
 * not wait for the other side's delayed ACK.
 */
const clientProtocol = (settings: NodeSettings["Type"]) =>
  Layer.effect(
    Runners.RpcClientProtocol,
    Effect.gen(function*() {
      const serialization = yield* RpcSerialization.RpcSerialization
      return Effect.fnUntraced(function*(address) {
        const socket = yield* connectPeer(
          { host: address.host, port: address.port, secret: settings.secret },
          { openTimeout: 1000, timeout: 5500 }
        )
        return yield* RpcClient.makeProtocolSocket().pipe(
          Effect.provideService(Socket, socket),
          Effect.provideService(RpcSerialization.RpcSerialization, serialization)
        )
      }, Effect.orDie)
    })
  )

/**
 * This node's runner: `NodeClusterSocket.layer` with SQL storage, put together here for three
 * differences. Its sockets are TLS with the cluster's key, with Nagle's algorithm off; and its
 * `ShardingConfig` is ours alone (`NodeClusterSocket.layer` reads it from the environment too, where
 * `HOST` or `PORT` meant for something else would change it). A node whose secret the running nodes
 * refuse stops before it registers. Runners and shard locks live in the shared PostgreSQL database,
 * through the ledger's connection pool; messages are volatile, so the message tables stay empty.
 */
export const RunnerLive = Layer.unwrapEffect(
  Effect.gen(function*() {
    const settings = yield* NodeSettings
    yield* proveSecretToPeers(settings, staleAfterMs)
    const ClientProtocolLive = clientProtocol(settings)
    return SocketRunner.layer.pipe(
      Layer.provide([
        listeningOn(layerPeerServer(settings), "CLAWDFORGE_NODE_PORT", settings.host, settings.port),
        ClientProtocolLive
      ]),
      Layer.provide(RunnerHealth.layerPing.pipe(Layer.provide(Runners.layerRpc), Layer.provide(ClientProtocolLive))),
      // Their tables are created at start-up, by nodes that may be starting together.
      Layer.provideMerge(layerUnderMigrationLock(Layer.orDie(SqlMessageStorage.layer))),
      Layer.provide(layerUnderMigrationLock(Layer.orDie(SqlRunnerStorage.layer))),
      Layer.provide(ShardingConfig.layer(shardingConfig(settings))),
      Layer.provide(RpcSerialization.layerMsgPack)
    )
  })
)
