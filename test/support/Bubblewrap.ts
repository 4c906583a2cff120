/**
 * Whether this machine can run the sandbox tests: `bwrap` (Debian's `bubblewrap`) is on PATH and a
 * trial sandbox starts. Only an OS package gives it, so a fresh machine may lack it: those tests
 * then skip (`describe.skipIf(!bwrapAvailable)`), and this file, a global setup of both projects,
 * prints `bwrapMissingNote` once for the run. `.ci/run` installs it, so CI runs them.
 */
import { spawnSync } from "node:child_process"

export const bwrapAvailable: boolean = spawnSync("bwrap", ["--ro-bind", "/", "/", "true"], {
  stdio: "ignore",
  timeout: 10_000
}).status === 0

export const bwrapMissingNote = "bubblewrap (bwrap) is not installed: the sandbox tests skip; apt-get install -y bubblewrap"

const printed = Symbol.for("clawdforge.bwrapMissingNote")

/** Vitest global setup: the note, once per run (each project loads this file afresh). */
export default function setup() {
  const shared = globalThis as { [printed]?: true }
  if (bwrapAvailable || shared[printed]) return
  shared[printed] = true
  console.log(bwrapMissingNote)
}
