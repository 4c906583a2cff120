import { Exit, type Stream } from "effect"
import type { AcpMessage, TurnReply } from "../../../domain/Session.js"
import type { TurnSummary } from "../../../domain/Turn.js"
import type { WorkspaceChange } from "../../../domain/WorkspaceChange.js"
import type { StoredEventsPage, StoredTurnHead } from "../../ledger/Ledger.js"
import type { TurnError } from "../SessionErrors.js"

/** The last event of a turn's stream: `done` (the agent answered) or `error`. */
export interface TurnStreamEnd {
  readonly event: "done" | "error"
  readonly data: unknown
}

/** An event of a turn's stream that is not an ACP message (`permission`, `permission_resolved`). */
export interface NamedEvent {
  readonly event: string
  readonly json: string
}

/** One item of a turn's stream: an ACP message's JSON text, or a named event. */
export type FeedItem = string | NamedEvent

/**
 * A turn as its streams read it: the items so far (each message as its JSON text) and, once it
 * is over, its end; later ones reach the callbacks. `follow` runs synchronously, so nothing falls
 * between what it returns and what it calls back with (no gap, no duplicate).
 */
export interface TurnFeed {
  readonly turnIndex: number
  readonly follow: (
    onMessage: (item: FeedItem) => void,
    onEnd: (end: TurnStreamEnd) => void
  ) => {
    /** The items so far: the first `count` of `messages`. */
    readonly messages: ReadonlyArray<FeedItem>
    readonly count: number
    /** Set when the turn is over: no callback will come. */
    readonly end: TurnStreamEnd | undefined
    readonly unsubscribe: () => void
  }
}

/** The end of a turn from how it ended in the session's actor. */
export const endOfExit = (exit: Exit.Exit<TurnReply, TurnError>): TurnStreamEnd =>
  Exit.match(exit, {
    onSuccess: ({ events: _events, ...reply }) => ({ event: "done", data: reply }),
    onFailure: (cause) => {
      const error = cause._tag === "Fail" ? cause.error : undefined
      return {
        event: "error",
        data: {
          ok: false,
          error: error?.error ?? "session_closed",
          message: error?.message ?? "The turn was interrupted"
        }
      }
    }
  })

/** The end of a stored turn. */
export const endOfStored = (turn: TurnSummary): TurnStreamEnd =>
  turn.stop_reason !== null
    ? {
      event: "done",
      data: {
        ok: true,
        session_id: turn.session_id,
        turn_index: turn.turn_index,
        stop_reason: turn.stop_reason,
        usage: turn.usage,
        changes: turn.changes
      }
    }
    : {
      event: "error",
      data: {
        ok: false,
        error: turn.error?.error ?? "turn_interrupted",
        message: turn.error?.message ?? "The turn did not complete"
      }
    }

/**
 * A turn accepted by a live session: what its streams read while it is queued or running. Each
 * message is serialized once, as it arrives: its streams send that text, and the turn's stored
 * `events` are those texts joined.
 */
export class LiveTurn implements TurnFeed {
  readonly messages: Array<AcpMessage> = []
  /** The messages' texts: what is stored. */
  readonly json: Array<string> = []
  /** What its streams send: `json` itself until a named event comes, then a copy with them. */
  private items: Array<FeedItem> = this.json
  /** Date.now() when the agent got it. */
  startedAt: number | undefined = undefined
  /** The workspace's tree when the agent got it (see `WorkspaceChanges`); undefined when not seen. */
  workspaceStart: string | undefined = undefined
  /** What it did to the workspace, once it is over (null: not seen). */
  changes: ReadonlyArray<WorkspaceChange> | null | undefined = undefined
  end: TurnStreamEnd | undefined = undefined
  private listeners: Set<{ onMessage: (item: FeedItem) => void; onEnd: (end: TurnStreamEnd) => void }> | undefined

  constructor(readonly turnIndex: number) {}

  /** The driver's `onMessage`: records the message and passes it on. */
  readonly push = (message: AcpMessage) => {
    const json = JSON.stringify(message)
    this.messages.push(message)
    this.json.push(json)
    if (this.items !== this.json) this.items.push(json)
    if (this.listeners !== undefined) for (const listener of this.listeners) listener.onMessage(json)
  }

  /** An event for its streams only (not stored with the turn). */
  pushEvent(event: string, data: unknown) {
    if (this.end !== undefined) return
    if (this.items === this.json) this.items = this.json.slice()
    const item: NamedEvent = { event, json: JSON.stringify(data) }
    this.items.push(item)
    if (this.listeners !== undefined) for (const listener of this.listeners) listener.onMessage(item)
  }

  /**
   * What is stored of the turn that ended with `events`: the texts of its first messages, at
   * most `maxBytes` of them (a JSON array's worth), and whether that is fewer than all.
   */
  storedTexts(events: ReadonlyArray<AcpMessage>, maxBytes: number): { texts: ReadonlyArray<string>; truncated: boolean } {
    const texts = events.length === this.json.length && events[0] === this.messages[0]
      ? this.json
      : events.map((event) => JSON.stringify(event))
    let bytes = 2
    for (let i = 0; i < texts.length; i++) {
      bytes += texts[i]!.length + (i === 0 ? 0 : 1)
      if (bytes > maxBytes) return { texts: texts.slice(0, i), truncated: true }
    }
    return { texts, truncated: false }
  }

  finish(end: TurnStreamEnd) {
    if (this.end !== undefined) return
    this.end = end
    const listeners = this.listeners
    this.listeners = undefined
    if (listeners !== undefined) for (const listener of listeners) listener.onEnd(end)
  }

  follow(onMessage: (item: FeedItem) => void, onEnd: (end: TurnStreamEnd) => void) {
    const snapshot = { messages: this.items, count: this.items.length, end: this.end }
    if (this.end !== undefined) return { ...snapshot, unsubscribe: () => {} }
    const listener = { onMessage, onEnd }
    ;(this.listeners ??= new Set()).add(listener)
    return { ...snapshot, unsubscribe: () => void this.listeners?.delete(listener) }
  }
}

/**
 * A turn that is over, as the ledger keeps it: nothing to follow, its messages read a stored page
 * at a time when a stream or a replay wants them, so no request holds a big turn whole.
 */
export interface StoredTurnFeed {
  readonly _tag: "StoredTurnFeed"
  readonly turnIndex: number
  readonly turn: TurnSummary
  /** How many messages it keeps. */
  readonly total: number
  readonly end: TurnStreamEnd
  /** Its stored pages from the one holding message `after + 1` (a page may start before it). */
  readonly pages: (after: number) => Stream.Stream<StoredEventsPage>
}

/** What a stream of a turn reads: the live turn, or the stored one once it is over. */
export type FollowedTurn = TurnFeed | StoredTurnFeed

/** A stored turn that is over, its messages read from `pages` (the ledger's `turnEventPages` for it). */
export const storedFeed = (
  head: StoredTurnHead,
  pages: (after: number) => Stream.Stream<StoredEventsPage>
): StoredTurnFeed => ({
  _tag: "StoredTurnFeed",
  turnIndex: head.turn.turn_index,
  turn: head.turn,
  total: head.total,
  end: endOfStored(head.turn),
  pages
})

/** The text of a turn: its `agent_message_chunk` texts joined. */
export const agentText = (events: ReadonlyArray<AcpMessage>) => {
  let text = ""
  for (const event of events) {
    if (event["method"] !== "session/update") continue
    const update = (event["params"] as any)?.update
    if (update?.sessionUpdate === "agent_message_chunk" && typeof update.content?.text === "string") {
      text += update.content.text
    }
  }
  return text
}
