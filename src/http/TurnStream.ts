import { HttpServerResponse } from "@effect/platform"
import { Chunk, Effect, Queue, Schema, Stream } from "effect"
import { TurnReply } from "../domain/Session.js"
import type { TurnSummary } from "../domain/Turn.js"
import { pageMessageTexts } from "../services/ledger/Ledger.js"
import type { FeedItem, FollowedTurn, StoredTurnFeed, TurnFeed } from "../services/sessions/runtime/TurnFeed.js"

interface Item {
  readonly text: string
  readonly last: boolean
}

const sse = (event: string, id: string, json: string) => `event: ${event}\nid: ${id}\ndata: ${json}\n\n`

const sseHeaders = { "cache-control": "no-cache", "x-accel-buffering": "no" }

/** A live turn's events: what it said so far, then what it says, until its end. */
const liveEvents = (feed: TurnFeed, after: number) => {
  const prefix = `${feed.turnIndex}.`
  return Stream.unwrapScoped(
    Effect.gen(function*() {
      const items = yield* Queue.unbounded<Item>()
      let seq = 0
      const message = (item: FeedItem) => {
        if (typeof item !== "string") {
          if (seq >= after) Queue.unsafeOffer(items, { text: sse(item.event, prefix + seq, item.json), last: false })
        } else if (++seq > after) Queue.unsafeOffer(items, { text: sse("acp", prefix + seq, item), last: false })
      }
      const end = (end: { readonly event: string; readonly data: unknown }) => {
        // Resumed after the last event: nothing is left to send.
        if (++seq > after) {
          Queue.unsafeOffer(items, { text: sse(end.event, prefix + seq, JSON.stringify(end.data)), last: true })
        }
        else Queue.unsafeOffer(items, { text: "", last: true })
      }
      // What the turn said so far is queued in the same synchronous step as the subscription,
      // so later messages come after it.
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          const followed = feed.follow(message, end)
          for (let i = 0; i < followed.count; i++) message(followed.messages[i]!)
          if (followed.end !== undefined) end(followed.end)
          return followed
        }),
        (followed) => Effect.sync(followed.unsubscribe)
      )
      return Stream.fromQueue(items).pipe(
        Stream.takeUntil((item) => item.last),
        // What is queued when the response asks for more goes out as one write, not one per event.
        Stream.mapChunks((chunk) => {
          let text = ""
          for (const item of chunk) text += item.text
          return text === "" ? Chunk.empty<string>() : Chunk.of(text)
        })
      )
    })
  )
}

const encoder = new TextEncoder()

/**
 * Stored turns are replayed one page at a time across the whole gateway, each page after a
 * macrotask: a page (its messages split, framed and encoded, about 256 KB) is a few milliseconds
 * of the event loop, and replays (ten parallel reads of a 16 MB turn, say) must leave it to other
 * requests between their pages, not run back to back (fiber yields are microtasks, which I/O
 * waits behind). In line, the replays take turns; each other request waits behind one page at
 * most, whoever replays what.
 */
const replayLine = Effect.unsafeMakeSemaphore(1)
const nextMacrotask = Effect.async<void>((resume) => {
  const immediate = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(immediate))
})
const inLine = <A>(work: () => A) => replayLine.withPermits(1)(Effect.zipRight(nextMacrotask, Effect.sync(work)))

/**
 * A stored turn's events, the same text as a live turn's stream sends once it is over: its
 * messages read and written a stored page at a time (the response waits for the client before the
 * next page is read), then its end. A stored turn has no named events.
 */
