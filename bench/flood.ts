/**
 * Can one app starve another (issue 23)? App a's turn p95 and `GET /sessions` p95 on a fresh
 * gateway with the default limits, first while app b is idle, then while app b floods it
 * (`support/flooder.ts`, a process of its own): b's sessions each hold a hung turn with its queue
 * filled with 100 KB prompts up to the gateway's limit (and b keeps sending more, refused: the
 * gateway paces those refusals, CLAWDFORGE_REFUSALS_PER_SECOND, as it would for any client), and b
 * reads its big stored turn (the largest a turn stores by default, 16 MB) ten times in parallel,
 * again and again. Target: a's p95 under the flood at most 3 times its p95 when b is idle, same run.
 *
 * App a times sequential round trips from this process, a turn and a list alternately, so both
 * series see the same flood.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { join } from "node:path"
import { type Bench, ms, type Question } from "./support/bench.js"
import { type ClawdforgeGateway, closeSession, cpuProfileArgs, createSession, otherToken, startClawdforge, stopGateway } from "./support/gateways.js"
import { expectOk } from "./support/http.js"
import { root } from "./support/paths.js"
import { cpuMsOf, noteAgentsOf, sleep, stopProcess, track } from "./support/processes.js"
import { now, percentile, round } from "./support/stats.js"

/** Per phase: warm-up round trips of each kind, then the timed ones. */
const warmup = 50
const samples = 400
/** b's sessions with a hung turn and a full queue. */
const hungSessions = 4
/** The demo agent's chunks that make a turn past the default 16 MB it stores (truncated there). */
const bigTurnChunks = 120_000
const target = 3

interface Phase {
  readonly turn: ReadonlyArray<number>
  readonly list: ReadonlyArray<number>
}

/** a's round trips: a turn, then `GET /sessions`, `count` times, each timed in ms. */
const timeApp = async (gateway: ClawdforgeGateway, id: string, count: number): Promise<Phase> => {
  const turn: Array<number> = []
  const list: Array<number> = []
  for (let i = 0; i < count; i++) {
    let t0 = now()
    expectOk(await gateway.call("POST", `/sessions/${id}/turn`, { prompt: "bench" }), "a's turn")
    turn.push(now() - t0)
    t0 = now()
    expectOk(await gateway.call("GET", "/sessions"), "a's list")
    list.push(now() - t0)
  }
  return { turn, list }
}

/** b's big stored turn: queued, then polled until its end is stored. */
const bigStoredTurn = async (gateway: ClawdforgeGateway) => {
  const created = expectOk(await gateway.call("POST", "/sessions", { agent: "echo" }, otherToken), "b's create")
  const id = created.session_id as string
  const queued = await gateway.call("POST", `/sessions/${id}/turns`, { prompt: `chunks ${bigTurnChunks}` }, otherToken)
  if (queued.status !== 202) throw new Error(`b's big turn: HTTP ${queued.status}`)
  const deadline = Date.now() + 120_000
  for (;;) {
    const turn = expectOk(await gateway.call("GET", `/sessions/${id}/turns/1?events_limit=1`, undefined, otherToken), "b's turn")
    if (turn.status === "completed") return { id, events: turn.events_total as number, truncated: turn.truncated as boolean }
    if (Date.now() > deadline) throw new Error(`b's big turn is still ${turn.status}`)
    await sleep(200)
  }
}

type FlooderMessage =
  | { readonly ready: true; readonly queued: number }
  | {
    readonly counts: {
      readonly accepted: number
      readonly refused: number
      readonly other: number
      readonly failed: number
      readonly streams: number
      readonly streamBytes: number
    }
  }

/** The flooder's next message (or its failure). */
const nextMessage = (child: ChildProcess) =>
  new Promise<FlooderMessage>((done, fail) => {
    const onExit = (code: number | null) => fail(new Error(`the flooder exited (${code})`))
    child.once("exit", onExit)
    child.once("message", (message) => {
      child.off("exit", onExit)
      done(message as FlooderMessage)
    })
  })

const p95 = (series: ReadonlyArray<number>) => round(percentile(series, 95))

