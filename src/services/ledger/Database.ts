import { NodeContext } from "@effect/platform-node"
import { SqliteClient, SqliteMigrator } from "@effect/sql-sqlite-node"
import { Effect, Layer } from "effect"
import { mkdirSync } from "node:fs"
import { dirname } from "node:path"
import { migrations } from "./Migrations.js"
import { AppConfig } from "../config/AppConfig.js"

/** The SQLite client for `CLAWDFORGE_DB` (WAL mode), migrated before anything uses it. */
export const layerSqlite = (filename: string) =>
  SqliteMigrator.layer({ loader: migrations }).pipe(
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

export const DatabaseLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) => layerSqlite(config.database))
).pipe(Layer.provide(AppConfig.Default))
