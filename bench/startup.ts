/**
 * How long from `npm start` (its `node dist/...` command, fresh data folder) to the first `/healthz` 200?
 * The median of a few starts, against the bare gateway started the same way on plain node.
 * (npm's own wrapper, a few hundred ms more, is not counted.)
 */
import { type Bench, type Question, ratio } from "./support/bench.js"
import { type Gateway, startBare, startClawdforge, stopGateway } from "./support/gateways.js"
import { npmStartArgs } from "./support/paths.js"
import { round, summary } from "./support/stats.js"

const startTimes = async (start: () => Promise<Gateway>, count: number) => {
  const samples: Array<number> = []
  for (let i = 0; i < count; i++) {
    const gateway = await start()
    samples.push(gateway.startMs)
    await stopGateway(gateway)
  }
  return summary(samples)
}

export const startup: Question = {
  name: "startup",
  run: async ({ sizes }: Bench) => {
    const gateway = await startTimes(() => startClawdforge(), sizes.starts)
    const bare = await startTimes(() => startBare(), sizes.starts)
    const s = (x: number) => `${round(x / 1000, 2).toFixed(2)} s`
    return {
      results: { gatewayMs: gateway, bareMs: bare },
      rows: [{
        metric: "start to /healthz 200 (median)",
        gateway: s(gateway.p50),
        bare: s(bare.p50),
        ratio: ratio(gateway.p50, bare.p50, "bare"),
        target: "< 1.0 s",
        pass: gateway.p50 < 1000,
        note: `node ${npmStartArgs().join(" ")}, ${sizes.starts} starts, fresh data dir`
      }]
    }
  }
}
