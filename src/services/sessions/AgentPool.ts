import { Effect, Ref } from "effect"
import { PoolFull } from "../../domain/Errors.js"
import { AcpDriver } from "../agents/AcpDriver.js"
import type { AgentLaunch, SandboxedLaunch } from "../agents/AgentDriver.js"
import { AgentRegistry } from "../agents/AgentRegistry.js"
import { AppConfig } from "../config/AppConfig.js"
import { Sandbox } from "../sandbox/Sandbox.js"

/**
 * The bounded pool of live agents. A slot is held by a scope (a session's lifetime)
 * and taken with one atomic `Ref.modify`, so concurrent creates can never overshoot.
 */
export class AgentPool extends Effect.Service<AgentPool>()("clawdforge/AgentPool", {
  effect: Effect.gen(function*() {
    const config = yield* AppConfig
    const capacity = config.maxLiveSessions
    const acp = yield* AcpDriver
    const registry = yield* AgentRegistry
    // The acpx driver's module is loaded when the first acpx agent starts, not at start-up.
    const acpx = yield* Effect.cached(
      Effect.promise(() => import("../agents/AcpxDriver.js")).pipe(
        Effect.flatMap(({ AcpxDriver }) =>
          AcpxDriver.pipe(
            Effect.provide(AcpxDriver.DefaultWithoutDependencies),
            Effect.provideService(AppConfig, config)
          )
        )
      )
    )
    const sandbox = yield* Sandbox
    const taken = yield* Ref.make(0)
    // Each start of an agent (a session's agent restarts after a crash) gets a cgroup of its own.
    let starts = 0

    const reserve = Effect.acquireRelease(
      Ref.modify(taken, (n) => n < capacity ? [true, n + 1] : [false, n]).pipe(
        Effect.filterOrFail(
          (ok) => ok,
          () => new PoolFull({ message: `All ${capacity} live agent slots are in use; close a session`, capacity })
        )
      ),
      () => Ref.update(taken, (n) => n - 1)
    ).pipe(Effect.asVoid, Effect.withSpan("AgentPool.reserve"))

    // Every start teaches the registry what the agent declared (`GET /agents`).
    const start = (launch: AgentLaunch) =>
      Effect.tap(startWith(sandboxed(launch)), (handle) => registry.learn(launch.agentName, handle.capabilities))
    const sandboxed = (launch: AgentLaunch): SandboxedLaunch => {
      const name = `${launch.sessionId}-${++starts}`
      return {
        ...launch,
        plan: (command, programs) =>
          sandbox.launch({ app: launch.app, name, command, programs, cwd: launch.cwd, env: launch.agent.env, network: launch.network })
      }
    }
    const startWith = (launch: SandboxedLaunch) => {
      switch (launch.agent.driver) {
        case "acp":
          return acp.start(launch)
        case "acpx":
          return Effect.flatMap(acpx, (driver) => driver.start(launch))
      }
    }

    return { capacity, live: Ref.get(taken), reserve, start } as const
  }),
  dependencies: [AppConfig.Default, AcpDriver.Default, AgentRegistry.Default, Sandbox.Default]
}) {}
