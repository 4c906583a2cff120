import { Context, type Effect, type Scope } from "effect"
import type { AppName, SessionId } from "../../domain/Ids.js"

/** An app's turns in the last 60 s, as a shared counter sees them. */
export interface SharedTurnWindow {
  /** Turns started in the window (before the one just taken, if any). */
  readonly count: number
  /** When the oldest of them started (ms), if there is one. */
  readonly oldestMs: number | undefined
}

/**
 * The counters behind `AppLimits` when several gateways share one ledger (the nodes of a cluster):
 * an app's live sessions and its turns of the last 60 s, kept where every node sees them, each
 * check-and-take atomic across the nodes (their day's cost is the shared ledger's). A single
 * gateway has none of this service, and `AppLimits` counts in memory.
 */
export class SharedLimits extends Context.Tag("clawdforge/SharedLimits")<SharedLimits, {
  /**
   * Holds the session's place among the app's live sessions until the scope closes, unless `max`
   * other sessions of the app hold one: then how many do. `max` null: held, never refused.
   */
  readonly holdSession: (
    app: AppName,
    session: SessionId,
    max: number | null
  ) => Effect.Effect<number | undefined, never, Scope.Scope>
  /** The app's live sessions across the nodes. */
  readonly liveSessions: (app: AppName) => Effect.Effect<number>
  /** Takes a turn in the app's window unless `limit` turns started in the last 60 s; what the window held. */
  readonly takeTurn: (
    app: AppName,
    limit: number,
    nowMs: number
  ) => Effect.Effect<SharedTurnWindow & { readonly taken: boolean }>
  /** The app's window as it is, without taking a turn. */
  readonly turnWindow: (app: AppName, nowMs: number, limited: boolean) => Effect.Effect<SharedTurnWindow>
}>() {}
