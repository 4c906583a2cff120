import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import { Either, ParseResult, Schema, type SchemaAST as AST } from "effect"
import { AppName, IntFromString, SessionId, UnixSeconds } from "./Ids.js"
import { TurnUsage } from "./Usage.js"
import { TurnChanges } from "./WorkspaceChange.js"
import { PermissionRequest, PermissionResolved } from "./Permission.js"

export const PermissionMode = Schema.Literal("approve-all", "approve-reads", "deny-all", "ask").annotations({
  description: "How the gateway answers the agent's `session/request_permission`: allow everything, allow " +
    "reads only, refuse everything, or `ask`: hold each request (and each elicitation) for the caller, " +
    "who answers it with `POST /sessions/{id}/permissions/{request_id}`"
})
export type PermissionMode = typeof PermissionMode.Type

export const SessionStatus = Schema.Literal("open", "closed").annotations({
  description: "`open` until the session is closed or swept"
})
export type SessionStatus = typeof SessionStatus.Type

export const Meta = Schema.Record({ key: Schema.String, value: Schema.Unknown }).annotations({
  description: "Free-form JSON object stored with the session"
})

/** One ACP JSON-RPC message, as `acpx --format json` prints it. */
export const AcpMessage = Schema.Record({ key: Schema.String, value: Schema.Unknown }).annotations({
  identifier: "AcpMessage",
  description: "An ACP JSON-RPC message (request, notification or response), as the agent and the gateway " +
    "exchanged it. Every member is optional: tell messages apart by `method` (requests and " +
    "notifications) or `result`/`error` (responses).",
  // The type stays an open record; the document names the JSON-RPC members a reader looks for.
  jsonSchema: {
    type: "object",
    properties: {
      jsonrpc: { type: "string", enum: ["2.0"] },
      id: { type: ["string", "integer", "null"], description: "Request id; absent on notifications" },
      method: { type: "string", description: "e.g. `session/prompt`, `session/update`, `session/request_permission`" },
      params: { description: "The request's or notification's parameters" },
      result: { description: "A response's result; the prompt response's is `{stopReason}`" },
      error: {
        type: "object",
        required: ["code", "message"],
        properties: { code: { type: "integer" }, message: { type: "string" }, data: {} },
        description: "A failed response's error"
      }
    },
    additionalProperties: true
  }
})
export type AcpMessage = typeof AcpMessage.Type

/** One setting the agent offers: a model, a mode, or another of its config options. */
export class ConfigOption extends Schema.Class<ConfigOption>("ConfigOption")({
  id: Schema.String.annotations({ description: "What `config` keys it by (`session/set_config_option`'s `configId`)" }),
  name: Schema.String,
  category: Schema.NullOr(Schema.String).annotations({ description: "`model`, `mode`, ... when the agent says" }),
  current_value: Schema.NullOr(Schema.String),
  options: Schema.Array(Schema.Struct({ value: Schema.String, name: Schema.String })).annotations({
    description: "The values the agent accepts"
  })
}, { description: "A setting the agent offers" }) {}

/** A session as the ledger holds it and the API reports it. */
export class Session extends Schema.Class<Session>("Session")({
  session_id: SessionId,
  app_name: AppName,
  agent: Schema.String.annotations({ description: "The agent registry entry the session runs" }),
  meta: Meta,
  cwd: Schema.String.annotations({ description: "The agent's working directory" }),
  permission_mode: PermissionMode,
  created_at: UnixSeconds,
  last_turn_at: Schema.NullOr(UnixSeconds).annotations({ description: "When the last turn ended; null before the first" }),
  closed_at: Schema.NullOr(UnixSeconds).annotations({ description: "When the session was closed; null while open" }),
  turn_count: Schema.Int.annotations({ description: "Turns accepted so far" }),
  status: SessionStatus,
  model: Schema.NullOr(Schema.String).annotations({ description: "The model the agent runs, when it offers a choice" }),
  mode: Schema.NullOr(Schema.String).annotations({ description: "The agent's mode, when it has modes" }),
  config_options: Schema.Array(ConfigOption).annotations({
    description: "What the agent offers (its config options and modes), kept current from its updates"
  }),
  // Not stored: the gateway tells it as it answers (false until then).
  live: Schema.Boolean.annotations({
    description: "Whether its agent runs now (it holds a pool slot); false while the session hibernates " +
      "(CLAWDFORGE_AGENT_IDLE_SECS): its next turn starts the agent again and resumes it"
  }).pipe(Schema.propertySignature, Schema.withConstructorDefault(() => false))
}, { description: "A session's state" }) {}

