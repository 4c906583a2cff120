import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { columnTypes } from "../SqlDialect.js"

// What deleted sessions and `/run` jobs used, kept when the sweeper deletes them past the hard TTL:
// their turns', their own and the runs' counts, tokens and cost, by app, agent and hour (of a turn's
// end, a session's creation, a run's start). `GET /usage`, `clawdforge usage` and the day's cost
// read it beside the live rows.
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { integer, real } = columnTypes(sql)
  yield* sql`
    CREATE TABLE usage_history (
      app_name TEXT NOT NULL,
      agent TEXT NOT NULL,
      hour ${integer} NOT NULL,
      turns ${integer} NOT NULL,
      sessions ${integer} NOT NULL,
      runs ${integer} NOT NULL,
      input_tokens ${integer} NOT NULL,
      output_tokens ${integer} NOT NULL,
      cost_usd ${real} NOT NULL,
      PRIMARY KEY (app_name, agent, hour)
    )`
})
