import { Clock, Effect, Exit, Metric } from "effect"
import type { AcpMessage, Session, TurnReply } from "../../../domain/Session.js"
import { noUsage } from "../../agents/UsageMeter.js"
import { interruptedFailure, type Ledger, type StoredTurnEnd } from "../../ledger/Ledger.js"
import { turnsTotal, withLabels } from "../../observability/Metrics.js"
import type { AppLimits } from "../../tenancy/AppLimits.js"
import type { Webhooks } from "../../tenancy/Webhooks.js"
import { sessionClosed, type TurnError } from "../SessionErrors.js"
import type { LiveTurn } from "./TurnFeed.js"

/**
 * Stores how a turn ended (one statement), counts its cost against the app's budget and tells the
 * app's webhook. `interrupted`: the gateway itself stopped the session (a drain, a hand-over), so
 * a turn it cut short is `interrupted`, not `cancelled`.
 */
export type TurnCommit = (
  session: Session,
  live: LiveTurn,
  exit: Exit.Exit<TurnReply, TurnError>,
  interrupted: boolean
) => Effect.Effect<void>

/** What a turn's end is written to. */
export interface TurnCommitServices {
  readonly ledger: Pick<Ledger, "endTurn">
  readonly limits: Pick<AppLimits, "addUsage" | "addStoredBytes">
  readonly webhooks: Pick<Webhooks, "turnEnded">
  /** What a stored turn keeps of its messages at most (CLAWDFORGE_TURN_MAX_STORED_MB). */
  readonly maxStoredBytes: number
}

// On every turn's path: plain effects, no spans (see `spanWhenTraced`).
export const makeTurnCommit = ({ ledger, limits, maxStoredBytes, webhooks }: TurnCommitServices): TurnCommit =>
(session, live, exit, interrupted) =>
  Clock.currentTimeMillis.pipe(
    Effect.map((nowMs) => storedEnd(exit, live, interrupted, nowMs, maxStoredBytes)),
    Effect.tap((end) =>
      Effect.flatMap(
        ledger.endTurn(session.session_id, live.turnIndex, end),
        // What it stored counts against the app's `max_stored_mb` from now on.
        (bytes) => limits.addStoredBytes(session.app_name, bytes)
      )
    ),
    // What it cost counts against the app's daily budget from now on.
    Effect.tap((end) => limits.addUsage(session.app_name, end.usage)),
    Effect.flatMap((end) => webhooks.turnEnded(session.app_name, session.session_id, live.turnIndex, end))
  )

/** How a turn's end is stored, from how it ended. */
export const storedEnd = (
  exit: Exit.Exit<TurnReply, TurnError>,
  live: LiveTurn,
  interrupted: boolean,
  /** The Effect clock's now (timestamps follow it, as the rest of the ledger's do). */
  nowMs: number,
  /** What the stored turn keeps of its messages at most; all of them by default. */
  maxStoredBytes = Number.POSITIVE_INFINITY
): StoredTurnEnd => {
  const durationMs = live.startedAt === undefined ? null : Date.now() - live.startedAt
  // A turn that never ran changed nothing; one that ran, what its end saw (null: not seen).
  const changes = live.startedAt === undefined ? [] : live.changes ?? null
  const startedAt = durationMs === null ? null : Math.floor((nowMs - durationMs) / 1000)
  const endedAt = Math.floor(nowMs / 1000)
  if (Exit.isSuccess(exit)) {
    const { events, stop_reason, usage } = exit.value
    return {
      status: stop_reason === "cancelled" ? "cancelled" : "completed",
      usage,
      startedAt,
      endedAt,
      durationMs,
      stopReason: stop_reason,
      error: null,
      changes,
      ...storedEvents(live, events, maxStoredBytes)
    }
  }
  const error = exit.cause._tag === "Fail" ? exit.cause.error : sessionClosed("")
  const closed = error._tag === "SessionClosed"
  const events = error._tag === "AgentFailed" && error.events !== undefined
    ? error.events as ReadonlyArray<AcpMessage>
    : live.messages
  return {
    status: closed ? (interrupted ? "interrupted" : "cancelled") : "failed",
    usage: noUsage,
    startedAt,
    endedAt,
    durationMs,
    stopReason: null,
    error: closed && interrupted
      ? interruptedFailure
      : { error: error.error, message: closed ? "The session was closed before the turn ended" : error.message },
    changes,
    ...storedEvents(live, events, maxStoredBytes)
  }
}

/** The messages a turn stores: the first `maxStoredBytes` of them (the live stream carried them all). */
const storedEvents = (live: LiveTurn, events: ReadonlyArray<AcpMessage>, maxStoredBytes: number) => {
  const { texts, truncated } = live.storedTexts(events, maxStoredBytes)
  return { eventTexts: texts, truncated }
}

/** The turn counter of one app and outcome, labelled once (see `withLabels`). */
const turnCounters = new Map<string, Metric.Metric.Counter<number>>()
const turnCounter = (app: string, outcome: string) => {
  const key = `${app}\u0000${outcome}`
  let counter = turnCounters.get(key)
  if (counter === undefined) {
    counter = withLabels(turnsTotal, { app, outcome })
    turnCounters.set(key, counter)
  }
  return counter
}

/** Counts the turn by outcome. */
export const recordTurnMetrics = (app: string, exit: Exit.Exit<TurnReply, TurnError>) =>
  Metric.increment(
    turnCounter(app, Exit.isSuccess(exit) ? "ok" : exit.cause._tag === "Fail" ? exit.cause.error.error : "interrupted")
  )
