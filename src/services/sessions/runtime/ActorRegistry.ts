import { Deferred, Duration, Effect, ExecutionStrategy, Exit, Fiber, FiberMap, Option, Runtime, Schedule, Scope } from "effect"
import type { AgentDefinition } from "../../../domain/Agent.js"
import { AgentFailed } from "../../../domain/Errors.js"
import type { AppName, SessionId } from "../../../domain/Ids.js"
import type { Session } from "../../../domain/Session.js"
import type { AgentHandle, AgentLaunch } from "../../agents/AgentDriver.js"
import type { AgentRegistry } from "../../agents/AgentRegistry.js"
import type { AppConfig } from "../../config/AppConfig.js"
import { type Ledger, nowSeconds } from "../../ledger/Ledger.js"
import type { AppLimits } from "../../tenancy/AppLimits.js"
import type { AppSecrets } from "../../tenancy/AppSecrets.js"
import type { Webhooks } from "../../tenancy/Webhooks.js"
import type { AgentPool } from "../AgentPool.js"
import type { StartError } from "../SessionErrors.js"
import { makeHibernation } from "./Hibernation.js"
import { permissionPolicy, type PermissionPolicy } from "./PermissionPolicy.js"
import { cancelGrace, makeSessionActor, type SessionActor, type TurnWorkspace } from "./SessionActor.js"
import { makeTurnCommit } from "./TurnCommit.js"
import type { ReadySession } from "./WarmSessions.js"

/** On shutdown, how long running turns may go on before they are cancelled. */
const shutdownGrace = Duration.seconds(3)

/** The gateway's services the live actors use. */
export interface ActorRegistryServices {
  readonly config: AppConfig
  readonly ledger: Ledger
  readonly pool: AgentPool
  readonly registry: AgentRegistry
  readonly limits: AppLimits
  readonly secrets: AppSecrets
  readonly webhooks: Webhooks
  /** What each turn did to its workspace; none: not seen. */
  readonly workspace?: TurnWorkspace | undefined
}

/**
 * The live actors of this process, keyed by session: starting them (with their pool and app
 * slots, and the agent), resuming a session the gateway lost, stopping them, handing them to
 * another node, and draining them all on shutdown. Each actor runs in a `FiberMap`, which owns it.
 */
