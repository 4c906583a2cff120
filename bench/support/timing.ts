/** The timing loops the questions share: sequential round trips, and turns per second. */
import { cpuMsOf, sleep } from "./processes.js"
import { now, round, summary } from "./stats.js"

/**
 * Sequential round trips after a warm-up, with the CPU time this process (the client) and, when
 * given, another process (the server) spent per round trip, in ms.
 */
export const timeSequential = async (
  roundTrip: () => Promise<unknown>,
  warmup: number,
  count: number,
  serverPid?: number
) => {
  for (let i = 0; i < warmup; i++) await roundTrip()
  const samples: Array<number> = []
  const client0 = process.cpuUsage()
  const server0 = serverPid === undefined ? 0 : cpuMsOf(serverPid)
  for (let i = 0; i < count; i++) {
    const t0 = now()
    await roundTrip()
    samples.push(now() - t0)
  }
  const client = process.cpuUsage(client0)
  return {
    ...summary(samples),
    clientCpuMs: round((client.user + client.system) / 1000 / count),
    ...(serverPid === undefined ? {} : { serverCpuMs: round((cpuMsOf(serverPid) - server0) / count) })
  }
}

/** Each of `warmup + count` calls timed, the warm-up ones dropped. */
export const timeEach = async (call: () => Promise<unknown>, warmup: number, count: number) => {
  const samples: Array<number> = []
  for (let i = 0; i < warmup + count; i++) {
    const t0 = now()
    await call()
    if (i >= warmup) samples.push(now() - t0)
  }
  return summary(samples)
}

/**
 * Aggregate turns per second: one loop per session, turns counted in a window after a warm-up;
 * with the server's CPU per turn in that window when its pid is given.
 */
export const turnsPerSecond = async (
  loops: ReadonlyArray<() => Promise<unknown>>,
  window: { readonly warmupMs: number; readonly ms: number },
  serverPid?: number
) => {
  const from = now() + window.warmupMs
  const until = from + window.ms
  let counted = 0
  let server0 = 0
  let server1 = 0
  const cpuAt = (ms: number, set: (cpu: number) => void) =>
    sleep(ms).then(() => set(serverPid === undefined ? 0 : cpuMsOf(serverPid)))
  await Promise.all([
    cpuAt(window.warmupMs, (cpu) => server0 = cpu),
    cpuAt(window.warmupMs + window.ms, (cpu) => server1 = cpu),
    ...loops.map(async (turn) => {
      while (now() < until) {
        await turn()
        const t = now()
        if (t >= from && t <= until) counted++
      }
    })
  ])
  return {
    turnsPerSecond: round(counted / (window.ms / 1000), 0),
    ...(serverPid === undefined ? {} : { serverCpuMsPerTurn: round((server1 - server0) / counted) })
  }
}