const Ok = Schema.Literal(true)

const Prompt = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(1_000_000)).annotations({
  description: "What to ask the agent"
})

const SettingValue = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256))

/** Model, mode and config options: applied through ACP after `session/new`, or later with PATCH. */
export const AgentSettings = Schema.Struct({
  model: Schema.optional(SettingValue.annotations({
    description: "A value of the agent's config option whose category (or id) is `model`"
  })),
  mode: Schema.optional(SettingValue.annotations({ description: "One of the agent's modes (`session/set_mode`)" })),
  config: Schema.optional(
    Schema.Record({ key: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256)), value: SettingValue }).annotations({
      description: "`{config_id: value}` for `session/set_config_option`, one per entry"
    })
  )
})
export type AgentSettings = typeof AgentSettings.Type

/** The most `meta` a session keeps, as JSON: every list of sessions carries it. */
export const maxMetaBytes = 16 * 1024

/** A create's `meta`: at most `maxMetaBytes` of JSON. */
const CreateMeta = Meta.pipe(
  Schema.filter((meta) => Buffer.byteLength(JSON.stringify(meta), "utf8") <= maxMetaBytes, {
    message: () => `Expected at most ${maxMetaBytes / 1024} KB of JSON`
  })
).annotations({ description: `Free-form JSON object stored with the session, at most ${maxMetaBytes / 1024} KB` })

/** A create's `git`: the repository cloned into the fresh workspace before the agent starts. */
export const GitSource = Schema.Struct({
  url: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(4096)).annotations({
    description: "An `https://`, `http://`, `ssh://` or `git://` URL, or scp-like `user@host:path`; a bare absolute " +
      "path (or `file://`) only when the operator allows it (CLAWDFORGE_GIT_ALLOW_FILE). Hosts on the gateway's own " +
      "networks are refused as webhooks' are; a user and password in an http(s) URL are used for the clone and " +
      "kept out of errors and of the clone's `origin`"
  }),
  ref: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256)).annotations({
    description: "A branch, tag or commit to check out; by default the repository's default branch"
  }))
}).annotations({
  identifier: "GitSource",
  description: "A repository cloned into the session's workspace (inside the session's sandbox, as the agent's user, " +
    "under the app's network rule) before the agent starts; not with `cwd`",
  // A misspelt field is a 400 that names it, as in the create itself.
  parseOptions: { onExcessProperty: "error" }
})
export type GitSource = typeof GitSource.Type

export const CreateSessionRequest = Schema.Struct({
  agent: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(128)).annotations({
    description: "An agent registry entry: a built-in (`claude`, `codex`, `gemini`, `echo`) or one named in " +
      "CLAWDFORGE_AGENTS. An unknown name is a 400 listing the known ones."
  }),
  meta: Schema.optional(CreateMeta),
  cwd: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(4096)).annotations({
    description: "The agent's working directory; by default a fresh folder under CLAWDFORGE_WORKSPACE_ROOT"
  })),
  permission_mode: Schema.optional(PermissionMode),
  git: Schema.optional(GitSource),
  ...AgentSettings.fields
}).annotations({
  // A misspelt field is a 400 that names it (`unknown field "modle"`), never silently ignored.
  parseOptions: { onExcessProperty: "error" },
})
export type CreateSessionRequest = typeof CreateSessionRequest.Type

