import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

// A session's settings: the model and mode it runs with and every option the agent offers
// (`config_options`, JSON), as its agent last reported them, so that they outlive the agent.
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE sessions ADD COLUMN model TEXT`
  yield* sql`ALTER TABLE sessions ADD COLUMN mode TEXT`
  yield* sql`ALTER TABLE sessions ADD COLUMN config_options TEXT NOT NULL DEFAULT '[]'`
})
