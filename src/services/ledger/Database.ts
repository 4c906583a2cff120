import { NodeContext } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { SqliteClient, SqliteMigrator } from "@effect/sql-sqlite-node"
import { Effect, Layer } from "effect"
import { mkdirSync } from "node:fs"
import { dirname } from "node:path"
import { migrations } from "./Migrations.js"
import { AppConfig, type LedgerLocation } from "../config/AppConfig.js"

/**
 * In WAL mode, `synchronous = NORMAL` commits without an fsync per transaction: a commit
 * survives the gateway's crash (what the durability tests kill it with), and only an OS crash
 * or power loss may take back the last commits. An fsync per turn would cost more than the rest
 * of the turn's ledger work.
 */
const tuneSqlite = Layer.effectDiscard(
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`PRAGMA synchronous = NORMAL`)
)

/** The SQLite client for `CLAWDFORGE_DB` (WAL mode), migrated before anything uses it. */
export const layerSqlite = (filename: string) =>
  SqliteMigrator.layer({ loader: migrations }).pipe(
    Layer.provideMerge(tuneSqlite),
    Layer.provideMerge(
      Layer.unwrapEffect(
        Effect.sync(() => {
          if (filename !== ":memory:") mkdirSync(dirname(filename), { recursive: true })
          return SqliteClient.layer({ filename })
        })
      )
    ),
    Layer.provide(NodeContext.layer),
    Layer.orDie
  )

/**
 * The ledger's SQL client for `CLAWDFORGE_DB`: SQLite (the default) or PostgreSQL. The PostgreSQL
 * client is loaded only for a `postgres://` ledger: a SQLite gateway never carries it in memory.
 */
export const layerDatabase = (location: LedgerLocation) =>
  location._tag === "Sqlite"
    ? layerSqlite(location.filename)
    : Layer.unwrapEffect(Effect.map(Effect.promise(() => import("./Postgres.js")), (pg) => pg.layerPostgres(location)))

export const DatabaseLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) => layerDatabase(config.database))
).pipe(Layer.provide(AppConfig.Default))
