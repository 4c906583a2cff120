/**
 * How much CPU does the gateway process itself spend per turn with 10 sessions busy at once?
 * A fixed number of turns per session, all sessions in parallel; utime + stime of the gateway
 * process from /proc/<pid>/stat (its agents are other processes: not counted).
 */
import { type Bench, ms, type Question, ratio } from "./support/bench.js"
import { closeSession, createSession, type Gateway, turn } from "./support/gateways.js"
import { cpuMsOf } from "./support/processes.js"
import { mapLimit, now, round } from "./support/stats.js"

const cpuPerTurn = async (gateway: Gateway, sessions: number, warmup: number, turnsPerSession: number) => {
  const ids = await mapLimit(Array.from({ length: sessions }), 5, () => createSession(gateway))
  const loop = (count: number) => Promise.all(ids.map(async (id) => {
    for (let i = 0; i < count; i++) await turn(gateway, id)
  }))
  try {
    await loop(warmup)
    const cpu0 = cpuMsOf(gateway.pid)
    const t0 = now()
    await loop(turnsPerSession)
    const wallMs = now() - t0
    const turns = sessions * turnsPerSession
    return {
      turns,
      cpuMsPerTurn: round((cpuMsOf(gateway.pid) - cpu0) / turns),
      turnsPerSecond: round(turns / (wallMs / 1000), 0)
    }
  } finally {
    await mapLimit(ids, 10, (id) => closeSession(gateway, id))
  }
}

export const cpu: Question = {
  name: "cpu",
  run: async (bench: Bench) => {
    const { sizes } = bench
    const n = sizes.cpuSessions
    const bare = await cpuPerTurn(await bench.bare(), n, sizes.cpuWarmupTurns, sizes.cpuTurnsPerSession)
    const gateway = await cpuPerTurn(await bench.gateway(), n, sizes.cpuWarmupTurns, sizes.cpuTurnsPerSession)
    return {
      results: { sessions: n, gateway, bare },
      rows: [{
        metric: `server CPU ms/turn, ${n} sessions`,
        gateway: ms(gateway.cpuMsPerTurn),
        bare: ms(bare.cpuMsPerTurn),
        ratio: ratio(gateway.cpuMsPerTurn, bare.cpuMsPerTurn, "bare"),
        target: "< 0.8 ms, <= 4x bare",
        pass: gateway.cpuMsPerTurn < 0.8 && gateway.cpuMsPerTurn <= 4 * bare.cpuMsPerTurn,
        note: `${gateway.turns} turns, gateway process only`
      }]
    }
  }
}
