/** Where things are: the repository, the compiled gateway and the programs the bench runs. */
import { readFileSync } from "node:fs"
import { join, resolve } from "node:path"

export const root = resolve(import.meta.dirname, "../..")

/**
 * The node arguments of `npm start` (e.g. `["dist/main.js"]` for `node dist/main.js`), read from
 * package.json so that the bench runs the gateway exactly as `npm start` does, wherever the
 * build puts it.
 */
export const npmStartArgs = (): ReadonlyArray<string> => {
  const start: unknown = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).scripts?.start
  const [program, ...args] = typeof start === "string" ? start.trim().split(/\s+/) : []
  if (program !== "node" || args.length === 0) throw new Error(`npm start is not "node <script>": ${String(start)}`)
  return args
}

/** The demo agent (`echo`); the compiled gateway runs a copy of this same file. */
export const demoAgent = join(root, "src/services/agents/demo-agent.mjs")
export const bareGatewayMain = join(root, "bench/bare-gateway.mjs")
export const fakeClaude = join(root, "test/fixtures/fake-claude.mjs")
export const acpxBin = join(root, "node_modules/.bin/acpx")
