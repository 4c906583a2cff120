/**
 * Vitest global setup: builds what `npm ci` builds (`scripts/build.mjs`, the prepare script), so
 * the tests that start the gateway or the CLI as processes run the compiled programs users run
 * (`dist/app/`), never a stale build.
 */
import { execFileSync } from "node:child_process"
import { resolve } from "node:path"

export default function setup() {
  // Once per run, though each project (dialect) names this setup.
  if (process.env.CLAWDFORGE_TEST_BUILT === "1") return
  process.env.CLAWDFORGE_TEST_BUILT = "1"
  const root = resolve(import.meta.dirname, "../..")
  execFileSync(process.execPath, ["scripts/build.mjs", "--programs"], { cwd: root, stdio: "inherit" })
}
