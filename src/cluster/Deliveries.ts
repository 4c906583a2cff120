import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/** How long a delivery is remembered: far longer than a message is retried. */
const keepMs = 3_600_000

/**
 * Messages that accept work (a create, a turn) delivered at most once. The cluster resends a
 * message whose node went away before it answered, to the session's next owner: had the first
 * node accepted the turn already, the turn would run twice. Each such message carries a key of its
 * own, claimed in the shared database (one INSERT) by the node that takes it while the session's
 * entity is new there (when a second delivery can come): a second delivery finds it claimed and is
 * refused instead of run.
 */
export class Deliveries extends Effect.Service<Deliveries>()("clawdforge/cluster/Deliveries", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    /** True for the first delivery of `key`, false for any other. */
    const claim = (key: string) =>
      sql`INSERT INTO clawdforge_cluster_deliveries (delivery, at_ms) VALUES (${key}, ${Date.now()})
        ON CONFLICT (delivery) DO NOTHING RETURNING delivery`.pipe(
        Effect.map((rows) => rows.length === 1),
        Effect.orDie
      )

    const purge = Effect.suspend(() => sql`DELETE FROM clawdforge_cluster_deliveries WHERE at_ms < ${Date.now() - keepMs}`).pipe(
      Effect.asVoid,
      Effect.orDie
    )

    return { claim, purge } as const
  })
}) {}