export const makeActorRegistry = (services: ActorRegistryServices) =>
  Effect.gen(function*() {
    const { config, ledger, limits, pool, registry, secrets, webhooks } = services
    const fibers = yield* FiberMap.make<SessionId>()
    // Audit events told of by a driver's callback, written from outside any fiber.
    const runForkAudit = Runtime.runFork(yield* Effect.runtime<never>())
    // Set synchronously before an actor starts, so two turns never start two actors.
    const starting = new Map<SessionId, Deferred.Deferred<SessionActor, StartError>>()
    // The running actors: a turn for one of them needs no ledger read (the actor knows its owner).
    const running = new Map<SessionId, SessionActor>()
    // Set when the gateway starts to stop: new sessions and turns are refused from then on.
    let draining = false
    // Sessions whose actor this gateway stops to hand them to another (a cluster's shard moving).
    const handingOver = new Set<SessionId>()
    const commit = makeTurnCommit({ ledger, limits, webhooks, maxStoredBytes: config.turnMaxStoredBytes })
    // Idle agents stopped (their sessions kept), and a full pool's room made by stopping one.
    const hibernation = yield* makeHibernation({ idle: config.agentIdle, actors: () => [...running.values()] })
    yield* pool.addRoomMaker(hibernation.makeRoom, 1)

    const untilIdle = (live: ReadonlyArray<SessionActor>) =>
      Effect.exists(live, (actor) => actor.isRunning).pipe(
        Effect.repeat({ until: (busy) => !busy, schedule: Schedule.spaced("50 millis") })
      )
    /**
     * Graceful stop: let running turns end, cancel those that do not, and give them a moment
     * to answer. Runs before the HTTP server closes (see `SessionsDrain`) and again, as a
     * no-op by then, before the FiberMap interrupts every actor.
     */
    const drain = Effect.gen(function*() {
      draining = true
      const live = [...running.values()]
      yield* Effect.timeoutOption(untilIdle(live), shutdownGrace)
      yield* Effect.forEach(live, (actor) => actor.cancel, { discard: true })
      yield* Effect.timeoutOption(untilIdle(live), cancelGrace)
    }).pipe(
      // It runs in finalizers, where the fiber is uninterruptible (and may be interrupted
      // already): run it on a fiber of its own so its timeouts can interrupt what they time.
      Effect.interruptible,
      Effect.forkDaemon,
      Effect.flatMap(Fiber.join),
      Effect.withSpan("Sessions.drain")
    )
    yield* Effect.addFinalizer(() => drain)

    // Turns that a gateway which died left queued or running: their outcome is unknown, and
    // they say so (the sessions' next turns take the indexes after them).
    // In a cluster the other nodes' turns are running: there, one node does it for sessions no node
    // holds (src/cluster), and a session resumed on a node does it for itself (`actorFor`).
    const interrupted = config.cluster ? 0 : yield* ledger.interruptUnfinished(yield* nowSeconds)
    if (interrupted > 0) yield* Effect.logWarning(`${interrupted} turn(s) left unfinished by the last run are interrupted`)

    /** The registry's entry with the app's own agent environment (`clawdforge apps env`) over its env. */
    const withAppEnv = (session: Session, definition: AgentDefinition) =>
      secrets.envFor(session.app_name).pipe(
        Effect.map((env): AgentDefinition =>
          Object.keys(env).length === 0 ? definition : { ...definition, env: { ...definition.env, ...env } }
        ),
        // The message names the variable, never a value.
        Effect.mapError((error) => new AgentFailed({ message: error.message }))
      )

    /** Starts the session's agent (in the current scope), with the app's environment and network rule. */
    const startAgent = (
      session: Session,
      definition: AgentDefinition,
      resume: Option.Option<string>,
      policy: PermissionPolicy
    ) =>
      Effect.flatMap(
        Effect.zip(withAppEnv(session, definition), limits.networkFor(session.app_name)),
        ([agent, network]) => {
          const launch: AgentLaunch = {
            app: session.app_name,
            sessionId: session.session_id,
            agentName: session.agent,
            agent,
            cwd: session.cwd,
            permissionMode: session.permission_mode,
            resume,
            requests: policy.requests,
            network: Option.getOrUndefined(network)
          }
          return pool.start(launch)
        }
      )

    /** Audits a (re)started agent, and keeps its own session id for the next `session/load`. */
    const noteAgentStart = (id: SessionId, handle: AgentHandle, previous: Option.Option<string>) =>
      Effect.gen(function*() {
        yield* ledger.recordEvent(id, "agent_start", { origin: handle.origin, pid: handle.pid })
        if (Option.getOrUndefined(previous) !== handle.agentSessionId) {
          yield* ledger.setAgentSessionId(id, handle.agentSessionId)
        }
      })

    /**
     * Starts a session's actor: takes a pool slot, starts the agent (or resumes its ACP
     * session), then forks the actor into the FiberMap, which owns it from then on.
     */
    const start = (session: Session, definition: AgentDefinition, resume: Option.Option<string>, warm?: ReadySession) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const id = session.session_id
          const ready = yield* Deferred.make<SessionActor, StartError>()
          starting.set(id, ready)
          const forget = Effect.sync(() => starting.get(id) === ready && starting.delete(id))
          const slot = yield* Scope.make()
          // A ready session (the warm pool's) comes with its pool slot and agent: the session's slot owns them now.
          const poolSlot = warm === undefined
            ? yield* Scope.fork(slot, ExecutionStrategy.sequential)
            : yield* Effect.as(Scope.addFinalizer(slot, Scope.close(warm.poolSlot, Exit.void)), warm.poolSlot)
          const agentScope = warm?.agentScope ?? (yield* Scope.fork(poolSlot, ExecutionStrategy.sequential))
          // The desk reads the running turn from the actor, made once the agent is up.
          let actor: SessionActor | undefined
          const policy = permissionPolicy(session, {
            timeoutMs: Duration.toMillis(config.permissionTimeout),
            currentTurn: () => actor?.state.turn,
            audit: (id, events) =>
              void runForkAudit(Effect.forEach(events, ([event, detail]) => ledger.recordEvent(id, event, detail), { discard: true })),
            onHeld: (request) => void runForkAudit(webhooks.permissionRequested(session.app_name, id, request))
          })
          // The app's session slot, held until the actor stops, and the pool's, held while its agent runs.
          const reservePool = pool.reserveFor(session.app_name)
          const started = yield* restore(
            warm === undefined
              ? limits.reserveSession(session.app_name, id).pipe(
                Scope.extend(slot),
                Effect.zipRight(Scope.extend(reservePool, poolSlot)),
                Effect.zipRight(startAgent(session, definition, resume, policy).pipe(Scope.extend(agentScope)))
              )
              : limits.reserveSession(session.app_name, id).pipe(
                Scope.extend(slot),
                Effect.as(warm.handle),
                Effect.tap(() => warm.answerWith(policy.requests))
              )
          ).pipe(Effect.exit)
          if (Exit.isFailure(started)) {
            yield* Scope.close(slot, Exit.void)
            yield* forget
            yield* Deferred.failCause(ready, started.cause)
            return yield* Effect.failCause(started.cause)
          }
          const handle = started.value
          const made: SessionActor = actor = yield* makeSessionActor({
            session,
            slot,
            poolSlot,
            reservePool,
            agent: { handle, scope: agentScope },
            desk: policy.desk,
            turnTimeout: config.turnTimeout,
            ledger,
            commit,
            restart: (previous) =>
              startAgent(session, definition, previous, policy).pipe(
                Effect.tap((handle) => noteAgentStart(id, handle, previous))
              ),
            stoppedByGateway: () => draining || handingOver.has(id),
            handingOver: () => handingOver.has(id),
            maxQueuedTurns: limits.maxQueuedTurnsFor(session.app_name),
            workspace: services.workspace,
            onStopped: Effect.zipRight(forget, Effect.sync(() => running.get(id) === made && running.delete(id)))
          })
          yield* FiberMap.run(fibers, id, made.run)
          running.set(id, made)
          yield* Deferred.succeed(ready, made)
          return { actor: made, handle }
        })
      )

    /** The live actor of an open session, resuming the session if the gateway lost it. */
    const actorFor = (session: Session) =>
      Effect.gen(function*() {
        const existing = starting.get(session.session_id)
        if (existing !== undefined) return yield* Deferred.await(existing)
        const definition = yield* registry.lookup(session.agent).pipe(
          Effect.mapError((error) => new AgentFailed({ message: error.message }))
        )
        const resume = yield* ledger.agentSessionId(session.session_id)
        // A cluster node resuming a session another node held (one that died): what that node
        // left queued or running will not end there.
        if (config.cluster) yield* ledger.interruptUnfinished(yield* nowSeconds, session.session_id)
        const { actor, handle } = yield* start(session, definition, resume)
        yield* noteAgentStart(session.session_id, handle, resume)
        return actor
      })

    /** Cancels the running turn of the session's actor, if it has one; false when nothing was running. */
    const cancel = (id: SessionId) =>
      Effect.gen(function*() {
        const ready = starting.get(id)
        if (ready === undefined || !(yield* Deferred.isDone(ready))) return false
        return yield* Deferred.await(ready).pipe(
          Effect.flatMap((actor) => actor.cancel),
          Effect.orElseSucceed(() => false)
        )
      })

    return {
      /** Whether the gateway is stopping: new sessions and turns are refused. */
      isDraining: () => draining,
      /** The running actor of the session, if any (no ledger read). */
      running: (id: SessionId): SessionActor | undefined => running.get(id),
      /** Every running actor. */
      all: (): ReadonlyArray<SessionActor> => [...running.values()],
      start,
      actorFor,
      cancel,
      /** Stops the session's actor (and so its agent). */
      stop: (id: SessionId) => FiberMap.remove(fibers, id),
      /** Stops the session's actor here for another gateway: its turns are `interrupted`, their callers told 502. */
      handOver: (id: SessionId) =>
        Effect.suspend(() => {
          handingOver.add(id)
          return FiberMap.remove(fibers, id).pipe(Effect.ensuring(Effect.sync(() => handingOver.delete(id))))
        }),
      drain,
      /** How many actors run now. */
      size: FiberMap.size(fibers),
      /** The sessions with an actor, started or starting. */
      ids: Effect.sync(() => [...starting.keys()]),
      /** The sessions with a live agent now (not hibernating), with their app. */
      liveSessions: Effect.sync(() =>
        new Map(
          [...running].filter(([, actor]) => actor.state.live).map(([id, actor]) => [id, actor.session.app_name])
        ) as ReadonlyMap<SessionId, AppName>
      ),
      /** Whether the session's agent runs now (here). */
      isLive: (id: SessionId) => running.get(id)?.state.live === true
    } as const
  })

export type ActorRegistry = Effect.Effect.Success<ReturnType<typeof makeActorRegistry>>