export const flood: Question = {
  name: "flood",
  run: async (bench: Bench) => {
    // A gateway of its own, as configured by default: the flood leaves the shared one alone.
    const gateway = await startClawdforge({ nodeArgs: cpuProfileArgs("flood") })
    let flooder: ChildProcess | undefined
    try {
      const a = await createSession(gateway)
      bench.note("flood: b's big stored turn")
      const big = await bigStoredTurn(gateway)
      noteAgentsOf(gateway.pid)

      await timeApp(gateway, a, warmup)
      const idle = await timeApp(gateway, a, samples)

      bench.note("flood: b floods")
      flooder = track(spawn(process.execPath, ["--import", "tsx", join(root, "bench/support/flooder.ts")], {
        cwd: root,
        env: {
          ...process.env,
          FLOOD_PORT: String(gateway.port),
          FLOOD_TOKEN: otherToken,
          FLOOD_BIG: big.id,
          FLOOD_HUNG: String(hungSessions)
        },
        stdio: ["ignore", "inherit", "inherit", "ipc"]
      }))
      // A flooder that died is reported by `nextMessage`, not as a send on its closed channel.
      flooder.on("error", () => undefined)
      const ready = await nextMessage(flooder)
      if (!("ready" in ready)) throw new Error("the flooder did not start")
      noteAgentsOf(gateway.pid)
      const floodStart = now()
      const cpuStart = { gateway: cpuMsOf(gateway.pid), flooder: cpuMsOf(flooder.pid!) }
      await timeApp(gateway, a, warmup)
      const flooded = await timeApp(gateway, a, samples)
      const floodSeconds = (now() - floodStart) / 1000
      // How busy the flood kept the gateway and b's client (a core each at most), same seconds.
      const cpu = {
        gateway: (cpuMsOf(gateway.pid) - cpuStart.gateway) / 10 / floodSeconds,
        flooder: (cpuMsOf(flooder.pid!) - cpuStart.flooder) / 10 / floodSeconds
      }
      const stopped = nextMessage(flooder)
      flooder.send("stop")
      const report = await stopped
      if (!("counts" in report)) throw new Error("the flooder sent no counts")
      const { counts } = report
      await closeSession(gateway, a)
      await gateway.call("DELETE", `/sessions/${big.id}`, undefined, otherToken)

      const turnIdle = p95(idle.turn)
      const turnFlood = p95(flooded.turn)
      const listIdle = p95(idle.list)
      const listFlood = p95(flooded.list)
      const note = `b: ${hungSessions} hung turns with ${ready.queued} queued 100 KB turns behind them, ` +
        `${counts.refused} more refused (${counts.failed} cut off); ${counts.streams} reads of its ${big.events}-message stored turn ` +
        `(${(counts.streamBytes / Math.max(1, counts.streams) / 1e6).toFixed(1)} MB each, 10 at a time) in ${
          floodSeconds.toFixed(1)
        } s (gateway ${cpu.gateway.toFixed(0)}% of a core, b's client ${cpu.flooder.toFixed(0)}%); n=${samples} each`
      const row = (what: string, idleP95: number, floodP95: number) => ({
        metric: `app a ${what} p95 ms, app b flooding`,
        gateway: `${ms(floodP95)} (idle ${ms(idleP95)})`,
        ratio: `${(floodP95 / idleP95).toFixed(2)}x idle`,
        target: `≤ ${target}×`,
        pass: floodP95 <= target * idleP95,
        note
      })
      return {
        results: {
          idle: { turnP95: turnIdle, listP95: listIdle, turnP50: round(percentile(idle.turn, 50)), listP50: round(percentile(idle.list, 50)) },
          flood: {
            turnP95: turnFlood,
            listP95: listFlood,
            turnP50: round(percentile(flooded.turn, 50)),
            listP50: round(percentile(flooded.list, 50)),
            seconds: round(floodSeconds, 1),
            cpuPercent: { gateway: round(cpu.gateway, 1), flooder: round(cpu.flooder, 1) }
          },
          b: { ...counts, queued: ready.queued, bigTurn: big }
        },
        rows: [row("turn", turnIdle, turnFlood), row("GET /sessions", listIdle, listFlood)]
      }
    } finally {
      if (flooder !== undefined) await stopProcess(flooder, 5000)
      await stopGateway(gateway)
    }
  }
}
