import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Gateway and CLI processes run the compiled dist/, as `npm start` and the bin do.
    globalSetup: ["test/support/build.ts"],
    // Real agent processes and HTTP servers: keep the suite within a 2-core machine.
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
