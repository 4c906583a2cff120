import { Schema } from "effect"
import { UnixSeconds } from "./Ids.js"

/** An option the agent offered with its permission request. */
export const PermissionOption = Schema.Struct({
  option_id: Schema.String.annotations({ description: "What to answer with" }),
  name: Schema.String,
  kind: Schema.String.annotations({ description: "`allow_once`, `allow_always`, `reject_once` or `reject_always`" })
})

/** A request of the agent's held for the caller (`permission_mode: "ask"`). */
export const PermissionRequest = Schema.Struct({
  request_id: Schema.String,
  kind: Schema.Literal("permission", "elicitation").annotations({
    description: "`permission`: a tool call asks to run (answer with `option_id`); `elicitation`: the agent asks " +
      "for input (answer with `action` and, to accept, `content`)"
  }),
  turn_index: Schema.NullOr(Schema.Int).annotations({ description: "The turn it came in; null between turns" }),
  tool_call: Schema.NullOr(Schema.Record({ key: Schema.String, value: Schema.Unknown })).annotations({
    description: "The tool call asking (`toolCallId`, `title`, `kind`, `rawInput`, ...); null for an elicitation"
  }),
  options: Schema.Array(PermissionOption).annotations({ description: "What the caller may answer; empty for an elicitation" }),
  elicitation: Schema.optionalWith(
    Schema.Struct({
      message: Schema.String,
      requested_schema: Schema.Unknown.annotations({ description: "The JSON Schema of the content asked for" })
    }),
    { exact: true }
  ),
  requested_at: UnixSeconds,
  expires_at: UnixSeconds.annotations({
    description: "After this the gateway answers: the first `reject_*` option (an elicitation is declined)"
  })
}).annotations({ identifier: "PermissionRequest", description: "A request of the agent waiting for the caller" })
export type PermissionRequest = typeof PermissionRequest.Type

export const PermissionList = Schema.Struct({
  ok: Schema.Literal(true),
  count: Schema.Int,
  permissions: Schema.Array(PermissionRequest)
}).annotations({ identifier: "PermissionList", description: "The session's pending requests, oldest first" })

export const PermissionParams = Schema.Struct({
  id: Schema.String.annotations({ description: "The `session_id`" }),
  request_id: Schema.String.annotations({ description: "The `request_id` of a pending request" })
})

/** The caller's answer: `option_id` for a permission; `action` (and `content`) for an elicitation. */
export const PermissionAnswer = Schema.Struct({
  option_id: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256))),
  action: Schema.optional(Schema.Literal("accept", "decline", "cancel")),
  content: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
}).annotations({
  identifier: "PermissionAnswer",
  // A misspelt field is a 400 that names it (`unknown field "modle"`), never silently ignored.
  parseOptions: { onExcessProperty: "error" },
  description: "A permission request is answered with one of its `option_id`s; an elicitation with `action` " +
    "(`accept` with `content`, `decline` or `cancel`)"
})
export type PermissionAnswer = typeof PermissionAnswer.Type

/** `event: permission_resolved`: how a held request was answered, and by whom. */
export const PermissionResolved = Schema.Struct({
  request_id: Schema.String,
  outcome: Schema.String.annotations({ description: "`selected`, `cancelled`, or an elicitation's action" }),
  option_id: Schema.NullOr(Schema.String),
  by: Schema.Literal("caller", "admin", "timeout", "cancel").annotations({
    description: "`caller`: the session's app; `admin`: an operator (`/admin`); `timeout`, `cancel`: the gateway"
  })
}).annotations({ identifier: "PermissionResolved", description: "The data of `event: permission_resolved`" })
export type PermissionResolved = typeof PermissionResolved.Type

export const AnswerReply = Schema.Struct({ ok: Schema.Literal(true) }).annotations({
  identifier: "AnswerReply",
  description: "The answer reached the agent"
})
