import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { columnTypes } from "../SqlDialect.js"

// Tenancy (the same on SQLite and PostgreSQL, but for the column types of `columnTypes`).
// `app_limits`: the limits `clawdforge apps limits` sets, a NULL field not set here (the
// environment's applies). `app_env`: an app's agent environment, each value AES-256-GCM under
// CLAWDFORGE_SECRET_KEY as one text blob (`v1:` + base64 of IV, tag, ciphertext); names are not
// secret. `runs`: every `/run` with what claude reported it used (sessions' turns keep theirs on
// `turns`). `turns_by_end`: usage windows and the day's cost take turns by when they ended.
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { integer, real } = columnTypes(sql)
  yield* sql`
    CREATE TABLE app_limits (
      app_name TEXT PRIMARY KEY,
      max_sessions ${integer},
      turns_per_minute ${integer},
      daily_cost_usd ${real},
      updated_at ${integer} NOT NULL
    )`
  yield* sql`
    CREATE TABLE app_env (
      app_name TEXT NOT NULL,
      name TEXT NOT NULL,
      value TEXT NOT NULL,
      updated_at ${integer} NOT NULL,
      PRIMARY KEY (app_name, name)
    )`
  yield* sql`
    CREATE TABLE runs (
      run_id TEXT PRIMARY KEY,
      app_name TEXT NOT NULL,
      agent TEXT NOT NULL,
      at ${integer} NOT NULL,
      status TEXT NOT NULL,
      duration_ms ${integer},
      input_tokens ${integer},
      output_tokens ${integer},
      total_tokens ${integer},
      cost_usd ${real}
    )`
  yield* sql`CREATE INDEX runs_by_app ON runs (app_name, at)`
  yield* sql`CREATE INDEX runs_by_at ON runs (at)`
  yield* sql`CREATE INDEX turns_by_end ON turns (ended_at)`
})