export const UpdateSessionRequest = AgentSettings.annotations({
  identifier: "UpdateSessionRequest",
  // A misspelt field is a 400 that names it (`unknown field "modle"`), never silently ignored.
  parseOptions: { onExcessProperty: "error" },
  description: "The settings to change; those left out stay as they are"
})
export type UpdateSessionRequest = typeof UpdateSessionRequest.Type

export const SessionReply = Schema.Struct({ ok: Ok, ...Session.fields }).annotations({
  identifier: "SessionReply",
  description: "A session's state"
})

export const SessionList = Schema.Struct({
  ok: Ok,
  count: Schema.Int.annotations({ description: "How many sessions `sessions` holds" }),
  sessions: Schema.Array(Session)
}).annotations({ identifier: "SessionList", description: "The caller's sessions, newest first" })

export const ListSessionsParams = Schema.Struct({
  status: Schema.optionalWith(SessionStatus.annotations({ description: "Only open or only closed sessions" }), {
    exact: true
  }),
  limit: Schema.optionalWith(
    IntFromString({ minimum: 1, maximum: 1000, description: "At most this many sessions (default 100)" }),
    { exact: true }
  )
})

export const TurnRequest = Schema.Struct({
  prompt: Prompt,
  files: Schema.optional(
    Schema.Array(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(4096))).pipe(Schema.maxItems(100))
      .annotations({ description: "Paths the agent should look at, named to it before the prompt text (at most 100)" })
  )
}).annotations({
  // A misspelt field is a 400 that names it (`unknown field "modle"`), never silently ignored.
  parseOptions: { onExcessProperty: "error" },
})
export type TurnRequest = typeof TurnRequest.Type

export const TurnReply = Schema.Struct({
  ok: Ok,
  session_id: SessionId,
  turn_index: Schema.Int.annotations({ description: "The turn's number in its session, from 1" }),
  stop_reason: Schema.String.annotations({
    description: "The prompt response's `stopReason`: `end_turn`, `max_tokens`, `refusal`, `cancelled`, ..."
  }),
  usage: TurnUsage,
  events: Schema.Array(AcpMessage).annotations({ description: "The turn's ACP messages, in order" }),
  truncated: Schema.optional(Schema.Boolean.annotations({
    description: "In a replay (`Idempotency-Key`), answered from the stored turn: true when it keeps only the first " +
      "CLAWDFORGE_TURN_MAX_STORED_MB of the messages"
  })),
  changes: Schema.optional(Schema.NullOr(TurnChanges))
}).annotations({ identifier: "TurnReply", description: "A turn that ran to its end" })
export type TurnReply = typeof TurnReply.Type

export const CloseReply = Schema.Struct({
  ok: Ok,
  already_closed: Schema.optional(Schema.Boolean.annotations({ description: "Present when it was closed before" }))
}).annotations({ identifier: "CloseReply", description: "The session is closed" })

/** Path id: any string; one that is not a well-formed id is simply not found (404). */
export const SessionIdParam = Schema.Struct({
  id: Schema.String.annotations({ description: "The `session_id` that `POST /sessions` answered" })
})

export const CancelReply = Schema.Struct({
  ok: Ok,
  cancelled: Schema.Boolean.annotations({ description: "Whether a turn was running (it ends with stop_reason `cancelled`)" })
}).annotations({ identifier: "CancelReply", description: "Whether a running turn was cancelled" })

// The streamed turn (`POST /sessions/{id}/turn/stream`): the data of each server-sent event.

/** `event: done`: the `/turn` reply without `events` (they were streamed one by one). */
export const TurnDone = TurnReply.omit("events").annotations({
  identifier: "TurnDone",
  description: "The data of `event: done`, the stream's last event when the turn ran to its end: the `/turn` " +
    "reply without `events`"
})
export type TurnDone = typeof TurnDone.Type

