import * as RunnerHealth from "@effect/cluster/RunnerHealth"
import * as Runners from "@effect/cluster/Runners"
import * as ShardingConfig from "@effect/cluster/ShardingConfig"
import * as SocketRunner from "@effect/cluster/SocketRunner"
import * as SqlMessageStorage from "@effect/cluster/SqlMessageStorage"
import * as SqlRunnerStorage from "@effect/cluster/SqlRunnerStorage"
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as NodeSocketServer from "@effect/platform-node/NodeSocketServer"
import { Socket } from "@effect/platform/Socket"
import * as RpcClient from "@effect/rpc/RpcClient"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import { Effect, Layer } from "effect"
import { listeningOn } from "../services/config/AppConfig.js"
import { layerUnderMigrationLock } from "../services/ledger/Postgres.js"
import { NodeSettings, shardingConfig } from "./ClusterConfig.js"

/**
 * The runners' sockets to each other, with Nagle's algorithm off (as node:http has it): a turn's
 * message and its reply are small writes that must not wait for the other side's delayed ACK.
 */
const ClientProtocolLive = Layer.effect(
  Runners.RpcClientProtocol,
  Effect.gen(function*() {
    const serialization = yield* RpcSerialization.RpcSerialization
    return Effect.fnUntraced(function*(address) {
      const socket = yield* NodeSocket.makeNet({
        openTimeout: 1000,
        timeout: 5500,
        host: address.host,
        port: address.port,
        noDelay: true
      })
      return yield* RpcClient.makeProtocolSocket().pipe(
        Effect.provideService(Socket, socket),
        Effect.provideService(RpcSerialization.RpcSerialization, serialization)
      )
    }, Effect.orDie)
  })
)

/**
 * This node's runner: `NodeClusterSocket.layer` with SQL storage, put together here for two
 * differences. Its sockets have Nagle's algorithm off, and its `ShardingConfig` is ours alone
 * (`NodeClusterSocket.layer` reads it from the environment too, where `HOST` or `PORT` meant for
 * something else would change it). Runners and shard locks live in the shared PostgreSQL database,
 * through the ledger's connection pool; messages are volatile, so the message tables stay empty.
 */
export const RunnerLive = Layer.unwrapEffect(
  Effect.map(NodeSettings, (settings) =>
    SocketRunner.layer.pipe(
      Layer.provide([
        listeningOn(
          NodeSocketServer.layer({ host: settings.host, port: settings.port, noDelay: true }),
          "CLAWDFORGE_NODE_PORT",
          settings.host,
          settings.port
        ),
        ClientProtocolLive
      ]),
      Layer.provide(RunnerHealth.layerPing.pipe(Layer.provide(Runners.layerRpc), Layer.provide(ClientProtocolLive))),
      // Their tables are created at start-up, by nodes that may be starting together.
      Layer.provideMerge(layerUnderMigrationLock(Layer.orDie(SqlMessageStorage.layer))),
      Layer.provide(layerUnderMigrationLock(Layer.orDie(SqlRunnerStorage.layer))),
      Layer.provide(ShardingConfig.layer(shardingConfig(settings))),
      Layer.provide(RpcSerialization.layerMsgPack)
    ))
)
