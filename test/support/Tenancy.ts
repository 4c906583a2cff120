/**
 * The tenancy services over a real SQLite file (or, in the `postgres` project, a fresh database),
 * configured as the environment would.
 */
import { SqlClient } from "@effect/sql"
import { ConfigProvider, Effect, Layer } from "effect"
import { join } from "node:path"
import { AppConfig } from "../../src/services/config/AppConfig.js"
import { DatabaseLive } from "../../src/services/ledger/Database.js"
import { AppLimits } from "../../src/services/tenancy/AppLimits.js"
import { AppSecrets } from "../../src/services/tenancy/AppSecrets.js"
import { Usage } from "../../src/services/tenancy/Usage.js"
import { freshLedger, postgres } from "./Ledgers.js"
import { tempDir } from "./TempDirs.js"

/** A fresh ledger file in a directory of its own (removed at the end of the test file). */
export const ledgerFile = () => join(tempDir("clawdforge-tenancy-"), "ledger.db")

/** A fresh ledger of the dialect under test: a SQLite file, or a database dropped with the scope. */
const tenancyLedger = postgres === undefined ? Effect.sync(ledgerFile) : freshLedger

/** The tenancy services on a fresh ledger (or on `env.CLAWDFORGE_DB`). */
export const layerTenancy = (env: Record<string, string>) =>
  Layer.mergeAll(
    AppLimits.DefaultWithoutDependencies.pipe(Layer.provideMerge(Usage.DefaultWithoutDependencies)),
    AppSecrets.DefaultWithoutDependencies
  ).pipe(
    Layer.provideMerge(DatabaseLive),
    Layer.provideMerge(AppConfig.Default),
    Layer.provide(Layer.unwrapScoped(Effect.map(
      env["CLAWDFORGE_DB"] === undefined ? tenancyLedger : Effect.succeed(env["CLAWDFORGE_DB"]),
      (db) =>
        Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries({
          CLAWDFORGE_APP_TOKENS: "",
          ...env,
          CLAWDFORGE_DB: db
        }))))
    )))
  )

/** A session and its ended turns, written as the ledger would (the columns usage reads). */
export const insertSession = (
  session: { readonly id: string; readonly app: string; readonly agent: string; readonly createdAt: number },
  turns: ReadonlyArray<{
    readonly endedAt: number | null
    readonly input?: number | null
    readonly output?: number | null
    readonly cost?: number | null
  }> = []
) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`INSERT INTO sessions (session_id, app_name, agent, cwd, permission_mode, created_at)
      VALUES (${session.id}, ${session.app}, ${session.agent}, '/tmp', 'approve-reads', ${session.createdAt})`
    let index = 0
    for (const turn of turns) {
      index++
      yield* sql`INSERT INTO turns (session_id, turn_index, prompt, status, accepted_at, ended_at,
          input_tokens, output_tokens, total_tokens, cost_usd)
        VALUES (${session.id}, ${index}, 'p', ${turn.endedAt === null ? "queued" : "completed"}, ${session.createdAt},
          ${turn.endedAt}, ${turn.input ?? null}, ${turn.output ?? null},
          ${turn.input == null || turn.output == null ? null : turn.input + turn.output}, ${turn.cost ?? null})`
    }
  }).pipe(Effect.orDie)
