/**
 * What does seeing a turn's `changes` cost? On a workspace of 10,000 files (100 folders of 100)
 * of which a turn changes 10: the snapshot at the turn's end (what it adds to the turn's end,
 * target < 50 ms) and at its start, timed on the gateway's own `WorkspaceChanges` in this process;
 * then the whole turn over HTTP (the echo agent's `edit` changing 10 files) on such a workspace
 * against the same turn on an empty one, on the shared gateway. And the common case, a turn that
 * changes nothing: its end on an empty workspace (target < 1 ms) and on one of 1,000 files (the
 * in-process walk, no git: `WorkspaceManifest`), with the git processes it started (none wanted).
 */
import { ConfigProvider, Effect, Layer, ManagedRuntime } from "effect"
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import os from "node:os"
import { join } from "node:path"
import type { AppName, SessionId } from "../src/domain/Ids.js"
import type { Session } from "../src/domain/Session.js"
import { snapshotsDirOf, WorkspaceChanges } from "../src/services/workspaces/WorkspaceChanges.js"
import { type Bench, ms, type Question } from "./support/bench.js"
import { closeSession, createSession, type Gateway, turn } from "./support/gateways.js"
import { expectOk } from "./support/http.js"
import { work } from "./support/processes.js"
import { now, round, summary } from "./support/stats.js"

const folders = 100
const filesPerFolder = 100
const changed = 10
const warmup = 3
const samples = 20

/**
 * 10,000 small text files, as a source tree has them, given to the agent's user as the gateway's
 * uploads are (a sandboxed agent runs as 65534 when the gateway is root: CLAWDFORGE_AGENT_UID).
 */
const fill = (dir: string, count = folders * filesPerFolder) => {
  for (let d = 0; d * filesPerFolder < count; d++) {
    mkdirSync(join(dir, `src${d}`), { recursive: true })
    for (let f = 0; f < filesPerFolder && d * filesPerFolder + f < count; f++) {
      writeFileSync(join(dir, `src${d}`, `file${f}.ts`), `export const value${d}_${f} = ${d * f}\n`.repeat(1 + (f % 20)))
    }
  }
  if (process.getuid?.() === 0) execFileSync("chown", ["-R", "65534:65534", dir])
}

/** The edits of sample `i`: `changed` files spread over the tree, each given new content. */
const edits = (i: number) =>
  Object.fromEntries(Array.from({ length: changed }, (_, k) => [
    `src${(k * 11 + i) % folders}/file${(k * 7 + i) % filesPerFolder}.ts`,
    `// edited in turn ${i}\nexport const edited = ${i}\n`
  ]))

/**
 * The CPU time of this process's waited-for children so far (ms; `/proc/self/stat` cutime + cstime,
 * in clock ticks of 10 ms): what a snapshot's processes cost whatever else the machine runs.
 */
const childCpuMs = () => {
  const fields = readFileSync("/proc/self/stat", "utf8").replace(/^.*\) /, "").split(" ")
  return (Number(fields[13]) + Number(fields[14])) * 10
}

/** The snapshots alone: the gateway's service in this process, on a workspace of its own. */
export const snapshotCost = async () => {
  const root = join(work, "changes-direct")
  const cwd = join(root, "bench", "ws")
  mkdirSync(cwd, { recursive: true })
  fill(cwd)
  const runtime = ManagedRuntime.make(
    WorkspaceChanges.Default.pipe(
      Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["CLAWDFORGE_WORKSPACE_ROOT", root]]))))
    )
  )
  try {
    const session = { app_name: "bench" as AppName, session_id: "bench-changes-0001" as SessionId, cwd, turn_count: 0 } as Session
    const run = <A>(effect: (changes: WorkspaceChanges) => Effect.Effect<A>) =>
      runtime.runPromise(Effect.flatMap(WorkspaceChanges, effect))
    // The first snapshot hashes every file: what a session's first turn on a big workspace pays once.
    let t0 = now()
    let start = await run((c) => c.turnStarts(session))
    const first = now() - t0
    const starts: Array<number> = []
    const ends: Array<number> = []
    let startCpu = 0
    let endCpu = 0
    let listed = 0
    for (let i = 0; i < warmup + samples; i++) {
      let cpu0 = childCpuMs()
      t0 = now()
      start = await run((c) => c.turnStarts(session))
      const startMs = now() - t0
      const startCpuMs = childCpuMs() - cpu0
      // The turn: 10 files rewritten.
      for (const [path, text] of Object.entries(edits(i))) writeFileSync(join(cwd, path), text)
      cpu0 = childCpuMs()
      t0 = now()
      const changes = await run((c) => c.turnEnds(session, i + 1, start))
      const endMs = now() - t0
      const endCpuMs = childCpuMs() - cpu0
      if (changes === undefined) throw new Error("the turn's changes could not be seen")
      listed = changes.length
      if (i >= warmup) {
        starts.push(startMs)
        ends.push(endMs)
        startCpu += startCpuMs
        endCpu += endCpuMs
      }
    }
    return {
      first,
      start: summary(starts),
      end: summary(ends),
      startCpuMs: startCpu / samples,
      endCpuMs: endCpu / samples,
      listed
    }
  } finally {
    await runtime.dispose()
  }
}

/** The index of a session's private repository: every git snapshot writes a new one. */
const indexStamp = (gitDir: string) => {
  const path = join(gitDir, "index")
  return existsSync(path) ? String(statSync(path, { bigint: true }).mtimeNs) : "none"
}

