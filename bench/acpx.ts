/**
 * What would a user otherwise run? `acpx --format json prompt -s NAME` on a warm acpx session with
 * the same demo agent: time to the result line (the end of the turn), and to acpx's exit (it waits
 * about 1 s of silence). acpx gets its own HOME, and every process and socket folder it leaves is removed.
 */
import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { mkdirSync, readFileSync, rmSync } from "node:fs"
import { join } from "node:path"
import { type Bench, ms, type Question } from "./support/bench.js"
import { acpxBin, demoAgent, root } from "./support/paths.js"
import { leftovers, pidsWithHome, sleep, track, work } from "./support/processes.js"
import { now, summary } from "./support/stats.js"

interface AcpxOutcome {
  readonly code: number | null
  readonly resultMs: number
  readonly exitMs: number
  readonly stdout: string
}

export const acpx: Question = {
  name: "acpx",
  run: async ({ sizes }: Bench) => {
    const home = join(work, "acpx-home")
    const cwd = join(work, "acpx-cwd")
    mkdirSync(home, { recursive: true })
    mkdirSync(cwd, { recursive: true })
    const agentCommand = `${process.execPath} ${demoAgent}`
    const run = (...args: Array<string>) =>
      new Promise<AcpxOutcome>((done, fail) => {
        const t0 = now()
        let resultMs = NaN
        let stdout = ""
        const child = track(spawn(acpxBin, ["--format", "json", "--agent", agentCommand, ...args], {
          cwd,
          env: { ...process.env, HOME: home },
          stdio: ["ignore", "pipe", "pipe"]
        }))
        child.stdout!.on("data", (chunk: Buffer) => {
          stdout += chunk
          if (Number.isNaN(resultMs) && /"result":\{"stopReason"/.test(stdout)) resultMs = now() - t0
        })
        child.stderr!.resume()
        child.once("error", fail)
        child.once("close", (code) => done({ code, resultMs, exitMs: now() - t0, stdout }))
      })
    const created = await run("sessions", "new", "--name", "bench")
    if (created.code !== 0) throw new Error(`acpx sessions new failed: ${created.stdout}`)
    const toResult: Array<number> = []
    const toExit: Array<number> = []
    try {
      for (let i = 0; i < 1 + sizes.acpxTurns; i++) {
        const turn = await run("prompt", "-s", "bench", "bench")
        if (turn.code !== 0 || Number.isNaN(turn.resultMs)) throw new Error(`acpx prompt failed: ${turn.stdout}`)
        if (i === 0) continue // the first prompt starts the agent: warm-up
        toResult.push(turn.resultMs)
        toExit.push(turn.exitMs)
      }
    } finally {
      await run("sessions", "close", "bench")
      const deadline = Date.now() + 5000
      while (pidsWithHome(home).length > 0 && Date.now() < deadline) await sleep(100)
      for (const pid of pidsWithHome(home)) {
        leftovers.push(`acpx process ${pid}`)
        process.kill(pid, "SIGKILL")
      }
      // acpx keeps its queue sockets in /tmp/acpx-<sha256(HOME), 10 hex>, whatever TMPDIR says.
      rmSync(join("/tmp", `acpx-${createHash("sha256").update(home).digest("hex").slice(0, 10)}`), { recursive: true, force: true })
    }
    const version = JSON.parse(readFileSync(join(root, "node_modules/acpx/package.json"), "utf8")).version as string
    const result = summary(toResult)
    const exit = summary(toExit)
    return {
      results: { version, toResult: result, toExit: exit },
      rows: [{
        metric: "acpx prompt p50 ms, warm",
        direct: `${ms(result.p50)} result`,
        ratio: `${ms(exit.p50)} exit`,
        note: `${sizes.acpxTurns} prompts, acpx ${version}`
      }]
    }
  }
}
