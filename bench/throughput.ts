/**
 * How many turns per second with 1, 10 and 50 sessions busy at once? One loop per session, turns
 * counted in a window after a warm-up; clawdforge against the bare gateway and direct ACP.
 */
import { type Bench, ms, type Question, ratio } from "./support/bench.js"
import { directPrompt, startDirect, stopDirect } from "./support/direct.js"
import { closeSession, createSession, type Gateway, turn } from "./support/gateways.js"
import { mapLimit } from "./support/stats.js"
import { turnsPerSecond } from "./support/timing.js"

/** Turns per second over HTTP with `sessions` sessions each sending turns back to back. */
export const overHttp = async (gateway: Gateway, sessions: number, window: { warmupMs: number; ms: number }) => {
  const ids = await mapLimit(Array.from({ length: sessions }), 5, () => createSession(gateway))
  try {
    return await turnsPerSecond(ids.map((id) => () => turn(gateway, id)), window, gateway.pid)
  } finally {
    await mapLimit(ids, 10, (id) => closeSession(gateway, id))
  }
}

const overAcp = async (sessions: number, window: { warmupMs: number; ms: number }) => {
  const agents = await mapLimit(Array.from({ length: sessions }), 5, () => startDirect())
  try {
    return await turnsPerSecond(agents.map((agent) => () => directPrompt(agent)), window)
  } finally {
    await Promise.all(agents.map(stopDirect))
  }
}

export const throughput: Question = {
  name: "throughput",
  run: async (bench: Bench) => {
    const { sizes } = bench
    const results: Record<number, unknown> = {}
    const rows = []
    for (const n of sizes.throughputSessions) {
      bench.note(`throughput, ${n} session${n === 1 ? "" : "s"}`)
      const direct = await overAcp(n, sizes.throughputWindow)
      const bare = await overHttp(await bench.bare(), n, sizes.throughputWindow)
      const gateway = await overHttp(await bench.gateway(), n, sizes.throughputWindow)
      results[n] = { direct, bare, gateway }
      const targeted = n === 10
      rows.push({
        metric: `turns/s, ${n} session${n === 1 ? "" : "s"}`,
        gateway: String(gateway.turnsPerSecond),
        bare: String(bare.turnsPerSecond),
        direct: String(direct.turnsPerSecond),
        ratio: ratio(gateway.turnsPerSecond, bare.turnsPerSecond, "bare"),
        ...(targeted ? { target: ">= 0.4x bare", pass: gateway.turnsPerSecond >= 0.4 * bare.turnsPerSecond } : {}),
        note: `CPU/turn in window: ${ms(gateway.serverCpuMsPerTurn!)} gw, ${ms(bare.serverCpuMsPerTurn!)} bare`
      })
    }
    return { results, rows }
  }
}
