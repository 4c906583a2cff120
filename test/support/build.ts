/**
 * Vitest global setup: compiles `src/` to `dist/` (what `npm ci` does through `prepare`), so the
 * tests that start the gateway or the CLI as processes run the compiled code users run, never
 * a stale build.
 */
import { execFileSync } from "node:child_process"
import { resolve } from "node:path"

export default function setup() {
  const root = resolve(import.meta.dirname, "../..")
  execFileSync(process.execPath, [resolve(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"], {
    cwd: root,
    stdio: "inherit"
  })
}
