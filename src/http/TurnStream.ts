import { HttpServerResponse } from "@effect/platform"
import { Effect, Queue, Stream } from "effect"
import type { FeedItem, TurnFeed } from "../services/sessions/runtime/TurnFeed.js"

interface Item {
  readonly text: string
  readonly last: boolean
}

const sse = (event: string, id: string, json: string) => `event: ${event}\nid: ${id}\ndata: ${json}\n\n`

/**
 * A turn as server-sent events: `acp` per message, then `done` or `error`. Every event has the
 * id `<turn_index>.<seq>` (`seq` counts the turn's events from 1), and the stream starts after
 * event `after` (0: from the start). Named events (`permission`, `permission_resolved`) are not
 * stored with the turn: they take the id of the message before them, so ids stay the same when
 * the stored turn is read again, and a stream resumed at that id sends them again. The turn runs in the session's actor: a client that goes
 * away stops only this stream.
 */
export const turnEventStream = (feed: TurnFeed, after = 0, onClose?: () => void) => {
  const prefix = `${feed.turnIndex}.`
  const body = Stream.unwrapScoped(
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
          for (let i = 0; i < followed.count; i++) message(followed.messages[i])
          if (followed.end !== undefined) end(followed.end)
          return followed
        }),
        (followed) => Effect.sync(followed.unsubscribe)
      )
      return Stream.fromQueue(items).pipe(
        Stream.takeUntil((item) => item.last),
        Stream.map((item) => item.text),
        Stream.encodeText
      )
    })
  ).pipe(
    // The app's stream slot (`max_streams`) is free again once the stream ends, however it ends.
    Stream.ensuring(Effect.sync(() => onClose?.()))
  )
  return HttpServerResponse.stream(body, {
    contentType: "text/event-stream",
    headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
  })
}
