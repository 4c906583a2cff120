import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

// Two limits of the isolation issue, NULL where the ledger does not set them (the environment's
// applies): `permission_modes`, the modes an app's creates may ask for, comma-separated
// (`approve-reads,ask`); `network`, what its agents reach, as CLAWDFORGE_AGENT_NETWORK spells it.
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE app_limits ADD COLUMN permission_modes TEXT`
  yield* sql`ALTER TABLE app_limits ADD COLUMN network TEXT`
})
