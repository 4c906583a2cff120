/**
 * How long does `POST /sessions` take? Against spawn + initialize + session/new done directly
 * (the agent's own start dominates), and against the bare gateway doing the same over HTTP.
 */
import { type Bench, ms, type Question, ratio } from "./support/bench.js"
import { startDirect, stopDirect } from "./support/direct.js"
import { closeSession, createSession, type Gateway } from "./support/gateways.js"
import { now, summary } from "./support/stats.js"

/** Times each create only; closing the session is outside the timing. */
const timeCreates = async (create: () => Promise<() => Promise<void>>, warmup: number, count: number) => {
  const samples: Array<number> = []
  for (let i = 0; i < warmup + count; i++) {
    const t0 = now()
    const close = await create()
    if (i >= warmup) samples.push(now() - t0)
    await close()
  }
  return summary(samples)
}

const overHttp = (gateway: Gateway) => async () => {
  const id = await createSession(gateway)
  return () => closeSession(gateway, id)
}

export const create: Question = {
  name: "create",
  run: async (bench: Bench) => {
    const { sizes } = bench
    const direct = await timeCreates(async () => {
      const agent = await startDirect()
      return () => stopDirect(agent)
    }, sizes.createWarmup, sizes.creates)
    const bare = await timeCreates(overHttp(await bench.bare()), sizes.createWarmup, sizes.creates)
    const gateway = await timeCreates(overHttp(await bench.gateway()), sizes.createWarmup, sizes.creates)
    return {
      results: { direct, bare, gateway },
      rows: [{
        metric: "create p50 ms",
        gateway: ms(gateway.p50),
        bare: ms(bare.p50),
        direct: ms(direct.p50),
        ratio: ratio(gateway.p50, direct.p50, "direct"),
        target: "<= 1.1x direct",
        pass: gateway.p50 <= 1.1 * direct.p50,
        note: `${ratio(gateway.p50, bare.p50, "bare")}, ${sizes.creates} creates`
      }]
    }
  }
}
