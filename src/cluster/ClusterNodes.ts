import * as EntityId from "@effect/cluster/EntityId"
import * as Sharding from "@effect/cluster/Sharding"
import * as ShardId from "@effect/cluster/ShardId"
import { SqlClient } from "@effect/sql"
import { Effect, Schedule } from "effect"
import type { AppName, SessionId } from "../domain/Ids.js"
import { AgentPool } from "../services/sessions/AgentPool.js"
import { Sessions } from "../services/sessions/Sessions.js"
import { NodeSettings } from "./ClusterConfig.js"

type PendingRequests = Effect.Effect.Success<Sessions["admin"]["pendingPermissions"]>

/** One node as its last heartbeat left it in the shared database. */
export interface NodeRow {
  readonly node: string
  readonly live: number
  readonly capacity: number
  /** The shards it holds (of the default group). */
  readonly shards: ReadonlyArray<number>
  /** Its live sessions, with their apps, and the requests waiting in them: what an operator's overview adds up. */
  readonly sessions: ReadonlyArray<readonly [SessionId, AppName]>
  readonly pending: PendingRequests
  readonly seen_ms: number
}

/** How long a node's heartbeat counts: past it the node is not listed (it died or stopped). */
export const staleAfterMs = 5_000

/**
 * Every node's address, live sessions, capacity and shards, kept in one small table of the shared
 * database: each node writes its own row every second. Creates read it to find a node with a free
 * slot, and `GET /cluster` shows it.
 */
export class ClusterNodes extends Effect.Service<ClusterNodes>()("clawdforge/ClusterNodes", {
  scoped: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const sharding = yield* Sharding.Sharding
    const settings = yield* NodeSettings
    const pool = yield* AgentPool
    const sessions = yield* Sessions
    const self = `${settings.host}:${settings.port}`

    // ShardIds made once: `hasShardId` looks them up by value.
    const shardIds = Array.from({ length: settings.shardsPerGroup }, (_, i) => ShardId.make("default", i + 1))
    /** The shards this node holds now. */
    const ownShards = () => {
      const shards: Array<number> = []
      for (const shard of shardIds) if (sharding.hasShardId(shard)) shards.push(shard.id)
      return shards
    }
    const heartbeat = Effect.gen(function*() {
      const live = yield* pool.live
      const shards = JSON.stringify(ownShards())
      const held = JSON.stringify([...yield* sessions.admin.liveSessions])
      const pending = JSON.stringify(yield* sessions.admin.pendingPermissions)
      const now = Date.now()
      yield* sql`INSERT INTO clawdforge_cluster_nodes (node, live, capacity, shards, sessions, pending, seen_ms)
        VALUES (${self}, ${live}, ${pool.capacity}, ${shards}, ${held}, ${pending}, ${now})
        ON CONFLICT (node) DO UPDATE SET live = EXCLUDED.live, capacity = EXCLUDED.capacity,
          shards = EXCLUDED.shards, sessions = EXCLUDED.sessions, pending = EXCLUDED.pending,
          seen_ms = EXCLUDED.seen_ms`
    }).pipe(Effect.orDie)

    const holds = (id: string) => sharding.hasShardId(sharding.getShardId(EntityId.make(id), "default"))

    /**
     * A session whose shard this node lost (a node joined and took it) must not keep its agent
     * here: the new owner resumes it on its next message.
     */
    const releaseMoved = Effect.gen(function*() {
      const live = yield* sessions.liveSessionIds
      const moved = live.filter((id) => !holds(id))
      yield* Effect.forEach(moved, sessions.handOver, { discard: true })
    })

    yield* Effect.zipRight(heartbeat, releaseMoved).pipe(
      Effect.catchAllCause((cause) => Effect.logWarning("cluster heartbeat failed", cause)),
      Effect.repeat(Schedule.spaced("1 second")),
      Effect.forkScoped
    )
    // A node that stops says so at once (one that dies stops being listed a few seconds later).
    yield* Effect.addFinalizer(() => sql`DELETE FROM clawdforge_cluster_nodes WHERE node = ${self}`.pipe(Effect.ignore))

    /** The nodes whose heartbeat is recent. */
    const nodes = Effect.suspend(() =>
      sql<Record<keyof NodeRow, unknown>>`SELECT node, live, capacity, shards, sessions, pending, seen_ms
        FROM clawdforge_cluster_nodes
        WHERE seen_ms > ${Date.now() - staleAfterMs} ORDER BY node`
    ).pipe(
      Effect.map((rows) =>
        rows.map((row): NodeRow => ({
          node: String(row.node),
          live: Number(row.live),
          capacity: Number(row.capacity),
          shards: JSON.parse(String(row.shards)) as Array<number>,
          sessions: JSON.parse(String(row.sessions)) as NodeRow["sessions"],
          pending: JSON.parse(String(row.pending)) as PendingRequests,
          seen_ms: Number(row.seen_ms)
        }))
      ),
      Effect.orDie
    )

    return {
      self,
      nodes,
      /** The shard (of the default group) a session id belongs to. */
      shardOf: (id: string) => sharding.getShardId(EntityId.make(id), "default").id,
      /** Whether this node holds the session's shard now (it runs the session's agent). */
      holds,
      /** Whether the session's shard was taken from this node by another (not: this node stops). */
      movedAway: (id: string) => Effect.map(sharding.isShutdown, (down) => !down && !holds(id))
    } as const
  })
}) {}

