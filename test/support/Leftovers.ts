/**
 * Vitest global setup, the first of each project's: a test run leaves nothing behind. The run gets
 * a temp folder of its own (`TMPDIR` for the workers and everything they start), so two runs side
 * by side never take each other's folders for their own. The teardown, the last of the run, fails
 * the run naming what is left: `clawdforge-*` and `acpx-*` entries of that folder (every test file
 * removes what it made, see TempDirs.ts), `acpx-*` folders new in `/tmp` (acpx keeps its queue
 * sockets there whatever TMPDIR says), and processes still running in the run (gateways, agents,
 * acpx queue owners: those are killed). Then it removes the folder, whatever the run did.
 */
import { chmodSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs"
import { constants as osConstants, tmpdir } from "node:os"
import { join } from "node:path"

interface Run {
  readonly folder: string
  readonly previousTmpdir: string | undefined
  readonly acpxBefore: ReadonlySet<string>
  /** Clears up after a run stopped before its teardown (by SIGINT, SIGTERM or a crash). */
  readonly onExit: () => void
  readonly onSignal: (signal: NodeJS.Signals) => void
  /** The projects whose setup ran: the last teardown checks. */
  projects: number
}

// Each project loads its global setup files afresh: the run is kept where they all see it.
const key = Symbol.for("clawdforge.testRun")
const shared = globalThis as { [key]?: Run }

const isOurs = (name: string) => name.startsWith("clawdforge-") || name.startsWith("acpx-")

const acpxFolders = () => new Set(readdirSync("/tmp").filter((name) => name.startsWith("acpx-")))

/**
 * Processes (pid and command line) whose environment holds `TMPDIR=<folder>` (or a folder under
 * it), or that work in a folder under it: a sandboxed agent's environment is cleaned, but it works
 * in its session's workspace.
 */
const processesIn = (folder: string, options: { readonly vitestWorkers: boolean }) => {
  const found: Array<{ readonly pid: number; readonly command: string }> = []
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry)
    if (!Number.isInteger(pid) || pid === process.pid) continue
    try {
      const environ = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")
      const cwd = readlinkSync(`/proc/${pid}/cwd`)
      const inRun = environ.some((v) => v === `TMPDIR=${folder}` || v.startsWith(`TMPDIR=${folder}/`)) ||
        cwd === folder || cwd.startsWith(`${folder}/`)
      if (!inRun) continue
      const command = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim()
      // vitest's own workers (titled `node (vitest 1)`) and transformer end after the teardown.
      const vitestOwn = /\(vitest \d+\)/.test(command) || /\/node_modules\/(vitest|tinypool|esbuild|@esbuild)\//.test(command)
      if (vitestOwn && !options.vitestWorkers) continue
      found.push({ pid, command })
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found
}

const killAll = (processes: ReadonlyArray<{ readonly pid: number }>) => {
  for (const { pid } of processes) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // it ended meanwhile
    }
  }
}

const check = (run: Run) => {
  const problems: Array<string> = []
  const processes = processesIn(run.folder, { vitestWorkers: false })
  killAll(processes)
  if (processes.length > 0) {
    problems.push(`processes still running (killed now):\n${processes.map((p) => `  ${p.pid} ${p.command.slice(0, 200)}`).join("\n")}`)
  }
  // Ours and acpx's; what other programs keep there (Claude Code's `claude-0`) goes with the folder.
  const left = readdirSync(run.folder).filter(isOurs)
  if (left.length > 0) problems.push(`in the temp folder: ${left.sort().join(", ")}`)
  const acpx = [...acpxFolders()].filter((name) => !run.acpxBefore.has(name))
  if (acpx.length > 0) problems.push(`in /tmp: ${acpx.sort().join(", ")}`)
  return problems
}

export default function setup() {
  const existing = shared[key]
  if (existing !== undefined) {
    existing.projects++
  } else {
    const folder = mkdtempSync(join(tmpdir(), "clawdforge-run-"))
    // Others may pass through, as through /tmp, to the folders they are given in it (the test
    // PostgreSQL server runs as nobody, sandboxed agents as users of their own); none may list it.
    chmodSync(folder, 0o711)
    const onExit = () => {
      // Its workers too: they would go on running the test files they were given.
      killAll(processesIn(folder, { vitestWorkers: true }))
      rmSync(folder, { recursive: true, force: true })
    }
    // Without a terminal vitest leaves SIGINT and SIGTERM to node, which ends at once, running no
    // exit handler: exiting on them runs this one (and the PostgreSQL server's stop). Before
    // vitest's own exit handler, which exits again at once.
    const onSignal = (signal: NodeJS.Signals) => process.exit(128 + osConstants.signals[signal])
    process.prependOnceListener("exit", onExit)
    process.once("SIGINT", onSignal)
    process.once("SIGTERM", onSignal)
    shared[key] = { folder, previousTmpdir: process.env.TMPDIR, acpxBefore: acpxFolders(), onExit, onSignal, projects: 1 }
    process.env.TMPDIR = folder
  }
  return () => {
    const run = shared[key]!
    if (--run.projects > 0) return
    delete shared[key]
    process.removeListener("exit", run.onExit)
    process.removeListener("SIGINT", run.onSignal)
    process.removeListener("SIGTERM", run.onSignal)
    if (run.previousTmpdir === undefined) delete process.env.TMPDIR
    else process.env.TMPDIR = run.previousTmpdir
    let problems: Array<string>
    try {
      problems = check(run)
    } finally {
      rmSync(run.folder, { recursive: true, force: true, maxRetries: 5 })
    }
    if (problems.length > 0) throw new Error(`The test run left things behind (each test file must remove what it made):\n${problems.join("\n")}`)
  }
}
