/**
 * How long does one turn take, sequentially, on one warm session with the demo agent answering at
 * once? `POST /sessions/{id}/turn` on loopback with keep-alive, against the bare gateway (the HTTP
 * floor) and the same prompt sent straight to the agent over one ACP connection (the floor
 * without HTTP). A second clawdforge with logging off shows what the default logging costs.
 */
import { type Bench, ms, type Question, ratio } from "./support/bench.js"
import { directPrompt, startDirect, stopDirect } from "./support/direct.js"
import { closeSession, createSession, type Gateway, startClawdforge, stopGateway, turn } from "./support/gateways.js"
import { timeSequential } from "./support/timing.js"

export const sequentialTurns = async (gateway: Gateway, warmup: number, count: number) => {
  const id = await createSession(gateway)
  try {
    return await timeSequential(() => turn(gateway, id), warmup, count, gateway.pid)
  } finally {
    await closeSession(gateway, id)
  }
}

export const turnLatency: Question = {
  name: "turn",
  run: async (bench: Bench) => {
    const { sizes } = bench
    const agent = await startDirect()
    const direct = await timeSequential(() => directPrompt(agent), sizes.turnWarmup, sizes.turns).finally(() =>
      stopDirect(agent)
    )
    const bare = await sequentialTurns(await bench.bare(), sizes.turnWarmup, sizes.turns)
    const gateway = await sequentialTurns(await bench.gateway(), sizes.turnWarmup, sizes.turns)
    bench.note("turn latency, clawdforge with logging off")
    const quiet = await startClawdforge({ env: { CLAWDFORGE_LOG_LEVEL: "off" } })
    const logOff = await sequentialTurns(quiet, sizes.turnWarmup, sizes.turnsLogOff).finally(() => stopGateway(quiet))
    return {
      results: { direct, bare, gateway, gatewayLogOff: logOff },
      rows: [
        {
          metric: "turn p50 ms, sequential",
          gateway: ms(gateway.p50),
          bare: ms(bare.p50),
          direct: ms(direct.p50),
          ratio: ratio(gateway.p50, bare.p50, "bare"),
          target: "< 1.5 ms, <= 1.5x bare",
          pass: gateway.p50 < 1.5 && gateway.p50 <= 1.5 * bare.p50,
          note: `${ratio(gateway.p50, direct.p50, "direct")}, ${sizes.turns} turns`
        },
        {
          metric: "turn p99 ms",
          gateway: ms(gateway.p99),
          bare: ms(bare.p99),
          direct: ms(direct.p99),
          ratio: ratio(gateway.p99, bare.p99, "bare")
        },
        {
          metric: "server CPU ms/turn, sequential",
          gateway: ms(gateway.serverCpuMs!),
          bare: ms(bare.serverCpuMs!),
          ratio: ratio(gateway.serverCpuMs!, bare.serverCpuMs!, "bare"),
          note: `client CPU/turn: ${ms(gateway.clientCpuMs)} http, ${ms(direct.clientCpuMs)} direct ACP`
        },
        {
          metric: "turn p50 ms, logging off",
          gateway: ms(logOff.p50),
          ratio: ratio(logOff.p50, gateway.p50, "default logging"),
          note: `CLAWDFORGE_LOG_LEVEL=off, ${ms(logOff.serverCpuMs!)} ms CPU/turn`
        }
      ]
    }
  }
}
