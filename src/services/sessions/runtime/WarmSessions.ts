import { Duration, Effect, ExecutionStrategy, Exit, FiberMap, Option, Schedule, Scope } from "effect"
import { createHash, randomBytes } from "node:crypto"
import type { AgentDefinition } from "../../../domain/Agent.js"
import { AppName, SessionId } from "../../../domain/Ids.js"
import type { PermissionMode } from "../../../domain/Session.js"
import type { AgentHandle, AgentLaunch, AgentRequests } from "../../agents/AgentDriver.js"
import type { AgentRegistry } from "../../agents/AgentRegistry.js"
import type { AppConfig } from "../../config/AppConfig.js"
import type { AppTokens } from "../../ledger/AppTokens.js"
import type { AppLimits } from "../../tenancy/AppLimits.js"
import type { AppSecrets } from "../../tenancy/AppSecrets.js"
import type { AgentPool } from "../AgentPool.js"
import type { Workspaces } from "../Workspaces.js"

/** How often the ready sessions are checked against the apps, their limits and environments. */
const checkEvery = Duration.seconds(1)

/**
 * After a create took a ready session, how long the refill waits: a new agent's start takes the
 * CPU for a while (the real adapter's about half a second), and the create should answer first.
 */
const refillDelay = Duration.millis(500)

/** A start that failed is tried again after 1, 2, 4 ... s, at most every 30 s (and logged each time). */
const startRetry = Schedule.exponential(Duration.seconds(1)).pipe(Schedule.union(Schedule.spaced(Duration.seconds(30))))

/** The gateway's services the warm pool uses. */
export interface WarmSessionsServices {
  readonly config: AppConfig
  readonly pool: AgentPool
  readonly registry: AgentRegistry
  readonly workspaces: Workspaces
  readonly limits: AppLimits
  readonly secrets: AppSecrets
  readonly appTokens: AppTokens
}

/**
 * A ready session: its agent started in the app's sandbox with the app's environment, initialized
 * and `session/new` done in a workspace of its own, holding a pool slot. No ledger row, no app
 * slot: it is nobody's session until a create takes it.
 */
export interface ReadySession {
  readonly app: AppName
  readonly agentName: string
  /** The id the session gets when taken (its workspace is named after it). */
  readonly sessionId: SessionId
  readonly cwd: string
  /** The mode the agent was launched with: an acpx agent keeps it (its permissions are its own). */
  readonly permissionMode: PermissionMode
  readonly handle: AgentHandle
  /** Holds the pool slot; the agent's scope is forked from it. Closing it stops the agent and frees the slot. */
  readonly poolSlot: Scope.CloseableScope
  readonly agentScope: Scope.CloseableScope
  /** Who answers the agent's permission requests from now on (the session's policy, once taken). */
  readonly answerWith: (requests: AgentRequests) => void
}

/** What the ready session was made from: a change of any of it (limits, environment, agent) replaces it. */
interface Made {
  readonly ready: ReadySession
  readonly fingerprint: string
}

const keyOf = (app: string, agent: string) => `${app}\u0000${agent}`

/** A digest of what a ready session was started with; values never leave it. */
const fingerprintOf = (parts: unknown) => createHash("sha256").update(JSON.stringify(parts)).digest("base64url")

/** Before a ready session is taken, nobody answers for it: a request is cancelled. */
const nobody: AgentRequests = {
  permission: () => ({ outcome: { outcome: "cancelled" } }),
  elicitation: () => ({ action: "cancel" })
}

/**
 * The warm pool: for each app's `warm: {"agent": N}` limit, N ready sessions of that agent,
 * refilled in the background (one start at a time per app and agent). Ready sessions are the
 * first to give up a slot when a create finds the pool full, are replaced when the app's limits
 * or environment change, and stopped when the app is revoked or the gateway stops.
 */