const storedEvents = (feed: StoredTurnFeed, after: number): Stream.Stream<Uint8Array> => {
  const prefix = `${feed.turnIndex}.`
  const endSeq = feed.total + 1
  const messages = feed.pages(after).pipe(
    Stream.mapEffect((page) =>
      inLine(() => {
        // Written straight into one buffer (the page's bytes and each event's frame): no string
        // of the page's events is built, so a page leaves little garbage behind.
        const texts = pageMessageTexts(page, after)
        let seq = Math.max(after, page.first - 1)
        const bytes = Buffer.allocUnsafe(Buffer.byteLength(page.json) + texts.length * (prefix.length + 40))
        let at = 0
        for (const json of texts) {
          at += bytes.write(`event: acp\nid: ${prefix}${++seq}\ndata: `, at, "latin1")
          at += bytes.write(json, at)
          at += bytes.write("\n\n", at, "latin1")
        }
        return bytes.subarray(0, at)
      })
    )
  )
  const end = endSeq > after ? sse(feed.end.event, prefix + endSeq, JSON.stringify(feed.end.data)) : ""
  return Stream.concat(messages, Stream.succeed(encoder.encode(end))).pipe(Stream.filter((bytes) => bytes.length > 0))
}

/**
 * A turn as server-sent events: `acp` per message, then `done` or `error`. Every event has the
 * id `<turn_index>.<seq>` (`seq` counts the turn's events from 1), and the stream starts after
 * event `after` (0: from the start). Named events (`permission`, `permission_resolved`) are not
 * stored with the turn: they take the id of the message before them, so ids stay the same when
 * the stored turn is read again, and a stream resumed at that id sends them again. The turn runs in the session's actor: a client that goes
 * away stops only this stream. A stored turn is read a page at a time as the client takes it.
 */
export const turnEventStream = (feed: FollowedTurn, after = 0, onClose?: () => void) => {
  const events = "_tag" in feed ? storedEvents(feed, after) : Stream.encodeText(liveEvents(feed, after))
  const body = events.pipe(
    // The app's stream slot (`max_streams`) is free again once the stream ends, however it ends.
    Stream.ensuring(Effect.sync(() => onClose?.()))
  )
  return HttpServerResponse.stream(body, { contentType: "text/event-stream", headers: sseHeaders })
}

/**
 * A `/turn` reply as the API encodes it: TurnReply's own encoding, every member of it, but with its
 * messages passed on as they are (they are JSON already: no pass over each of them).
 */
export const encodeTurnReply = Schema.encodeSync(Schema.Struct({ ...TurnReply.fields, events: Schema.Array(Schema.Unknown) }))
/** Where a reply's `events` array opens in its JSON text (the first: in a string a quote is escaped). */
const emptyEvents = `"events":[]`

/** The `/turn` reply a stored turn answers again (an idempotent replay), with `events`. */
export const storedReplyOf = (turn: TurnSummary, events: TurnReply["events"]): TurnReply => ({
  ok: true,
  session_id: turn.session_id,
  turn_index: turn.turn_index,
  stop_reason: turn.stop_reason ?? "end_turn",
  usage: turn.usage,
  events,
  // Said only when it is so: a whole turn replays exactly as it was answered.
  ...(turn.truncated ? { truncated: true } : {}),
  // What the turn did to the workspace, as its first answer said.
  ...(turn.changes === undefined ? {} : { changes: turn.changes })
})

/**
 * A stored turn as the `TurnReply` JSON an idempotent `/turn` replay answers, written as it is
 * read: the reply's fields, then its stored messages a page at a time, each as stored (the same
 * text a reply built whole from the stored turn has), `truncated` when the stored turn says so.
 */
export const storedTurnReply = (feed: StoredTurnFeed, headers: Record<string, string>) => {
  const whole = JSON.stringify(encodeTurnReply(storedReplyOf(feed.turn, [])))
  const at = whole.indexOf(emptyEvents) + emptyEvents.length - 1
  const events = feed.pages(0).pipe(
    // A page's messages without its brackets; pages after the first open with a comma.
    Stream.map((page) => page.json.slice(1, -1)),
    Stream.filter((inner) => inner.length > 0),
    Stream.zipWithIndex,
    Stream.mapEffect(([inner, i]) => inLine(() => encoder.encode(i === 0 ? inner : "," + inner)))
  )
  const body = Stream.concat(
    Stream.succeed(encoder.encode(whole.slice(0, at))),
    Stream.concat(events, Stream.succeed(encoder.encode(whole.slice(at))))
  )
  return HttpServerResponse.stream(body, { contentType: "application/json", headers })
}
