import { Effect, Option, Ref } from "effect"
import { PoolFull } from "../../domain/Errors.js"
import type { AppName } from "../../domain/Ids.js"
import { AcpDriver } from "../agents/AcpDriver.js"
import type { AgentLaunch, SandboxedLaunch } from "../agents/AgentDriver.js"
import { AgentRegistry } from "../agents/AgentRegistry.js"
import { AppConfig } from "../config/AppConfig.js"
import { Sandbox } from "../sandbox/Sandbox.js"

/** Frees a pool slot for an agent of `app`'s (undefined: no app asks) when it can: true when it did. */
export type RoomMaker = (app: AppName | undefined) => Effect.Effect<boolean>

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
    // What frees a slot for a create (or a hibernated session's turn) that finds the pool full,
    // asked by their order (ready sessions first, then hibernation); each is told which app asks
    // and answers whether it freed one.
    const roomMakers: Array<{ readonly order: number; readonly make: RoomMaker }> = []
    // Creates making room now: a background refill never takes the slot freed for one of them.
    let makingRoom = 0

    const take = Ref.modify(taken, (n) => n < capacity ? [true, n + 1] : [false, n])
    const poolFull = () => new PoolFull({ message: `All ${capacity} live agent slots are in use; close a session`, capacity })
    const makeRoom = (app: AppName | undefined) =>
      Effect.suspend(() => Effect.findFirst(roomMakers, (maker) => maker.make(app))).pipe(Effect.map(Option.isSome))
    /** Takes a slot, asking the room makers for one while the pool is full (a few tries: another create may win it). */
    const takeOrMakeRoom = (app: AppName | undefined) => Effect.suspend(() => {
      makingRoom++
      const tryAgain = (attempt: number): Effect.Effect<void, PoolFull> =>
        attempt >= 4 ? Effect.fail(poolFull()) : Effect.flatMap(makeRoom(app), (made) =>
          made
            ? Effect.flatMap(take, (ok) => ok ? Effect.void : tryAgain(attempt + 1))
            : Effect.fail(poolFull()))
      return tryAgain(0).pipe(Effect.ensuring(Effect.sync(() => makingRoom--)))
    }).pipe((makeRoomAndTake) => Effect.flatMap(take, (ok) => ok ? Effect.void : makeRoomAndTake))
    /** A slot for an agent of `app`'s, held until the scope closes (room made for it when the pool is full). */
    const reserveFor = (app: AppName | undefined) =>
      Effect.acquireRelease(takeOrMakeRoom(app), () => Ref.update(taken, (n) => n - 1)).pipe(
        Effect.asVoid,
        Effect.withSpan("AgentPool.reserve")
      )
    const reserve = reserveFor(undefined)
    /** A slot for background work (a ready session): only a free one, and never while a create makes room. */
    const reserveSpare = Effect.acquireRelease(
      Effect.suspend(() =>
        makingRoom > 0 ? Effect.fail(poolFull()) : Effect.filterOrFail(take, (ok) => ok, poolFull)
      ),
      () => Ref.update(taken, (n) => n - 1)
    ).pipe(Effect.asVoid)
    /**
     * Adds a way to free a slot when the pool is full: makers of a lower `order` are asked first
     * (ready sessions 0, hibernating an idle agent 1), equal ones in the order added.
     */
    const addRoomMaker = (make: RoomMaker, order = 0): Effect.Effect<void> =>
      Effect.sync(() => {
        roomMakers.push({ order, make })
        roomMakers.sort((a, b) => a.order - b.order)
      })

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

    return { capacity, live: Ref.get(taken), reserve, reserveFor, reserveSpare, addRoomMaker, start } as const
  }),
  dependencies: [AppConfig.Default, AcpDriver.Default, AgentRegistry.Default, Sandbox.Default]
}) {}
