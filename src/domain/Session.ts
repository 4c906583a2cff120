import { HttpApiSchema } from "@effect/platform"
import { Schema } from "effect"
import { AppName, SessionId, UnixSeconds } from "./Ids.js"

export const PermissionMode = Schema.Literal("approve-all", "approve-reads", "deny-all").annotations({
  description: "How the gateway answers the agent's session/request_permission"
})
export type PermissionMode = typeof PermissionMode.Type

export const SessionStatus = Schema.Literal("open", "closed")
export type SessionStatus = typeof SessionStatus.Type

export const Meta = Schema.Record({ key: Schema.String, value: Schema.Unknown }).annotations({
  description: "Free-form JSON object stored with the session"
})

/** One ACP JSON-RPC message, as `acpx --format json` prints it. */
export const AcpMessage = Schema.Record({ key: Schema.String, value: Schema.Unknown }).annotations({
  identifier: "AcpMessage",
  description: "An ACP JSON-RPC message (request, notification or response)"
})
export type AcpMessage = typeof AcpMessage.Type

/** A session as the ledger holds it and the API reports it. */
export class Session extends Schema.Class<Session>("Session")({
  session_id: SessionId,
  app_name: AppName,
  agent: Schema.String,
  meta: Meta,
  cwd: Schema.String,
  permission_mode: PermissionMode,
  created_at: UnixSeconds,
  last_turn_at: Schema.NullOr(UnixSeconds),
  closed_at: Schema.NullOr(UnixSeconds),
  turn_count: Schema.Int,
  status: SessionStatus
}) {}

const Ok = Schema.Literal(true)

export const CreateSessionRequest = Schema.Struct({
  agent: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(128)),
  meta: Schema.optional(Meta),
  cwd: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(4096))),
  permission_mode: Schema.optional(PermissionMode)
})
export type CreateSessionRequest = typeof CreateSessionRequest.Type

export const SessionReply = Schema.Struct({ ok: Ok, ...Session.fields }).annotations({
  identifier: "SessionReply"
})

export const SessionList = Schema.Struct({
  ok: Ok,
  count: Schema.Int,
  sessions: Schema.Array(Session)
}).annotations({ identifier: "SessionList" })

export const ListSessionsParams = Schema.Struct({
  status: Schema.optional(SessionStatus),
  limit: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 1000)))
})

export const TurnRequest = Schema.Struct({
  prompt: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(1_000_000)),
  files: Schema.optional(Schema.Array(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(4096))).pipe(
    Schema.maxItems(100)
  ))
})
export type TurnRequest = typeof TurnRequest.Type

export const TurnReply = Schema.Struct({
  ok: Ok,
  session_id: SessionId,
  turn_index: Schema.Int,
  stop_reason: Schema.String,
  events: Schema.Array(AcpMessage)
}).annotations({ identifier: "TurnReply" })
export type TurnReply = typeof TurnReply.Type

export const CloseReply = Schema.Struct({
  ok: Ok,
  already_closed: Schema.optional(Schema.Boolean)
}).annotations({ identifier: "CloseReply" })

/** Path id: any string; one that is not a well-formed id is simply not found (404). */
export const SessionIdParam = Schema.Struct({ id: Schema.String })

export const CancelReply = Schema.Struct({
  ok: Ok,
  cancelled: Schema.Boolean.annotations({ description: "Whether a turn was running (it ends with stop_reason `cancelled`)" })
}).annotations({ identifier: "CancelReply" })

/** `text/event-stream`: `event: acp` per message, then `event: done` (the turn reply) or `event: error`. */
export const TurnEventStream = Schema.String.pipe(
  HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/event-stream" })
).annotations({ identifier: "TurnEventStream" })
