/**
 * The test ledger of the dialect under test. The `sqlite` project runs every test file on SQLite;
 * the `postgres` project (vitest.config.ts) runs the ledger-level and HTTP contract tests again, on
 * the throwaway server its global setup started (`./Postgres.ts`), a fresh database per gateway.
 */
import { Effect } from "effect"
import { createRequire } from "node:module"
import { join } from "node:path"
import { inject } from "vitest"
import { createDatabase, dropDatabase, pgQuery, type PostgresServer } from "./Postgres.js"

/** The `postgres` project's server; none on the `sqlite` project. */
export const postgres: PostgresServer | undefined = inject("postgres")

export const dialect: "sqlite" | "postgres" = postgres === undefined ? "sqlite" : "postgres"

/** A fresh ledger for an in-process gateway (`CLAWDFORGE_DB`): `:memory:`, or a new database dropped with the scope. */
export const freshLedger = postgres === undefined
  ? Effect.succeed(":memory:")
  : Effect.acquireRelease(
    Effect.promise(() => createDatabase(postgres)),
    (url) => Effect.promise(() => dropDatabase(postgres, url))
  )

const databases = new Map<string, Promise<string>>()

/** The ledger a gateway process keeps with its data folder: `ledger.db` there, or a database made for it. */
export const ledgerIn = (data: string): Promise<string> => {
  if (postgres === undefined) return Promise.resolve(join(data, "ledger.db"))
  let url = databases.get(data)
  if (url === undefined) {
    url = createDatabase(postgres)
    databases.set(data, url)
  }
  return url
}

// better-sqlite3 (the driver under @effect/sql-sqlite-node) has no types of its own here.
interface Db {
  prepare(sql: string): { all(...params: Array<unknown>): Array<Record<string, any>> }
  close(): void
}
const Sqlite = createRequire(import.meta.url)("better-sqlite3") as new(file: string, options?: object) => Db

/** The rows of one query (`?` parameters) on a ledger (`CLAWDFORGE_DB`), read beside the gateway using it. */
export const queryLedger = async (db: string, text: string, params: ReadonlyArray<unknown> = []) => {
  if (/^postgres(ql)?:\/\//.test(db)) {
    let n = 0
    return pgQuery(db, text.replace(/\?/g, () => `$${++n}`), params)
  }
  const ledger = new Sqlite(db, { readonly: true })
  try {
    return ledger.prepare(text).all(...params)
  } finally {
    ledger.close()
  }
}
