import { Effect, Ref } from "effect"
import { PoolFull } from "../../domain/Errors.js"
import { AcpDriver } from "../agents/AcpDriver.js"
import { AcpxDriver } from "../agents/AcpxDriver.js"
import type { AgentLaunch } from "../agents/AgentDriver.js"
import { AppConfig } from "../config/AppConfig.js"

/**
 * The bounded pool of live agents. A slot is held by a scope (a session's lifetime)
 * and taken with one atomic `Ref.modify`, so concurrent creates can never overshoot.
 */
export class AgentPool extends Effect.Service<AgentPool>()("clawdforge/AgentPool", {
  effect: Effect.gen(function*() {
    const { maxLiveSessions: capacity } = yield* AppConfig
    const acp = yield* AcpDriver
    const acpx = yield* AcpxDriver
    const taken = yield* Ref.make(0)

    const reserve = Effect.acquireRelease(
      Ref.modify(taken, (n) => n < capacity ? [true, n + 1] : [false, n]).pipe(
        Effect.filterOrFail(
          (ok) => ok,
          () => new PoolFull({ message: `All ${capacity} live agent slots are in use; close a session`, capacity })
        )
      ),
      () => Ref.update(taken, (n) => n - 1)
    ).pipe(Effect.asVoid, Effect.withSpan("AgentPool.reserve"))

    const start = (launch: AgentLaunch) => {
      switch (launch.agent.driver) {
        case "acp":
          return acp.start(launch)
        case "acpx":
          return acpx.start(launch)
      }
    }

    return { capacity, live: Ref.get(taken), reserve, start } as const
  }),
  dependencies: [AppConfig.Default, AcpDriver.Default, AcpxDriver.Default]
}) {}