export const makeWarmSessions = (services: WarmSessionsServices) =>
  Effect.gen(function*() {
    const { appTokens, config, limits, pool, registry, secrets, workspaces } = services
    const ready = new Map<string, Array<Made>>()
    // One refill fiber per app and agent; removing it interrupts its start (which then cleans up).
    const refills = yield* FiberMap.make<string>()
    // What each app and agent should have now: its count and fingerprint, from the last check.
    const wanted = new Map<string, { readonly count: number; readonly fingerprint: string }>()

    /** Stops a ready session: its agent, its pool slot and its workspace. */
    const discard = (made: Made) =>
      Scope.close(made.ready.poolSlot, Exit.void).pipe(
        Effect.zipRight(workspaces.remove(made.ready.app, made.ready.sessionId))
      )

    /** The agent as the app's sessions get it (the app's environment over the registry's), and its fingerprint. */
    const agentFor = (app: AppName, agentName: string) =>
      Effect.gen(function*() {
        const definition = yield* registry.lookup(agentName)
        const env = yield* secrets.envFor(app)
        const appLimits = yield* limits.currentLimits(app)
        const agent: AgentDefinition = Object.keys(env).length === 0
          ? definition
          : { ...definition, env: { ...definition.env, ...env } }
        // Any limit but `warm` itself (a new count keeps the ready sessions there are).
        const { warm: _warm, ...rest } = appLimits
        return { agent, fingerprint: fingerprintOf([agent, rest, config.defaultPermissionMode]) }
      })

    /** Starts one ready session, or fails (its slot, agent and workspace gone again). */
    const startOne = (app: AppName, agentName: string) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const { agent, fingerprint } = yield* agentFor(app, agentName)
          const sessionId = SessionId.make(randomBytes(18).toString("base64url"))
          const poolSlot = yield* Scope.make()
          const agentScope = yield* Scope.fork(poolSlot, ExecutionStrategy.sequential)
          let requests = nobody
          const made = yield* restore(Effect.gen(function*() {
            yield* Scope.extend(pool.reserveSpare, poolSlot)
            const cwd = yield* workspaces.prepare(app, sessionId, undefined)
            const network = yield* limits.networkFor(app)
            const launch: AgentLaunch = {
              app,
              sessionId,
              agentName,
              agent,
              cwd,
              permissionMode: config.defaultPermissionMode,
              resume: Option.none(),
              requests: {
                permission: (request) => requests.permission(request),
                elicitation: (request) => requests.elicitation(request)
              },
              network: Option.getOrUndefined(network)
            }
            const handle = yield* Scope.extend(pool.start(launch), agentScope)
            const ready: ReadySession = {
              app,
              agentName,
              sessionId,
              cwd,
              permissionMode: config.defaultPermissionMode,
              handle,
              poolSlot,
              agentScope,
              answerWith: (answering) => {
                requests = answering
              }
            }
            return { ready, fingerprint } satisfies Made
          })).pipe(
            Effect.onExit((exit) =>
              Exit.isSuccess(exit)
                ? Effect.sync(() => {
                  const list = ready.get(keyOf(app, agentName))
                  if (list === undefined) ready.set(keyOf(app, agentName), [exit.value])
                  else list.push(exit.value)
                })
                : Scope.close(poolSlot, Exit.void).pipe(Effect.zipRight(workspaces.remove(app, sessionId)))
            )
          )
          return made
        })
      )

    /**
     * Fills the app's ready sessions of one agent up to its `warm` count, one start at a time. A
     * full pool ends it quietly (the next check tries again); another failure is logged and
     * retried with a backoff.
     */
    const refill = (app: AppName, agentName: string) =>
      Effect.gen(function*() {
        const key = keyOf(app, agentName)
        while ((ready.get(key)?.length ?? 0) < (wanted.get(key)?.count ?? 0)) {
          yield* startOne(app, agentName).pipe(
            Effect.tapError((error) =>
              error._tag === "PoolFull"
                ? Effect.void
                : Effect.logWarning(`warm pool: starting a ready session of agent "${agentName}" for app ${app} failed`, error.message)
            ),
            Effect.retry({ schedule: startRetry, while: (error) => error._tag !== "PoolFull" })
          )
        }
      }).pipe(Effect.catchAll(() => Effect.void))

    /** Starts the refill of the app's agent unless one runs (after `delay`: a create that took one answers first). */
    const startRefill = (app: AppName, agentName: string, delay: Duration.DurationInput = Duration.zero) =>
      FiberMap.run(refills, keyOf(app, agentName), Effect.delay(refill(app, agentName), delay), { onlyIfMissing: true })

    /** The apps that may hold sessions now: the environment's, and the ledger's not revoked. */
    const activeApps = Effect.map(appTokens.list(), (rows) => {
      const apps = new Set<string>(config.appTokens.map(([app]) => app))
      for (const row of rows) {
        if (row.revoked_at === null) apps.add(row.name)
        else if (!config.appTokens.some(([app]) => app === row.name)) apps.delete(row.name)
      }
      return apps
    })

    /**
     * Brings the ready sessions in line with the apps: stops those of revoked apps, of agents no
     * longer wanted, beyond the count, or made with limits or an environment that changed since,
     * and starts the refills of what is missing.
     */
    const check = Effect.gen(function*() {
      const apps = yield* activeApps
      const next = new Map<string, { readonly app: AppName; readonly agent: string; readonly count: number; readonly fingerprint: string }>()
      for (const name of apps) {
        const app = AppName.make(name)
        const warm = (yield* limits.currentLimits(app)).warm
        for (const [agentName, count] of Object.entries(warm)) {
          if (count <= 0) continue
          const made = yield* Effect.option(agentFor(app, agentName))
          if (Option.isNone(made)) continue
          next.set(keyOf(app, agentName), { app, agent: agentName, count, fingerprint: made.value.fingerprint })
        }
      }
      wanted.clear()
      for (const [key, want] of next) wanted.set(key, want)
      const stale: Array<Made> = []
      for (const [key, list] of ready) {
        const want = next.get(key)
        const keep = list.filter((made) => want !== undefined && made.fingerprint === want.fingerprint)
        stale.push(...list.filter((made) => !keep.includes(made)))
        // Beyond the count: the oldest go.
        while (keep.length > (want?.count ?? 0)) stale.push(keep.shift()!)
        if (keep.length === 0) ready.delete(key)
        else ready.set(key, keep)
        // A start under way for what is no longer wanted (or wanted otherwise) is interrupted.
        if (want === undefined || list.length !== keep.length) yield* FiberMap.remove(refills, key)
      }
      for (const key of yield* Effect.sync(() => [...refills].map(([key]) => key))) {
        if (!next.has(key)) yield* FiberMap.remove(refills, key)
      }
      yield* Effect.forEach(stale, discard, { discard: true })
      for (const [key, want] of next) {
        if ((ready.get(key)?.length ?? 0) < want.count) yield* startRefill(want.app, want.agent)
      }
    })

    /** Takes one of the app's ready sessions of that agent, if one is ready and still current. */
    const take = (app: AppName, agentName: string, permissionMode: PermissionMode) =>
      Effect.gen(function*() {
        const key = keyOf(app, agentName)
        const list = ready.get(key)
        if (list === undefined || list.length === 0) return Option.none<ReadySession>()
        const { agent, fingerprint } = yield* Effect.orElseSucceed(agentFor(app, agentName), () => ({ agent: undefined, fingerprint: "" }))
        // An acpx agent took its permission mode at launch; an ACP agent asks the session's policy.
        if (agent?.driver === "acpx" && permissionMode !== config.defaultPermissionMode) return Option.none<ReadySession>()
        while (list.length > 0) {
          const made = list.shift()!
          if (made.fingerprint === fingerprint && (yield* made.ready.handle.isAlive)) {
            yield* startRefill(app, agentName, refillDelay)
            return Option.some(made.ready)
          }
          yield* discard(made)
        }
        yield* startRefill(app, agentName)
        return Option.none<ReadySession>()
      })

    /**
     * A create found the pool full: a ready session of the agent with the most ready gives up its
     * slot; with none ready, a start under way does (the next check starts it again, if there is room).
     */
    const giveUpSlot = Effect.suspend(() => {
      let largest: Array<Made> | undefined
      for (const list of ready.values()) if (list.length > 0 && list.length > (largest?.length ?? 0)) largest = list
      const made = largest?.pop()
      if (made !== undefined) return Effect.as(discard(made), true)
      return Effect.flatMap(Effect.sync(() => [...refills].map(([key]) => key)), (keys) => {
        const key = keys[0]
        return key === undefined ? Effect.succeed(false) : Effect.as(FiberMap.remove(refills, key), true)
      })
    })

    // A cluster's nodes would each keep the count (and a create routes by session id): warm
    // starts are a single gateway's.
    if (config.cluster) {
      return {
        take: (_app: AppName, _agent: string, _mode: PermissionMode) => Effect.succeed(Option.none<ReadySession>()),
        readyCount: () => 0
      } as const
    }

    yield* pool.addRoomMaker(() => giveUpSlot, 0)
    // Stopping the gateway stops them all (after the refills, so none starts again).
    yield* Effect.addFinalizer(() =>
      FiberMap.clear(refills).pipe(
        Effect.zipRight(Effect.suspend(() => Effect.forEach([...ready.values()].flat(), discard, { discard: true }))),
        Effect.zipRight(Effect.sync(() => ready.clear()))
      )
    )
    yield* check.pipe(
      Effect.catchAllCause((cause) => Effect.logWarning("warm pool: checking the ready sessions failed", cause)),
      Effect.repeat(Schedule.spaced(checkEvery)),
      Effect.forkScoped
    )
    return {
      take,
      /** How many ready sessions there are now (an operator's view). */
      readyCount: () => [...ready.values()].reduce((n, list) => n + list.length, 0)
    } as const
  })

