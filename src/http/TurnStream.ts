import { HttpServerResponse } from "@effect/platform"
import { Effect, Exit, Queue, Stream } from "effect"
import type { AcpMessage, TurnReply } from "../domain/Session.js"
import type { TurnError } from "../services/sessions/Sessions.js"

type Item =
  | { readonly _tag: "message"; readonly message: AcpMessage }
  | { readonly _tag: "end"; readonly exit: Exit.Exit<TurnReply, TurnError> }

const sse = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`

const encodeEnd = (exit: Exit.Exit<TurnReply, TurnError>): string =>
  Exit.match(exit, {
    onSuccess: ({ events: _events, ...reply }) => sse("done", reply),
    onFailure: (cause) => {
      const error = cause._tag === "Fail" ? cause.error : undefined
      return sse("error", {
        ok: false,
        error: error?.error ?? "session_closed",
        message: error?.message ?? "The turn was interrupted"
      })
    }
  })

/**
 * The turn as server-sent events: `acp` per message as it happens, then `done` or `error`.
 * The turn runs in the session's actor: a client that goes away stops only this stream.
 */
export const turnEventStream = <E, R>(
  start: (onMessage: (message: AcpMessage) => void) => Effect.Effect<Effect.Effect<TurnReply, TurnError>, E, R>
) =>
  Effect.gen(function*() {
    const items = yield* Queue.unbounded<Item>()
    const reply = yield* start((message) => Queue.unsafeOffer(items, { _tag: "message", message }))
    const body = Stream.unwrapScoped(
      Effect.gen(function*() {
        // Every message is queued before the reply completes, so `end` comes last.
        yield* reply.pipe(
          Effect.exit,
          Effect.flatMap((exit) => Queue.offer(items, { _tag: "end", exit })),
          Effect.forkScoped
        )
        return Stream.fromQueue(items).pipe(
          Stream.takeUntil((item) => item._tag === "end"),
          Stream.map((item) => item._tag === "message" ? sse("acp", item.message) : encodeEnd(item.exit)),
          Stream.encodeText
        )
      })
    )
    return HttpServerResponse.stream(body, {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
    })
  })
