/**
 * The compiled gateway the bench runs: `npm run build`, then at once a snapshot of the folder that
 * holds `npm start`'s script. Every test run rebuilds dist/app (emptying it first), and others run
 * tests while the bench runs: the snapshot keeps the files under a running gateway. It lives under
 * node_modules/.cache, so the gateway finds its packages in the project's node_modules as the
 * original does, and is removed at the end.
 */
import { spawnSync } from "node:child_process"
import { cpSync, existsSync, mkdirSync, rmSync } from "node:fs"
import { dirname, join, relative } from "node:path"
import { npmStartArgs, root } from "./paths.js"
import { removeOnCleanup, sleep } from "./processes.js"

let snapshotArgs: ReadonlyArray<string> | undefined

/** `npm start`'s node arguments with the script in the snapshot; `prepareGateway` first. */
export const gatewayArgs = () => {
  if (snapshotArgs === undefined) throw new Error("prepareGateway() has not run")
  return snapshotArgs
}

const npmRunBuild = (note: (line: string) => void) => {
  if (process.env.BENCH_NO_BUILD !== undefined) return note("BENCH_NO_BUILD: dist/ as it is")
  note("npm run build")
  const result = spawnSync("npm", ["run", "build"], { cwd: root, stdio: ["ignore", 2, 2] })
  // A failed build may leave dist/ stale or half written: timing it would mislead.
  if (result.status !== 0) throw new Error(`npm run build exited ${result.status}; the bench needs a clean build`)
}

export const prepareGateway = async (note: (line: string) => void) => {
  npmRunBuild(note)
  const [script, ...rest] = npmStartArgs()
  const folder = dirname(join(root, script!))
  const snapshot = join(root, `node_modules/.cache/clawdforge-bench-${process.pid}`)
  removeOnCleanup(snapshot)
  const copy = join(snapshot, relative(root, folder))
  // A test run may be rebuilding it right now: wait for the script, and copy again if files vanish mid-copy.
  for (let attempt = 1;; attempt++) {
    try {
      if (!existsSync(join(root, script!))) throw new Error(`${script} is missing`)
      rmSync(snapshot, { recursive: true, force: true })
      mkdirSync(dirname(copy), { recursive: true })
      cpSync(folder, copy, { recursive: true })
      break
    } catch (error) {
      if (attempt === 10) throw error
      await sleep(2000)
    }
  }
  snapshotArgs = [join(snapshot, script!), ...rest]
}
