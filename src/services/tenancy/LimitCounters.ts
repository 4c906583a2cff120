import { Context, type Effect, type Scope } from "effect"
import type { AppName, SessionId } from "../../domain/Ids.js"

/** An app's turns in the last 60 s (a sliding window), as the counters see them. */
export interface TurnCount {
  /** Turns started in the window, before the one just taken (if one was). */
  readonly count: number
  /** Seconds until the oldest turn in the window leaves it, the one just taken included (0 when there is none). */
  readonly resetSeconds: number
}

/**
 * What `AppLimits` counts its limits with: an app's live sessions, its turns of the last 60 s and
 * its cost since 00:00 UTC. Each check-and-take is atomic among every gateway that shares the
 * counters, so racing callers cannot overshoot a limit.
 *
 * The members a turn passes through hand what they counted to a `decide` continuation instead of
 * returning it: in memory they count and call it at once, so a turn pays no effect of its own for
 * counting. Such counters count when the member is called, not when its effect runs: call it
 * where the count is meant, inside a running effect (as `AppLimits` does).
 */
export interface LimitCountersService {
  /**
   * Holds the session's place among the app's live sessions until the scope closes, unless `max`
   * other sessions of the app hold one: then how many do (and nothing is held). `max` null: held,
   * never refused.
   */
  readonly holdSession: (
    app: AppName,
    session: SessionId,
    max: number | null
  ) => Effect.Effect<number | undefined, never, Scope.Scope>

  /** The app's live sessions (for `GET /limits`). */
  readonly liveSessions: (app: AppName) => Effect.Effect<number>

  /**
   * Takes a turn in the app's window at `nowMs` unless `limit` turns started in the last 60 s;
   * `decide` is given the window as it was and whether the turn was taken. `limit` null: taken
   * (where the window is kept for `GET /limits`, counted in it).
   */
  readonly takeTurn: <A, E, R>(
    app: AppName,
    limit: number | null,
    nowMs: number,
    decide: (turns: TurnCount, taken: boolean) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E, R>

  /**
   * The app's window at `nowMs` without taking a turn, given to `decide`. `limited` says the app
   * has a `turns_per_minute` (counters that keep windows only for those read the others elsewhere).
   */
  readonly turnWindow: <A, E, R>(
    app: AppName,
    nowMs: number,
    limited: boolean,
    decide: (turns: TurnCount) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E, R>

  /** The app's cost (USD) since 00:00 UTC of `nowMs`'s day, given to `decide`. */
  readonly costToday: <A, E, R>(
    app: AppName,
    nowMs: number,
    decide: (costUsd: number) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E, R>

  /**
   * Adds a turn's (or run's) cost, ended at `nowMs`, to the app's day, then runs `then`. Counters
   * that read the day's cost from the shared ledger (where the turn is stored) add nothing.
   */
  readonly addCost: <A, E, R>(
    app: AppName,
    costUsd: number,
    nowMs: number,
    then: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E, R>
}

/**
 * The counters behind `AppLimits`, chosen by the layer: a single gateway's are in memory
 * (`LocalLimitCounters`), a cluster node's in the shared database (`src/cluster/ClusterLimits.ts`).
 */
export class LimitCounters extends Context.Tag("clawdforge/LimitCounters")<LimitCounters, LimitCountersService>() {}
