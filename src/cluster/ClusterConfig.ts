import * as RunnerAddress from "@effect/cluster/RunnerAddress"
import type * as ShardingConfig from "@effect/cluster/ShardingConfig"
import { Config, ConfigError, Context, Duration, Effect, Either, Layer, Option, Redacted } from "effect"
import { AppConfig } from "../services/config/AppConfig.js"

/**
 * This node's address for its peers (`CLAWDFORGE_NODE_HOST:CLAWDFORGE_NODE_PORT`), the shard count,
 * and the secret every node of the cluster proves to the others (`CLAWDFORGE_CLUSTER_SECRET`).
 */
export class NodeSettings extends Context.Tag("clawdforge/cluster/NodeSettings")<NodeSettings, {
  readonly host: string
  readonly port: number
  readonly shardsPerGroup: number
  readonly secret: Redacted.Redacted
}>() {}

/** The shortest `CLAWDFORGE_CLUSTER_SECRET` a node starts with. */
export const minimumSecretLength = 32

/** `CLAWDFORGE_CLUSTER_SECRET`: required, and long enough that guessing it is hopeless. */
const clusterSecret = Config.redacted("CLAWDFORGE_CLUSTER_SECRET").pipe(
  Config.withDefault(Redacted.make("")),
  Config.mapOrFail((secret) =>
    Redacted.value(secret).length >= minimumSecretLength
      ? Either.right(secret)
      : Either.left(ConfigError.InvalidData(
        ["CLAWDFORGE_CLUSTER_SECRET"],
        `${
          Redacted.value(secret).length === 0 ? "required" : "too short"
        } in cluster mode: the secret every node shares, at least ${minimumSecretLength} characters (e.g. openssl rand -hex 32)`
      ))
  )
)

/**
 * Read at start-up in cluster mode only. A cluster shares its ledger: with a SQLite one, start-up
 * stops with one line naming `CLAWDFORGE_CLUSTER`; without a secret (or a short one), naming
 * `CLAWDFORGE_CLUSTER_SECRET`.
 */
export const NodeSettingsLive = Layer.effect(
  NodeSettings,
  Effect.gen(function*() {
    const config = yield* AppConfig
    if (config.database._tag !== "Postgres") {
      return yield* Effect.fail(ConfigError.InvalidData(
        ["CLAWDFORGE_CLUSTER"],
        "a cluster needs a PostgreSQL ledger its nodes share: set CLAWDFORGE_DB=postgres://user:password@host:port/db"
      ))
    }
    return yield* Config.all({
      host: Config.string("CLAWDFORGE_NODE_HOST").pipe(Config.withDefault("127.0.0.1")),
      port: Config.port("CLAWDFORGE_NODE_PORT").pipe(Config.withDefault(34431)),
      shardsPerGroup: Config.integer("CLAWDFORGE_CLUSTER_SHARDS").pipe(Config.withDefault(60)),
      secret: clusterSecret
    })
  })
)

/**
 * The cluster's timings, tuned for failover well within 30 s (the library's defaults take a
 * minute or more to notice a dead runner): a node pings its peers every 2 s (a dead one fails its
 * pings within about 3 s), reads the runners and their shards every second, and a runner whose
 * heartbeat is older than 10 s is gone. On PostgreSQL the shard locks are advisory locks of the
 * runner's connection: a killed node's locks go with its connection, at once.
 */
export const shardingConfig = (settings: NodeSettings["Type"]): Partial<ShardingConfig.ShardingConfig["Type"]> => ({
  runnerAddress: Option.some(RunnerAddress.make(settings.host, settings.port)),
  shardsPerGroup: settings.shardsPerGroup,
  runnerHealthCheckInterval: Duration.seconds(2),
  refreshAssignmentsInterval: Duration.seconds(1),
  shardLockRefreshInterval: Duration.seconds(3),
  shardLockExpiration: Duration.seconds(10),
  entityTerminationTimeout: Duration.seconds(5),
  sendRetryInterval: Duration.millis(50),
  // A message to a session this node owns is handed over as it is, not serialized and read back.
  simulateRemoteSerialization: false
})
