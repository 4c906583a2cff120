import { defineConfig } from "vitest/config"
import { SlowFirstSequencer } from "./test/support/SlowFirst.js"

/**
 * The ledger-level and HTTP contract tests: run on SQLite and again on PostgreSQL. Tests whose
 * ledger side another file here covers run on SQLite alone (webhooks: delivery; the gateway
 * process and the CLI's refusals, generated bad input: bad-input, admin-api, tenancy-*; streaming
 * and agent settings: contract, fair-share; the load test: races), so that `npm test` stays
 * within its 6 minutes on 2 cores (it took 358 s with those three on both).
 */
const onBothDialects = [
  "test/contract.test.ts",
  "test/sessions-e2e.test.ts",
  "test/delivery.test.ts",
  "test/durability.test.ts",
  "test/idempotency.test.ts",
  "test/cli.test.ts",
  "test/races.test.ts",
  "test/bad-input.test.ts",
  "test/postgres.test.ts",
  "test/tenancy-usage.test.ts",
  "test/tenancy-limits.test.ts",
  "test/tenancy-secrets.test.ts",
  "test/tenancy-http.test.ts",
  "test/permission-ceiling.test.ts",
  "test/admin-api.test.ts",
  "test/fair-share.test.ts",
  "test/workspace-changes.test.ts",
  // The cluster needs PostgreSQL: on this project only.
  "test/cluster*.test.ts"
]

export default defineConfig({
  test: {
    // Real agent processes and HTTP servers: keep the suite within a 2-core machine. Three files at
    // a time, as most of a file's time is spent waiting on processes (the full suite from a fresh
    // clone, measured on 2 cores: 443 s with two, 323 s with three).
    pool: "forks",
    maxWorkers: 3,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // The slow files first, so no long one is left for the end (test/support/SlowFirst.ts).
    sequence: { sequencer: SlowFirstSequencer },
    projects: [
      {
        extends: true,
        test: {
          name: "sqlite",
          include: ["test/**/*.test.ts"],
          exclude: ["test/postgres.test.ts", "test/cluster*.test.ts"],
          // The run's own temp folder, checked empty at the end (first here: its teardown runs last);
          // gateway and CLI processes run the compiled dist/, as `npm start` and the bin do.
          globalSetup: ["test/support/Leftovers.ts", "test/support/Bubblewrap.ts", "test/support/build.ts"]
        }
      },
      {
        extends: true,
        test: {
          name: "postgres",
          include: onBothDialects,
          // A throwaway server for the run (test/support/Postgres.ts); each gateway a fresh database.
          globalSetup: [
            "test/support/Leftovers.ts",
            "test/support/Bubblewrap.ts",
            "test/support/build.ts",
            "test/support/Postgres.ts"
          ]
        }
      }
    ]
  }
})
