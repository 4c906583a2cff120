/**
 * `npm run bench`: what the gateway costs, on one machine, in one run, with the demo agent
 * answering at once. It builds `dist/` (`npm run build`, then a snapshot: support/build.ts), asks
 * each question in order, a file each, prints one table and writes `bench/results.json`.
 *
 * Two floors: the bare pass-through gateway (`bench/bare-gateway.mjs`: plain node:http in front of
 * the same agent, nothing else) for everything HTTP, and the agent over one direct ACP connection
 * (no HTTP at all). clawdforge runs as `npm start` runs it (`node dist/...` from package.json), with its default
 * logging (to a file), as a child process; so does the bare gateway.
 *
 * Environment:
 *   BENCH_ONLY=turn,cpu     only these questions (then bench/results.json is left as it is)
 *   BENCH_CPU_PROF=<dir>    `--cpu-prof` profiles of the shared clawdforge gateway (and the flood's, in flood/), written there on exit
 *   BENCH_NO_BUILD=1        skip `npm run build` and run the dist/ already there (e.g. while profiling)
 *   BENCH_KEEP=1            keep the scratch folder (ledgers, logs) and print its path
 */
import { writeFileSync } from "node:fs"
import os from "node:os"
import { join, resolve } from "node:path"
import { acpx } from "./acpx.js"
import { changes } from "./changes.js"
import { claudeRun } from "./claude-run.js"
import { cluster } from "./cluster.js"
import { cpu } from "./cpu.js"
import { create } from "./create.js"
import { flood } from "./flood.js"
import { files } from "./files.js"
import { hibernation } from "./hibernation.js"
import { ledger } from "./ledger.js"
import { memory } from "./memory.js"
import { postgres } from "./postgres.js"
import { sandbox } from "./sandbox.js"
import { startup } from "./startup.js"
import { storage } from "./storage.js"
import { streaming } from "./streaming.js"
import { type Answer, type Bench, type Question, type Row, sizes } from "./support/bench.js"
import { prepareGateway } from "./support/build.js"
import { cpuProfileArgs, type Gateway, startBare, startClawdforge, stopGateway } from "./support/gateways.js"
import { keepAlive } from "./support/http.js"
import { root } from "./support/paths.js"
import { cleanup, leftovers } from "./support/processes.js"
import { round } from "./support/stats.js"
import { throughput } from "./throughput.js"
import { turnLatency } from "./turn.js"
import { warm } from "./warm.js"

/**
 * In the order they run: fresh processes first (the ledger on PostgreSQL after the turn figures it
 * is compared with), the 100k-row ledger late, then the cost of storing
 * turns (read back through that gateway, written on a fresh file), acpx (no gateway) last.
 */
const questions: ReadonlyArray<Question> = [
  startup,
  memory,
  turnLatency,
  cpu,
  throughput,
  postgres,
  cluster,
  streaming,
  create,
  files,
  warm,
  sandbox,
  hibernation,
  claudeRun,
  ledger,
  storage,
  flood,
  changes,
  acpx
]

const note = (line: string) => console.error(`[bench] ${line}`)

const selected = (): ReadonlyArray<Question> => {
  const only = process.env.BENCH_ONLY?.split(",").map((name) => name.trim()).filter((name) => name.length > 0)
  if (only === undefined || only.length === 0) return questions
  const unknown = only.filter((name) => !questions.some((q) => q.name === name))
  if (unknown.length > 0) {
    throw new Error(`BENCH_ONLY: unknown ${unknown.join(", ")}; questions: ${questions.map((q) => q.name).join(", ")}`)
  }
  return questions.filter((q) => only.includes(q.name))
}

/** A gateway started on first use, and stopped at the end if it was. */
const shared = <G extends Gateway>(start: () => Promise<G>) => {
  let started: Promise<G> | undefined
  return {
    get: () => started ??= start(),
    stop: async () => {
      // A gateway that failed to start was never healthy; cleanup ends its process.
      const gateway = await started?.catch(() => undefined)
      if (gateway !== undefined) await stopGateway(gateway)
    }
  }
}

const tableOf = (rows: ReadonlyArray<Row>) => {
  const lines = [
    ["metric", "gateway", "bare", "direct", "ratio", "target", "", "note"],
    ...rows.map((r) => [
      r.metric,
      r.gateway ?? "",
      r.bare ?? "",
      r.direct ?? "",
      r.ratio ?? "",
      r.target ?? "",
      r.pass === undefined ? "" : r.pass ? "PASS" : "MISS",
      r.note ?? ""
    ])
  ]
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)))
  return lines.map((l) => l.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n")
}

const main = async () => {
  const started = Date.now()
  const chosen = selected()
  await prepareGateway(note)
  const cpus = os.cpus()
  const machine = {
    cpu: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    memory_gb: round(os.totalmem() / 2 ** 30, 1),
    loadavg_at_start: os.loadavg().map((x) => round(x, 2)),
    date: new Date().toISOString()
  }
  const gateway = shared(() => startClawdforge({ nodeArgs: cpuProfileArgs() }))
  const bare = shared(() => startBare())
  const bench: Bench = { sizes, gateway: gateway.get, bare: bare.get, note }

  const answers: Record<string, Answer & { readonly seconds: number }> = {}
  const rows: Array<Row> = []
  try {
    for (const question of chosen) {
      note(question.name)
      const t0 = Date.now()
      try {
        const answer = await question.run(bench)
        answers[question.name] = { ...answer, seconds: round((Date.now() - t0) / 1000, 1) }
        rows.push(...answer.rows)
      } catch (error) {
        // One failed question does not hide the others' figures.
        console.error(error)
        process.exitCode = 1
        const message = error instanceof Error ? error.message : String(error)
        rows.push({ metric: question.name, note: `ERROR: ${message.slice(0, 100)}` })
      }
      note(`${question.name}: ${round((Date.now() - t0) / 1000, 1)} s`)
    }
  } finally {
    await Promise.all([gateway.stop(), bare.stop()])
    if (process.env.BENCH_CPU_PROF !== undefined) note(`cpu profiles of the gateways in ${resolve(process.env.BENCH_CPU_PROF)}`)
  }

  const table = tableOf(rows)
  const duration_s = round((Date.now() - started) / 1000, 1)
  const loadavg_at_end = os.loadavg().map((x) => round(x, 2))
  console.log(
    `clawdforge bench: ${machine.cpu} x ${machine.cores} cores, node ${machine.node}, ${machine.date}, ` +
      `load ${machine.loadavg_at_start.join(" ")} at start, ${loadavg_at_end.join(" ")} at end`
  )
  console.log(table)
  const targets = Object.fromEntries(rows.filter((r) => r.pass !== undefined).map((r) => [r.metric, r.pass]))
  if (chosen.length === questions.length) {
    const results = Object.fromEntries(Object.entries(answers).map(([name, a]) => [name, { ...(a.results as object), seconds: a.seconds }]))
    const output = { machine: { ...machine, loadavg_at_end }, sizes, results, targets, duration_s, table }
    writeFileSync(join(root, "bench/results.json"), JSON.stringify(output, null, 2) + "\n")
    console.log(`results: bench/results.json (${duration_s} s)`)
  } else {
    console.log(`(${duration_s} s; BENCH_ONLY: bench/results.json not written)`)
  }
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => void cleanup().finally(() => process.exit(130)))
}

try {
  await main()
} catch (error) {
  console.error(error)
  process.exitCode = 1
} finally {
  await cleanup()
  if (leftovers.length > 0) {
    console.error(`[bench] had to kill: ${leftovers.join(", ")}`)
    process.exitCode = 1
  }
  keepAlive.destroy()
}
