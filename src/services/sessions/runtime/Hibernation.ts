import { Duration, Effect, Schedule } from "effect"
import type { AppName } from "../../../domain/Ids.js"
import type { SessionActor } from "./SessionActor.js"

/** What hibernation needs of the live actors. */
export interface HibernationOptions {
  /** `CLAWDFORGE_AGENT_IDLE_SECS`: an agent with no turn this long is stopped; zero: never. */
  readonly idle: Duration.Duration
  /** The actors of this process now. */
  readonly actors: () => ReadonlyArray<SessionActor>
}

/** How often idle agents are looked for: a quarter of the idle time, between 100 ms and 1 s. */
const scanPeriod = (idle: Duration.Duration) => Duration.clamp(Duration.unsafeDivide(idle, 4), {
  minimum: Duration.millis(100),
  maximum: Duration.seconds(1)
})

/** The least recently used of the actors. */
const leastRecentlyUsed = (actors: ReadonlyArray<SessionActor>) =>
  actors.reduce((oldest, actor) => actor.state.lastUsedAt < oldest.state.lastUsedAt ? actor : oldest)

/**
 * The idle agents a full pool may stop for `app`, in the order to try them: the app's own,
 * least recently used first; then, app by app from the one holding the most live agents, each
 * app's least recently used first. Busy agents (a turn running or queued, a request pending) never.
 */
const hibernationOrder = (actors: ReadonlyArray<SessionActor>, app: AppName | undefined) => {
  const liveByApp = new Map<AppName, number>()
  const idleByApp = new Map<AppName, Array<SessionActor>>()
  for (const actor of actors) {
    if (!actor.state.live) continue
    const owner = actor.session.app_name
    liveByApp.set(owner, (liveByApp.get(owner) ?? 0) + 1)
    if (actor.isIdle()) idleByApp.set(owner, [...(idleByApp.get(owner) ?? []), actor])
  }
  const byUse = (list: ReadonlyArray<SessionActor>) => [...list].sort((a, b) => a.state.lastUsedAt - b.state.lastUsedAt)
  const own = app === undefined ? [] : byUse(idleByApp.get(app) ?? [])
  const others = [...idleByApp.keys()].filter((owner) => owner !== app).sort((a, b) =>
    (liveByApp.get(b)! - liveByApp.get(a)!) ||
    leastRecentlyUsed(idleByApp.get(a)!).state.lastUsedAt - leastRecentlyUsed(idleByApp.get(b)!).state.lastUsedAt
  )
  return [...own, ...others.flatMap((owner) => byUse(idleByApp.get(owner)!))]
}

/**
 * Hibernation (`CLAWDFORGE_AGENT_IDLE_SECS`): agents idle past the idle time are stopped, their
 * sessions kept open (their next turn wakes them); a full pool stops an idle agent instead of
 * refusing (`makeRoom`). Off (zero): nothing runs and no room is made.
 */
export const makeHibernation = (options: HibernationOptions) =>
  Effect.gen(function*() {
    const enabled = Duration.toMillis(options.idle) > 0
    const idleMs = Duration.toMillis(options.idle)

    /** Stops the agents idle past the idle time. */
    const sweepIdle = Effect.suspend(() => {
      const now = Date.now()
      const expired = options.actors().filter((actor) => actor.isIdle() && now - actor.state.lastUsedAt >= idleMs)
      return Effect.forEach(expired, (actor) => actor.hibernate("idle"), { discard: true, concurrency: 4 })
    })
    if (enabled) {
      yield* sweepIdle.pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("hibernating idle agents failed", cause)),
        Effect.repeat(Schedule.spaced(scanPeriod(options.idle))),
        Effect.forkScoped
      )
    }

    /**
     * Frees a pool slot for `app` by hibernating one idle agent (see `hibernationOrder`): true when
     * one went. One that turned busy since it was chosen is skipped for the next.
     */
    const makeRoom = (app: AppName | undefined): Effect.Effect<boolean> =>
      enabled
        ? Effect.suspend(() =>
          Effect.findFirst(hibernationOrder(options.actors(), app), (actor) => actor.hibernate("pool_full"))
        ).pipe(Effect.map((found) => found._tag === "Some"))
        : Effect.succeed(false)

    return { makeRoom } as const
  })
