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

/** A node writes its row at least this often (its heartbeat)... */
const heartbeatMs = 1_000
/** ...and looks this often whether its row would say something new, which it then writes at once. */
const lookMs = 200

/**
 * Whether the listed nodes' shards have settled: every listed node holds some, and every shard is
 * held by exactly one of them. Until then shards are moving (a node joined, or one died), and a
 * session opened on a shard that is about to move would be stopped with it.
 */
const settled = (rows: ReadonlyArray<NodeRow>, shardCount: number) => {
  const shards = new Set<number>()
  let listed = 0
  for (const row of rows) {
    if (row.shards.length === 0) return false
    listed += row.shards.length
    for (const shard of row.shards) shards.add(shard)
  }
  return listed === shardCount && shards.size === shardCount
}

/** How long a create waits for moving shards to settle before it goes on as they are. */
const settleTimeoutMs = 20_000

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
    /** What this node's row says: read from memory, cheap enough to look at often. */
    const snapshot = Effect.gen(function*() {
      const live = yield* pool.live
      const shards = JSON.stringify(ownShards())
      const held = JSON.stringify([...yield* sessions.admin.liveSessions])
      const pending = JSON.stringify(yield* sessions.admin.pendingPermissions)
      return { live, shards, held, pending, key: `${live}|${shards}|${held}|${pending}` }
    })
    // The last row written (its snapshot's key, and when): the row is written again as soon as it
    // would say something new, and at least every second so that the node stays listed.
    let written = { key: "", atMs: 0 }
    const heartbeat = Effect.gen(function*() {
      const now = Date.now()
      const { held, key, live, pending, shards } = yield* snapshot
      if (key === written.key && now - written.atMs < heartbeatMs) return
      yield* sql`INSERT INTO clawdforge_cluster_nodes (node, live, capacity, shards, sessions, pending, seen_ms)
        VALUES (${self}, ${live}, ${pool.capacity}, ${shards}, ${held}, ${pending}, ${now})
        ON CONFLICT (node) DO UPDATE SET live = EXCLUDED.live, capacity = EXCLUDED.capacity,
          shards = EXCLUDED.shards, sessions = EXCLUDED.sessions, pending = EXCLUDED.pending,
          seen_ms = EXCLUDED.seen_ms`
      written = { key, atMs: now }
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

    // `GET /cluster` reads these rows: a change (a session started, stopped or moved) is in them
    // within a look, not a heartbeat, later.
    yield* Effect.zipRight(releaseMoved, heartbeat).pipe(
      Effect.catchAllCause((cause) => Effect.logWarning("cluster heartbeat failed", cause)),
      Effect.repeat(Schedule.spaced(lookMs)),
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
      /**
       * The nodes, once their shards have settled (see `settled`): what a create places its session
       * by. Shards settle within a few seconds of a node joining or dying; past `settleTimeoutMs` the
       * nodes are taken as they are.
       */
      settledNodes: Effect.gen(function*() {
        const deadline = Date.now() + settleTimeoutMs
        for (;;) {
          const rows = yield* nodes
          if (settled(rows, settings.shardsPerGroup) || Date.now() > deadline) return rows
          yield* Effect.sleep("100 millis")
        }
      }),
      /** The shard (of the default group) a session id belongs to. */
      shardOf: (id: string) => sharding.getShardId(EntityId.make(id), "default").id,
      /** Whether this node holds the session's shard now (it runs the session's agent). */
      holds,
      /** Whether the session's shard was taken from this node by another (not: this node stops). */
      movedAway: (id: string) => Effect.map(sharding.isShutdown, (down) => !down && !holds(id))
    } as const
  })
}) {}

