/**
 * How much memory does the gateway take, idle and per live session (agents excluded)?
 * Both gateways are started fresh here (with a GC hook preloaded, so heap figures are after a
 * full GC): idle RSS a few seconds after start, then RSS and heap growth over N live sessions
 * that have each run one turn.
 */
import { type Bench, type Question } from "./support/bench.js"
import {
  closeSession,
  createSession,
  type Gateway,
  memorySnapshot,
  startBare,
  startClawdforge,
  stopGateway,
  turn
} from "./support/gateways.js"
import { sleep, vmRssKb } from "./support/processes.js"
import { mapLimit, round } from "./support/stats.js"

const perSession = async (gateway: Gateway, sessions: number) => {
  // A warm-up of the same shape first (creates five at a time, then a turn on each at once), so
  // that what a first burst costs once is not counted per session: loading and compiling code, and
  // V8 growing its young generation (which it keeps after a GC) under the burst's allocations.
  const warm = await mapLimit(Array.from({ length: 10 }), 5, () => createSession(gateway))
  for (let i = 0; i < 5; i++) await Promise.all(warm.map((id) => turn(gateway, id)))
  await mapLimit(warm, 10, (id) => closeSession(gateway, id))
  const before = await memorySnapshot(gateway)
  const ids = await mapLimit(Array.from({ length: sessions }), 5, () => createSession(gateway))
  await Promise.all(ids.map((id) => turn(gateway, id)))
  const after = await memorySnapshot(gateway)
  await mapLimit(ids, 10, (id) => closeSession(gateway, id))
  const grow = (key: keyof typeof before) => round((after[key] - before[key]) / sessions, 1)
  return {
    sessions,
    before,
    after,
    perSessionKb: { rssSettled: grow("rssSettledKb"), rssAfterGc: grow("rssAfterGcKb"), heapUsed: grow("heapUsedKb") }
  }
}

export const memory: Question = {
  name: "memory",
  run: async ({ sizes, note }: Bench) => {
    const [gateway, bare] = await Promise.all([startClawdforge({ gcHook: true }), startBare({ gcHook: true })])
    try {
      await sleep(sizes.idleMs)
      const idleKb = { gateway: vmRssKb(gateway.pid), bare: vmRssKb(bare.pid) }
      note(`memory over ${sizes.memorySessions} live sessions`)
      const gatewaySessions = await perSession(gateway, sizes.memorySessions)
      const bareSessions = await perSession(bare, sizes.memorySessions)
      const kb = gatewaySessions.perSessionKb
      const worst = Math.max(kb.rssAfterGc, kb.heapUsed)
      const mb = (x: number) => `${(x / 1024).toFixed(1)} MB`
      return {
        results: { idleRssKb: idleKb, perSession: { gateway: gatewaySessions, bare: bareSessions } },
        rows: [
          {
            metric: "idle RSS",
            gateway: mb(idleKb.gateway),
            bare: mb(idleKb.bare),
            target: "< 120 MB",
            pass: idleKb.gateway < 120 * 1024,
            note: `${sizes.idleMs / 1000} s after start`
          },
          {
            metric: `RSS per live session (${sizes.memorySessions})`,
            gateway: `${kb.rssAfterGc} KB`,
            bare: `${bareSessions.perSessionKb.rssAfterGc} KB`,
            ratio: `${kb.heapUsed} KB heap`,
            target: "< 256 KB (RSS, heap)",
            pass: worst < 256,
            note: `after GC, agents excluded; ${gatewaySessions.before.rssAfterGcKb}->${gatewaySessions.after.rssAfterGcKb} KB`
          },
          {
            metric: "  (settled, no GC)",
            gateway: `${kb.rssSettled} KB`,
            bare: `${bareSessions.perSessionKb.rssSettled} KB`
          }
        ]
      }
    } finally {
      await Promise.all([stopGateway(gateway), stopGateway(bare)])
    }
  }
}