/**
 * Turns that change nothing on a workspace of `count` files, on the gateway's service in this
 * process: each turn's start and end timed, and the snapshots git took (the index rewritten).
 */
export const quietCost = async (count: number) => {
  const root = join(work, `changes-quiet-${count}`)
  const cwd = join(root, "bench", "ws")
  mkdirSync(cwd, { recursive: true })
  fill(cwd, count)
  const runtime = ManagedRuntime.make(
    WorkspaceChanges.Default.pipe(
      Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["CLAWDFORGE_WORKSPACE_ROOT", root]]))))
    )
  )
  try {
    const session = { app_name: "bench" as AppName, session_id: "bench-quiet-0001" as SessionId, cwd, turn_count: 0 } as Session
    const gitDir = snapshotsDirOf(root, "bench", session.session_id)
    const run = <A>(effect: (changes: WorkspaceChanges) => Effect.Effect<A>) =>
      runtime.runPromise(Effect.flatMap(WorkspaceChanges, effect))
    await run((c) => c.begin(session))
    // Past the racy window, the files written above are settled (the first turn's start still asks git).
    await new Promise((resolve) => setTimeout(resolve, 1100))
    const starts: Array<number> = []
    const ends: Array<number> = []
    let gitRuns = 0
    for (let i = 0; i < warmup + samples; i++) {
      const before = indexStamp(gitDir)
      let t0 = now()
      const start = await run((c) => c.turnStarts(session))
      const startMs = now() - t0
      const between = indexStamp(gitDir)
      t0 = now()
      const changes = await run((c) => c.turnEnds(session, i + 1, start))
      const endMs = now() - t0
      if (changes === undefined || changes.length > 0) throw new Error(`a quiet turn's changes: ${JSON.stringify(changes)}`)
      if (i >= warmup) {
        starts.push(startMs)
        ends.push(endMs)
        gitRuns += Number(between !== before) + Number(indexStamp(gitDir) !== between)
      }
    }
    return { start: summary(starts), end: summary(ends), gitRuns }
  } finally {
    await runtime.dispose()
  }
}

/** Turns over HTTP on a session whose workspace is filled first (or left empty). */
const turnsOver = async (gateway: Gateway, filled: boolean) => {
  const id = await createSession(gateway)
  try {
    const cwd = expectOk(await gateway.call("GET", `/sessions/${id}`), "get session").cwd as string
    if (filled) fill(cwd)
    const times: Array<number> = []
    let listed = 0
    for (let i = 0; i < warmup + samples; i++) {
      const t0 = now()
      const reply = await turn(gateway, id, `edit ${JSON.stringify(edits(i))}`)
      if (i >= warmup) times.push(now() - t0)
      listed = (reply.changes as ReadonlyArray<unknown>).length
    }
    return { turn: summary(times), listed }
  } finally {
    await closeSession(gateway, id)
  }
}

export const changes: Question = {
  name: "changes",
  run: async (bench: Bench) => {
    const direct = await snapshotCost()
    const quietEmpty = await quietCost(0)
    const quietFiles = await quietCost(1_000)
    const gateway = await bench.gateway()
    const empty = await turnsOver(gateway, false)
    const big = await turnsOver(gateway, true)
    const files = folders * filesPerFolder
    return {
      results: {
        files,
        changed,
        first_snapshot_ms: round(direct.first, 1),
        turn_end: direct.end,
        turn_start: direct.start,
        turn_end_cpu_ms: round(direct.endCpuMs, 1),
        turn_start_cpu_ms: round(direct.startCpuMs, 1),
        quiet_turn_end_empty: quietEmpty.end,
        quiet_turn_start_empty: quietEmpty.start,
        quiet_turn_end_1000_files: quietFiles.end,
        quiet_git_runs: quietEmpty.gitRuns + quietFiles.gitRuns,
        turn_empty_workspace: empty.turn,
        turn_big_workspace: big.turn
      },
      rows: [
        {
          metric: "changes at a turn's end p50 ms",
          gateway: ms(direct.end.p50),
          target: "< 50 ms",
          pass: direct.end.p50 < 50,
          note: `${files} files, ${changed} changed (${direct.listed} listed); p99 ${ms(direct.end.p99)}; ` +
            `its processes' CPU ${ms(direct.endCpuMs)} ms (load ${os.loadavg()[0]!.toFixed(1)}); ` +
            `the start's snapshot ${ms(direct.start.p50)} (CPU ${ms(direct.startCpuMs)}); the first ${ms(direct.first)} (hashes all)`
        },
        {
          metric: "turn end, nothing changed, empty workspace p50 ms",
          gateway: ms(quietEmpty.end.p50),
          target: "< 1 ms",
          pass: quietEmpty.end.p50 < 1,
          note: `p99 ${ms(quietEmpty.end.p99)}; its start ${ms(quietEmpty.start.p50)}; ` +
            `${quietEmpty.gitRuns} git snapshots in ${samples} turns`
        },
        {
          metric: "turn end, nothing changed, 1,000 files p50 ms",
          gateway: ms(quietFiles.end.p50),
          note: `walked in process: p99 ${ms(quietFiles.end.p99)}; its start ${ms(quietFiles.start.p50)}; ` +
            `${quietFiles.gitRuns} git snapshots in ${samples} turns`
        },
        {
          metric: "turn p50 ms, 10k-file workspace",
          gateway: ms(big.turn.p50),
          note: `the same turn on an empty workspace ${ms(empty.turn.p50)} (+${ms(big.turn.p50 - empty.turn.p50)}); ` +
            `echo's edit of ${changed} files, ${big.listed} changes listed`
        }
      ]
    }
  }
}