/** `event: error`: the turn failed after its stream had started. */
export const TurnStreamError = Schema.Struct({
  ok: Schema.Literal(false),
  error: Schema.String.annotations({
    description: "A stable code, as the error replies have: `agent_failed`, `turn_timeout`, `session_closed`, ..."
  }),
  message: Schema.String.annotations({ description: "What happened, for people" })
}).annotations({
  identifier: "TurnStreamError",
  description: "The data of `event: error`, the stream's last event when the turn failed after the stream " +
    "had started (the agent failed or exited, the turn timed out, the session was closed under it)"
})
export type TurnStreamError = typeof TurnStreamError.Type

/** What a generated SSE client yields per event: the event's parsed `data`. */
export const TurnStreamEventData = Schema.Union(AcpMessage, TurnDone, TurnStreamError, PermissionRequest, PermissionResolved)
  .annotations({
    identifier: "TurnStreamEventData",
    description: "The JSON `data` of one event of a streamed turn: an `AcpMessage` for each `event: acp`, then " +
      "one `TurnDone` (`event: done`) or one `TurnStreamError` (`event: error`), which ends the stream. In ask " +
      "mode a `PermissionRequest` (`event: permission`) when the agent asks, and a `PermissionResolved` " +
      "(`event: permission_resolved`) once it is answered."
  })

const StreamEvent = <Name extends string, S extends Schema.Schema.Any>(event: Name, data: S) =>
  Schema.Struct({
    event: Schema.Literal(event),
    /** The SSE `id:` of the event, when the server sends one. */
    id: Schema.optionalWith(Schema.String, { exact: true }),
    data
  })

/** One server-sent event of a streamed turn, with its name. */
export const TurnStreamEvent = Schema.Union(
  StreamEvent("acp", AcpMessage),
  StreamEvent("done", TurnDone),
  StreamEvent("error", TurnStreamError),
  StreamEvent("permission", PermissionRequest),
  StreamEvent("permission_resolved", PermissionResolved)
)
export type TurnStreamEvent = typeof TurnStreamEvent.Type

const knownEvents: ReadonlySet<string> = new Set(["acp", "done", "error", "permission", "permission_resolved"])

/** The events of a `text/event-stream` body, with each `data` parsed as JSON. */
const parseEventStream = (text: string, ast: AST.AST) => {
  const events: Array<{ event: string; id?: string; data: unknown }> = []
  for (const block of text.replace(/\r\n?/g, "\n").split("\n\n")) {
    let event = "message"
    let id: string | undefined
    const data: Array<string> = []
    for (const line of block.split("\n")) {
      const colon = line.indexOf(":")
      if (colon === 0) continue // a comment
      const field = colon < 0 ? line : line.slice(0, colon)
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "")
      if (field === "event") event = value
      else if (field === "id") id = value
      else if (field === "data") data.push(value)
    }
    // Events a newer gateway may send and this client does not know are skipped.
    if (data.length === 0 || !knownEvents.has(event)) continue
    try {
      events.push({ event, ...(id === undefined ? {} : { id }), data: JSON.parse(data.join("\n")) })
    } catch {
      return Either.left(new ParseResult.Type(ast, text, `The data of an \`event: ${event}\` is not JSON`))
    }
  }
  return Either.right(events)
}

/**
 * The body of a streamed turn. On the wire it is `text/event-stream`: `event: acp` per ACP message as it
 * happens, then `event: done` (the turn reply without `events`) or `event: error`. The Effect client
 * reads the whole stream and decodes it into its events.
 */
export const TurnEventStream = Schema.transformOrFail(Schema.String, Schema.Array(TurnStreamEvent), {
  strict: false,
  decode: (text, _, ast) => parseEventStream(text, ast),
  encode: (events) =>
    ParseResult.succeed(
      events.map(({ data, event, id }) =>
        `event: ${event}\n${id === undefined ? "" : `id: ${id}\n`}data: ${JSON.stringify(data)}\n\n`
      ).join("")
    )
}).pipe(
  HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/event-stream" }),
  Schema.annotations({ jsonSchema: { $ref: "#/components/schemas/TurnStreamEventData" } })
)
