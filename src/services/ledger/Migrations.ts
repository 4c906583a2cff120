import { Migrator } from "@effect/sql"
import m0001 from "./migrations/0001_ledger.js"
import m0002 from "./migrations/0002_apps.js"
import m0003 from "./migrations/0003_turn_trigger.js"
import m0004 from "./migrations/0004_turns.js"
import m0005 from "./migrations/0005_idempotency_keys.js"
import m0006 from "./migrations/0006_webhooks.js"
import m0007 from "./migrations/0007_session_settings.js"
import m0008 from "./migrations/0008_tenancy.js"
import m0009 from "./migrations/0009_usage_history.js"
import m0010 from "./migrations/0010_idempotency_holders.js"
import m0011 from "./migrations/0011_isolation_limits.js"
import m0012 from "./migrations/0012_cluster_tables.js"
import m0013 from "./migrations/0013_cluster_limits.js"
import m0014 from "./migrations/0014_fair_share.js"
import m0015 from "./migrations/0015_workspace_quota.js"
import m0016 from "./migrations/0016_turn_changes.js"
import m0017 from "./migrations/0017_warm_sessions.js"

/** The ledger's migrations, a file each under `migrations/`, applied in the order of their ids. */
export const migrations = Migrator.fromRecord({
  "0001_ledger": m0001,
  "0002_apps": m0002,
  "0003_turn_trigger": m0003,
  "0004_turns": m0004,
  "0005_idempotency_keys": m0005,
  "0006_webhooks": m0006,
  "0007_session_settings": m0007,
  "0008_tenancy": m0008,
  "0009_usage_history": m0009,
  "0010_idempotency_holders": m0010,
  "0011_isolation_limits": m0011,
  "0012_cluster_tables": m0012,
  "0013_cluster_limits": m0013,
  "0014_fair_share": m0014,
  "0015_workspace_quota": m0015,
  "0016_turn_changes": m0016,
  "0017_warm_sessions": m0017
})
