/**
 * How long does one streamed turn of 20,000 chunks take? `POST /sessions/{id}/turn/stream` with
 * `chunks 20000`, from the request to the end of the stream (`event: done`); the median of a few,
 * after a warm-up, against the bare gateway and the same prompt over direct ACP.
 */
import { type Bench, ms, type Question, ratio } from "./support/bench.js"
import { directPrompt, startDirect, stopDirect } from "./support/direct.js"
import { closeSession, createSession, type Gateway, streamTurn } from "./support/gateways.js"
import { timeEach } from "./support/timing.js"

const streamed = async (gateway: Gateway, prompt: string, chunks: number, warmup: number, count: number) => {
  const id = await createSession(gateway)
  try {
    return await timeEach(async () => {
      const { acpEvents, done } = await streamTurn(gateway, id, prompt)
      // The prompt request, every chunk, the prompt response.
      if (acpEvents < chunks || done.stop_reason !== "end_turn") {
        throw new Error(`${gateway.name} stream: ${acpEvents} acp events, ${JSON.stringify(done)}`)
      }
    }, warmup, count)
  } finally {
    await closeSession(gateway, id)
  }
}

export const streaming: Question = {
  name: "stream",
  run: async (bench: Bench) => {
    const { sizes } = bench
    const chunks = sizes.streamChunks
    const prompt = `chunks ${chunks}`
    const agent = await startDirect()
    const direct = await timeEach(async () => {
      const before = agent.updates()
      await directPrompt(agent, prompt)
      if (agent.updates() - before !== chunks) throw new Error(`direct stream: ${agent.updates() - before} updates`)
    }, sizes.streamWarmup, sizes.streams).finally(() => stopDirect(agent))
    const bare = await streamed(await bench.bare(), prompt, chunks, sizes.streamWarmup, sizes.streams)
    const gateway = await streamed(await bench.gateway(), prompt, chunks, sizes.streamWarmup, sizes.streams)
    return {
      results: { chunks, direct, bare, gateway },
      rows: [{
        metric: `stream ${chunks} chunks, ms`,
        gateway: ms(gateway.p50),
        bare: ms(bare.p50),
        direct: ms(direct.p50),
        ratio: ratio(gateway.p50, bare.p50, "bare"),
        target: "<= 1.3x bare",
        pass: gateway.p50 <= 1.3 * bare.p50,
        note: `median of ${sizes.streams}, to event: done`
      }]
    }
  }
}
