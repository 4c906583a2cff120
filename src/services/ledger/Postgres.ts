import { NodeContext } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { PgClient, PgMigrator } from "@effect/sql-pg"
import { Effect, Layer, Redacted, Scope } from "effect"
import * as PgTypes from "pg-types"
import type { LedgerLocation } from "../config/AppConfig.js"
import { LedgerUnavailable } from "./LedgerUnavailable.js"
import { migrations } from "./Migrations.js"

// The ledger's integers are BIGINT on PostgreSQL (timestamps in ms, ids): read them, and NUMERIC
// sums, as numbers, as SQLite gives them (every value the ledger keeps fits a double exactly).
export const pgTypes = {
  getTypeParser: (oid: number, format?: "text" | "binary") =>
    oid === PgTypes.builtins.INT8 || oid === PgTypes.builtins.NUMERIC
      ? Number
      : PgTypes.getTypeParser(oid, format as "text")
}

// Any number of gateways may start together on an empty database: the first to take this
// session lock creates the tables, the others wait for it and then find nothing left to create.
// PostgreSQL's `CREATE TABLE IF NOT EXISTS` is no guard against that race (two creates of one
// table collide in its catalogue), and PgMigrator's own table lock comes too late: its bookkeeping
// table is created before it, unguarded.
const migrationLockKey = 0x636c_6466 // "cldf"

/**
 * Runs `effect` (which creates tables) while holding the migration lock, on a connection of its
 * own that is returned when `effect` ends. Whatever `effect` adds to the ambient scope stays there.
 */
export const underMigrationLock = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* Effect.acquireUseRelease(
      Scope.make(),
      (lockScope) =>
        Effect.gen(function*() {
          const connection = yield* Scope.extend(sql.reserve, lockScope)
          yield* Effect.acquireRelease(
            connection.execute(`SELECT pg_advisory_lock(${migrationLockKey})`, [], undefined),
            () => Effect.ignore(connection.execute(`SELECT pg_advisory_unlock(${migrationLockKey})`, [], undefined))
          ).pipe(Scope.extend(lockScope))
          return yield* effect
        }),
      (lockScope, exit) => Scope.close(lockScope, exit)
    )
  })

/** A layer whose construction creates tables, built while holding the migration lock. */
export const layerUnderMigrationLock = <A, E, R>(layer: Layer.Layer<A, E, R>) =>
  Layer.scopedContext(underMigrationLock(Layer.build(layer)))

const migratePostgres = underMigrationLock(PgMigrator.run({ loader: migrations }))

/** `text` with the URL's password, as written and decoded, replaced. */
const withoutPassword = (url: Redacted.Redacted, text: string) => {
  const raw = Redacted.value(url)
  const password = URL.canParse(raw) ? new URL(raw).password : ""
  let decoded = password
  try {
    decoded = decodeURIComponent(password)
  } catch {
    // not percent-encoded after all
  }
  return [password, decoded].filter((secret) => secret.length > 0)
    .reduce((out, secret) => out.split(secret).join("***"), text)
}

/** What went wrong underneath: a refused `localhost` is an AggregateError (IPv6 and IPv4) without a message of its own. */
const causeMessage = (cause: unknown): string =>
  cause instanceof AggregateError && cause.message === ""
    ? cause.errors.map(causeMessage).join("; ")
    : cause instanceof Error
    ? cause.message
    : ""

/** The PostgreSQL client for a `postgres://` `CLAWDFORGE_DB`, migrated before anything uses it. */
export const layerPostgres = (location: Extract<LedgerLocation, { _tag: "Postgres" }>) =>
  Layer.effectDiscard(migratePostgres).pipe(
    Layer.provideMerge(PgClient.layer({ url: location.url, applicationName: "clawdforge", types: pgTypes })),
    Layer.provide(NodeContext.layer),
    // pg's errors name the user and host, not the password; scrubbed all the same, and one line.
    Layer.mapError((error) => {
      const reason = causeMessage(error.cause)
      const detail = reason === "" ? "" : `: ${reason}`
      return new LedgerUnavailable({
        message: withoutPassword(location.url, `Could not open the ledger at ${location.display} (${error.message}${detail})`)
      })
    }),
    Layer.orDie
  )
