/**
 * `npm run build` (and `prepare`, so `npm ci` runs it):
 * 1. `tsc` compiles src/ to dist/: the library that embedding programs import, with types.
 * 2. esbuild bundles the two programs, the gateway (`dist/app/main.js`, what `npm start` runs)
 *    and the admin CLI (`dist/app/cli.js`, what the bin runs), from src/ into dist/app/. One
 *    tree-shaken file loads in a fraction of the time of a few thousand modules, and what is
 *    imported with `import()` (the docs page, OpenTelemetry, the acpx driver) stays in chunks of
 *    its own that load only when used.
 * 3. esbuild bundles the operators' console (src/console/, preact + htm) for browsers into
 *    `dist/app/console/`: one script and one style sheet, which the gateway reads when `/console`
 *    is first asked for.
 */
import { build } from "esbuild"
import { execFileSync } from "node:child_process"
import { copyFileSync, renameSync, rmSync } from "node:fs"
import { createRequire } from "node:module"
import { join, resolve } from "node:path"

const root = resolve(import.meta.dirname, "..")
const require = createRequire(import.meta.url)

const library = () =>
  execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", "tsconfig.build.json"], {
    cwd: root,
    stdio: "inherit"
  })

const app = join(root, "dist/app")
// Built beside it and swapped in, so a gateway already running from dist/app keeps its files
// for as short a time as possible.
const next = `${app}.next-${process.pid}`
const programs = () => build({
  entryPoints: { main: join(root, "src/main.ts"), cli: join(root, "src/cli.ts") },
  outdir: next,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  // The native SQLite binding is loaded from node_modules as it is.
  external: ["better-sqlite3"],
  // A few dependencies are CommonJS and call `require`.
  banner: { js: "import { createRequire as __createRequire } from \"node:module\"; const require = __createRequire(import.meta.url);" },
  sourcemap: true,
  logLevel: "warning"
})

// The console: for browsers, minified, with no source map (the gateway serves these two files only).
const consoleBundle = () => build({
  entryPoints: [
    { in: join(root, "src/console/main.ts"), out: "console" },
    { in: join(root, "src/console/console.css"), out: "console" }
  ],
  outdir: join(next, "console"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["chrome111", "firefox113", "safari16.4"],
  minify: true,
  legalComments: "none",
  logLevel: "warning"
})

if (!process.argv.includes("--programs")) library()
await Promise.all([programs(), consoleBundle()])
// The demo agent is a program of its own, found beside the module that names it.
copyFileSync(join(root, "src/services/agents/demo-agent.mjs"), join(next, "demo-agent.mjs"))
copyFileSync(join(root, "src/services/sandbox/sandbox-exec.mjs"), join(next, "sandbox-exec.mjs"))
copyFileSync(join(root, "src/services/sandbox/sandbox-bridge.mjs"), join(next, "sandbox-bridge.mjs"))
rmSync(app, { recursive: true, force: true })
renameSync(next, app)
console.log("built dist/app/")
