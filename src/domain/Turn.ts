import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import { Schema } from "effect"
import { IntFromString, SessionId, UnixSeconds } from "./Ids.js"
import { AcpMessage } from "./Session.js"
import { TurnUsage } from "./Usage.js"
import { TurnChanges } from "./WorkspaceChange.js"

// Stored turns (`GET /sessions/{id}/turns`, `/turns/{n}`, `/turns/{n}/stream`) and async turns.

export const TurnStatus = Schema.Literal("queued", "running", "completed", "failed", "cancelled", "interrupted")
  .annotations({
    description: "`queued` once accepted, `running` while the agent works on it, then `completed` (the agent " +
      "answered), `failed` (the agent failed or the turn timed out), `cancelled` (cancelled, or the session " +
      "was closed under it) or `interrupted` (the gateway stopped during it: its outcome is unknown)"
  })
export type TurnStatus = typeof TurnStatus.Type

export { TurnUsage } from "./Usage.js"

export const TurnFailure = Schema.Struct({
  error: Schema.String.annotations({
    description: "A stable code: `agent_failed`, `turn_timeout`, `session_closed`, `turn_interrupted`, ..."
  }),
  message: Schema.String.annotations({ description: "What happened, for people" })
}).annotations({ identifier: "TurnFailure", description: "Why the turn did not complete" })

const turnFields = {
  session_id: SessionId,
  turn_index: Schema.Int.annotations({ description: "The turn's number in its session, from 1" }),
  status: TurnStatus,
  prompt: Schema.String.annotations({ description: "The prompt as it was sent" }),
  files: Schema.Array(Schema.String).annotations({ description: "The files the turn named (empty when none)" }),
  accepted_at: UnixSeconds,
  started_at: Schema.NullOr(UnixSeconds).annotations({ description: "When the agent got it; null while queued" }),
  ended_at: Schema.NullOr(UnixSeconds).annotations({ description: "When it ended; null until then" }),
  duration_ms: Schema.NullOr(Schema.Int).annotations({ description: "How long the agent worked on it, in ms" }),
  stop_reason: Schema.NullOr(Schema.String).annotations({
    description: "The prompt response's `stopReason`; null unless the agent answered"
  }),
  usage: TurnUsage,
  error: Schema.NullOr(TurnFailure).annotations({ description: "Why it did not complete; null otherwise" }),
  truncated: Schema.Boolean.annotations({
    description: "Whether the stored turn keeps only the first CLAWDFORGE_TURN_MAX_STORED_MB of its messages (its " +
      "live stream carried them all)"
  }),
  changes: Schema.optional(Schema.NullOr(TurnChanges).annotations({
    description: "What the turn did to the workspace while it ran; null until it ends (or when it could not be seen)"
  }))
}

/** A stored turn without its messages, as `GET /sessions/{id}/turns` lists it. */
export class TurnSummary extends Schema.Class<TurnSummary>("TurnSummary")(turnFields, {
  description: "A stored turn, without its messages"
}) {}

export const TurnList = Schema.Struct({
  ok: Schema.Literal(true),
  count: Schema.Int.annotations({ description: "How many turns `turns` holds" }),
  turns: Schema.Array(TurnSummary)
}).annotations({ identifier: "TurnList", description: "A page of the session's turns, oldest first" })

export const TurnDetail = Schema.Struct({
  ok: Schema.Literal(true),
  ...turnFields,
  text: Schema.String.annotations({
    description: "What the agent said in this page of events: its `agent_message_chunk` texts joined"
  }),
  events: Schema.Array(AcpMessage).annotations({
    description: "A page of the turn's ACP messages in order (so far, while it runs): those after `events_after`, " +
      "at most `events_limit`"
  }),
  events_total: Schema.Int.annotations({ description: "How many messages the turn has stored (so far, while it runs)" }),
  next_events_after: Schema.NullOr(Schema.Int).annotations({
    description: "The `events_after` of the next page; null when this page holds the last message so far"
  })
}).annotations({ identifier: "TurnDetail", description: "A stored turn with a page of its messages" })
export type TurnDetail = typeof TurnDetail.Type

export const TurnAccepted = Schema.Struct({
  ok: Schema.Literal(true),
  session_id: SessionId,
  turn_index: Schema.Int.annotations({ description: "The index the turn took; read it back at `/turns/{n}`" }),
  status: Schema.Literal("queued")
}).annotations({
  identifier: "TurnAccepted",
  description: "The turn is recorded and waits in the session's mailbox",
  // Answered 202 Accepted.
  ...HttpApiSchema.annotations({ status: 202 })
})

export const ListTurnsParams = Schema.Struct({
  after: Schema.optionalWith(
    IntFromString({ minimum: 0, maximum: 2147483647, description: "Only turns with a greater `turn_index` (default 0)" }),
    { exact: true }
  ),
  limit: Schema.optionalWith(
    IntFromString({ minimum: 1, maximum: 1000, description: "At most this many turns (default 100)" }),
    { exact: true }
  )
})

/** The default page of `GET /sessions/{id}/turns/{n}`'s events, and the largest. */
export const defaultEventsLimit = 1000
export const maxEventsLimit = 10000

export const TurnEventsParams = Schema.Struct({
  events_after: Schema.optionalWith(
    IntFromString({
      minimum: 0,
      maximum: 2147483647,
      description: "Only the messages after this many (default 0: from the first)"
    }),
    { exact: true }
  ),
  events_limit: Schema.optionalWith(
    IntFromString({
      minimum: 1,
      maximum: maxEventsLimit,
      description: `At most this many messages (1 to ${maxEventsLimit}, default ${defaultEventsLimit})`
    }),
    { exact: true }
  )
})

export const TurnPathParams = Schema.Struct({
  id: Schema.String.annotations({ description: "The `session_id` that `POST /sessions` answered" }),
  n: IntFromString({ minimum: 1, maximum: 2147483647, description: "The turn's `turn_index`" })
})

/** `<turn_index>.<seq>`: the SSE id of an event of a turn's stream. */
export const LastEventId = Schema.String.pipe(
  Schema.pattern(/^[0-9]{1,10}\.[0-9]{1,10}$/)
).annotations({
  description: "The `id` of the last event the client received (`<turn_index>.<seq>`): the stream resumes " +
    "right after it",
  message: (issue) => ({
    message: `Expected an event id \`<turn_index>.<seq>\`, actual ${JSON.stringify(issue.actual)}`,
    override: true
  })
})

export const TurnStreamHeaders = Schema.Struct({
  "last-event-id": Schema.optionalWith(LastEventId, { exact: true })
})
