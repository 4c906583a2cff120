import { Effect, Layer, Ref } from "effect"
import { PoolFull } from "../../src/domain/Errors.js"
import type { AcpMessage } from "../../src/domain/Session.js"
import { extractStopReason } from "../../src/services/agents/AcpMessages.js"
import type { AgentHandle } from "../../src/services/agents/AgentDriver.js"
import { AgentPool } from "../../src/services/sessions/AgentPool.js"
import { noSettings } from "../../src/services/agents/AgentSettings.js"
import { noUsage } from "../../src/services/agents/UsageMeter.js"

/** What a test sets on the in-process fake pool (the seed's FakeAcpxManager). */
export interface FakePoolControl {
  maxLiveSessions: number
  nextTurnEvents: ReadonlyArray<AcpMessage>
  readonly prompts: Array<string>
}

const defaultEvents: ReadonlyArray<AcpMessage> = [
  { jsonrpc: "2.0", id: "req-1", result: { stopReason: "end_turn" } }
]

/** An in-process pool: no processes; a turn answers with `nextTurnEvents`. */
export const makeFakePool = (maxLiveSessions = 8) => {
  const control: FakePoolControl = { maxLiveSessions, nextTurnEvents: defaultEvents, prompts: [] }
  const layer = Layer.effect(
    AgentPool,
    Effect.gen(function*() {
      const taken = yield* Ref.make(0)
      let nextId = 0
      const reserve = Effect.acquireRelease(
        Ref.modify(taken, (n) => n < control.maxLiveSessions ? [true, n + 1] : [false, n]).pipe(
          Effect.filterOrFail((ok) => ok, () =>
            new PoolFull({ message: "fake pool is full", capacity: control.maxLiveSessions }))
        ),
        () => Ref.update(taken, (n) => n - 1)
      ).pipe(Effect.asVoid)
      const start = () =>
        Effect.sync((): AgentHandle => ({
          agentSessionId: `fake-${++nextId}`,
          origin: "new",
          capabilities: undefined,
          pid: undefined,
          settings: () => noSettings,
          configure: () => Effect.void,
          isAlive: Effect.succeed(true),
          cancel: Effect.void,
          prompt: (input) =>
            Effect.sync(() => {
              control.prompts.push(input.text)
              const events = control.nextTurnEvents
              return { stopReason: extractStopReason(events) ?? "end_turn", usage: noUsage, events }
            })
        }))
      return AgentPool.make({
        capacity: control.maxLiveSessions,
        live: Ref.get(taken),
        reserve,
        reserveFor: () => reserve,
        reserveSpare: reserve,
        addRoomMaker: () => Effect.void,
        start
      })
    })
  )
  return { control, layer }
}
