import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as OpenApi from "@effect/platform/OpenApi"
import { Context, Schema } from "effect"
import { version } from "../version.js"
import { AdminApi, ConsoleApi } from "./AdminApi.js"
import { AgentList } from "./Agent.js"
import { finishDocument, operation } from "./ApiDocument.js"
import {
  AgentFailed,
  AppSessionLimit,
  BadRequest,
  BudgetExhausted,
  IdempotencyKeyReused,
  InvalidConfig,
  NotFound,
  PayloadTooLarge,
  PermissionModeNotAllowed,
  PermissionNotFound,
  GitCloneFailed,
  PoolFull,
  QueueFull,
  RateLimited,
  RequestTimeout,
  RunFailed,
  SessionClosed,
  SessionNotFound,
  ShuttingDown,
  StorageQuota,
  TooManyAuthFailures,
  TooManyStreams,
  TurnNotFound,
  TurnTimeout,
  Unauthorized,
  UnknownAgent
} from "./Errors.js"
import { IdempotencyHeaders, retrySafe } from "./Idempotency.js"
import { AnswerReply, PermissionAnswer, PermissionList, PermissionParams } from "./Permission.js"
import type { AppName } from "./Ids.js"
import { RunReply, RunRequest } from "./Run.js"
import {
  CancelReply,
  CloseReply,
  CreateSessionRequest,
  ListSessionsParams,
  SessionIdParam,
  SessionList,
  SessionReply,
  TurnEventStream,
  TurnReply,
  TurnRequest,
  TurnStreamEventData,
  UpdateSessionRequest
} from "./Session.js"
import { LimitsReport, UsageParams, UsageReport } from "./Tenancy.js"
import { WorkspaceArchiveApi } from "./WorkspaceArchive.js"
import { DiskQuota, WorkspaceFilesApi, WorkspaceOverQuota } from "./WorkspaceFiles.js"
import { WorkspaceAdminApi, WorkspaceChangesApi } from "./WorkspaceChanges.js"
import {
  ListTurnsParams,
  TurnAccepted,
  TurnDetail,
  TurnEventsParams,
  TurnList,
  TurnPathParams,
  TurnStreamHeaders
} from "./Turn.js"

// Conventions every endpoint follows, so that generated clients and the docs page read well:
// - groups are top-level (`{ topLevel: true }`) and endpoints are named verb-first in camelCase:
//   the name is the OpenAPI operationId and the Effect client's method (`client.createSession`);
// - every JSON body has typed examples (`operation({ payload, examples })`);
// - fields carry descriptions for people (see ApiDocument.ts for what is stripped).

/** The app the request's bearer token belongs to. */
export class CurrentApp extends Context.Tag("clawdforge/CurrentApp")<CurrentApp, AppName>() {}

export class Authorization extends HttpApiMiddleware.Tag<Authorization>()("clawdforge/Authorization", {
  // A wrong token from an address past its failures is a 429 before the token is looked at.
  failure: Schema.Union(Unauthorized, TooManyAuthFailures),
  provides: CurrentApp,
  security: {
    bearer: HttpApiSecurity.bearer.pipe(
      HttpApiSecurity.annotate(
        OpenApi.Description,
        "`Authorization: Bearer <token>`. Each token names one app (configured as `app=token` pairs in " +
          "CLAWDFORGE_APP_TOKENS, or added with `clawdforge apps add`); an app only ever sees its own " +
          "sessions. Missing or unknown token: 401 with `WWW-Authenticate: Bearer`."
      )
    )
  }
}) {}

/** The OpenAPI document, as `GET /openapi.json` serves it. */
export const OpenApiDocument = Schema.Record({ key: Schema.String, value: Schema.Unknown }).annotations({
  description: "An OpenAPI 3.1 document",
  jsonSchema: { type: "object", description: "An OpenAPI 3.1 document" }
})

/** The docs page, as `GET /docs` serves it. */
export const DocsPage = Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/html" }))

const cacheHeaders = {
  ETag: { description: "The representation's validator: send it back as `If-None-Match` to get a 304" },
  "Cache-Control": { description: "`no-cache`: keep it, and revalidate it before use" }
}

export class HealthApi extends HttpApiGroup.make("health", { topLevel: true })
  .add(
    HttpApiEndpoint.get("getHealth", "/healthz")
      .addSuccess(Schema.Struct({ ok: Schema.Literal(true) }).annotations({ identifier: "Health" }))
      .annotate(OpenApi.Summary, "Liveness: 200 once the gateway serves requests")
      .annotate(OpenApi.Description, "Needs no token; meant for load balancers and process supervisors.")
      .annotate(OpenApi.Transform, operation({ success: "The gateway is up" }))
  )
  .add(
    HttpApiEndpoint.get("getOpenApi", "/openapi.json")
      .addSuccess(OpenApiDocument)
      .annotate(OpenApi.Summary, "This document")
      .annotate(
        OpenApi.Description,
        "The OpenAPI 3.1 document of the gateway's API, to generate clients from. Needs no token. " +
          "Compressed (br, gzip) when the request accepts it; revalidate with `If-None-Match`."
      )
      .annotate(OpenApi.Transform, operation({ success: "The OpenAPI document", successHeaders: cacheHeaders }))
  )
  .add(
    HttpApiEndpoint.get("getDocs", "/docs")
      .addSuccess(DocsPage)
      .annotate(OpenApi.Summary, "This document as a web page")
      .annotate(
        OpenApi.Description,
        "The API reference (Scalar), served whole by the gateway: no request leaves it. Needs no token. " +
          "Compressed (br, gzip) when the request accepts it; revalidate with `If-None-Match`."
      )
      .annotate(OpenApi.Transform, operation({ success: "An HTML page", successHeaders: cacheHeaders }))
  )
  .annotate(OpenApi.Title, "gateway")
  .annotate(OpenApi.Description, "Open routes (no token): liveness, the OpenAPI document and its docs page")
{}

export class RunApi extends HttpApiGroup.make("run", { topLevel: true })
  .add(
    HttpApiEndpoint.post("runPrompt", "/run")
      .setPayload(RunRequest)
      .setHeaders(IdempotencyHeaders)
      .addSuccess(RunReply)
      .addError(RunFailed)
      .addError(BudgetExhausted)
      .addError(IdempotencyKeyReused)
      .annotate(OpenApi.Summary, "One-shot job through `claude -p` (v0.1 reply shape)")
      .annotate(
        OpenApi.Description,
        "Runs `claude -p <prompt> --output-format json` once and waits for it. `result` is the JSON the " +
          "agent printed (code fences tolerated), else its text. Any failure of claude (non-zero exit, " +
          "`is_error`, unreadable output, timeout) is a 502 in the v0.1 error shape." + retrySafe
      )
      .annotate(
        OpenApi.Transform,
        operation({
          idempotent: true,
          success: "claude answered: exactly `ok, result, duration_ms, stop_reason`",
          payload: RunRequest,
          examples: {
            json: {
              summary: "Ask for JSON",
              value: { prompt: "List the three largest risks in this diff as a JSON array of strings." }
            },
            options: {
              summary: "With a model, a system prompt and a timeout",
              value: {
                prompt: "Summarize README.md in one sentence.",
                model: "sonnet",
                system_prompt: "Answer in plain text.",
                timeout_secs: 120
              }
            }
          }
        })
      )
  )
  .middleware(Authorization)
  .annotate(OpenApi.Title, "run")
  .annotate(OpenApi.Description, "One-shot jobs (the v0.1 API)")
{}

const turnExamples = {
  prompt: { summary: "A prompt", value: { prompt: "Add a unit test for parseConfig." } },
  files: {
    summary: "A prompt about files",
    value: { prompt: "Why does this test fail?", files: ["src/config.ts", "test/config.test.ts"] }
  }
}

export class SessionsApi extends HttpApiGroup.make("sessions", { topLevel: true })
  .add(
    HttpApiEndpoint.post("createSession", "/sessions")
      .setPayload(CreateSessionRequest)
      .setHeaders(IdempotencyHeaders)
      .addSuccess(SessionReply)
      .addError(UnknownAgent)
      .addError(InvalidConfig)
      .addError(PermissionModeNotAllowed)
      .addError(AppSessionLimit)
      .addError(BudgetExhausted)
      .addError(StorageQuota)
      .addError(DiskQuota)
      .addError(PoolFull)
      .addError(ShuttingDown)
      .addError(AgentFailed)
      .addError(GitCloneFailed)
      .addError(IdempotencyKeyReused)
      .annotate(OpenApi.Summary, "Start a session with a live agent")
      .annotate(
        OpenApi.Description,
        "Starts the agent and takes one slot of the live-agent pool until the session is closed or " +
          "swept. `agent` names an entry of the agent registry (CLAWDFORGE_AGENTS merged over the " +
          "built-ins); `meta` is stored as given and returned by `GET /sessions/{id}`. `model`, `mode` and " +
          "`config` are applied through ACP once the agent has started (`session/set_config_option`, " +
          "`session/set_mode`); a value the agent does not offer is a 400 `invalid_config` naming what it " +
          "offers, and nothing is kept. `permission_mode: \"ask\"` holds the agent's permission requests for " +
          "the caller (`GET /sessions/{id}/permissions`); a mode outside the app's `permission_modes` limit (or, " +
          "when none is asked for, the gateway's default outside it) is a 400 `permission_mode_not_allowed`. " +
          "`git: {url, ref?}` clones a repository into the fresh workspace before the agent starts (in the session's " +
          "sandbox, as the agent's user, under the app's network rule): a URL or ref refused is a 400 `bad_request` " +
          "saying why, a clone that fails a 400 `git_clone_failed` with git's first lines; neither keeps anything." +
          retrySafe
      )
      .annotate(
        OpenApi.Transform,
        operation({
          idempotent: true,
          success: "The new session, open",
          payload: CreateSessionRequest,
          examples: {
            claude: { summary: "Claude Code", value: { agent: "claude", meta: { ticket: "ENG-42" } } },
            echo: {
              summary: "The demo agent, allowed to read only",
              value: { agent: "echo", permission_mode: "approve-reads" }
            },
            ask: {
              summary: "The demo agent on its larger model, asking the caller for permissions",
              value: { agent: "echo", model: "demo-large", mode: "plan", permission_mode: "ask" }
            }
          }
        })
      )
  )
  .add(
    HttpApiEndpoint.post("runTurn", "/sessions/:id/turn")
      .setPath(SessionIdParam)
      .setPayload(TurnRequest)
      .setHeaders(IdempotencyHeaders)
      .addSuccess(TurnReply)
      .addError(SessionNotFound)
      .addError(SessionClosed)
      .addError(AgentFailed)
      .addError(AppSessionLimit)
      .addError(BudgetExhausted)
      .addError(RateLimited)
      .addError(QueueFull)
      .addError(StorageQuota)
      .addError(DiskQuota)
      .addError(WorkspaceOverQuota)
      .addError(PoolFull)
      .addError(ShuttingDown)
      .addError(TurnTimeout)
      .addError(IdempotencyKeyReused)
      .annotate(OpenApi.Summary, "Send one prompt; waits in the session's mailbox behind earlier turns")
      .annotate(
        OpenApi.Description,
        "`events` are the ACP JSON-RPC messages of the turn in order, as `acpx --format json` prints " +
          "them: the `session/prompt` request, every `session/update` and agent request (with the " +
          "gateway's answer), and last the prompt response, whose `stopReason` is `stop_reason`. " +
          "`files` are named to the agent before the prompt text. `turn_index` counts from 1." + retrySafe
      )
      .annotate(
        OpenApi.Transform,
        operation({ idempotent: true, success: "The turn ran to its end", payload: TurnRequest, examples: turnExamples })
      )
  )
  .add(
    HttpApiEndpoint.post("streamTurn", "/sessions/:id/turn/stream")
      .setPath(SessionIdParam)
      .setPayload(TurnRequest)
      .setHeaders(IdempotencyHeaders)
      .addSuccess(TurnEventStream)
      .addError(SessionNotFound)
      .addError(SessionClosed)
      .addError(AgentFailed)
      .addError(AppSessionLimit)
      .addError(BudgetExhausted)
      .addError(RateLimited)
      .addError(QueueFull)
      .addError(StorageQuota)
      .addError(DiskQuota)
      .addError(WorkspaceOverQuota)
      .addError(PoolFull)
      .addError(ShuttingDown)
      .addError(TooManyStreams)
      .addError(IdempotencyKeyReused)
      .annotate(OpenApi.Summary, "Send one prompt and stream the turn as server-sent events")
      .annotate(
        OpenApi.Description,
        "Body as `/turn`. Answers `text/event-stream`; each event's `data:` is one line of JSON:\n\n" +
          "- `event: acp`, data `AcpMessage`: one per ACP JSON-RPC message of the turn, as it happens;\n" +
          "- `event: done`, data `TurnDone`: the `/turn` reply without `events`; the last event when the " +
          "turn ran to its end;\n" +
          "- `event: error`, data `TurnStreamError` (`{ok: false, error, message}`): the last event when " +
          "the turn failed after the stream started (the agent failed, the turn timed out);\n" +
          "- `event: permission`, data `PermissionRequest`: in ask mode, a request of the agent waiting for " +
          "the caller (`POST /sessions/{id}/permissions/{request_id}`); `event: permission_resolved`, data " +
          "`PermissionResolved`, once it is answered. These two are not stored with the turn and take the id " +
          "of the message before them.\n\n" +
          "The response schema is the union of the data shapes (`TurnStreamEventData`); tell them " +
          "apart by the event name. Errors found before the stream starts (unknown or closed session, " +
          "full pool, bad body, no token) are JSON replies with their status, as for `/turn`.\n\n" +
          "Every event has `id: <turn_index>.<seq>`: after a dropped connection, resume with " +
          "`GET /sessions/{id}/turns/{n}/stream` and `Last-Event-ID`.\n\n" +
          "A client that disconnects does not stop the turn, and the turn is still recorded. Without an " +
          "`Idempotency-Key`, every POST runs a new turn: do not let a client re-send it on its own after a " +
          "dropped connection. With one, a retry is safe (what makes a generated SSE client's automatic retry " +
          "safe): the repeat runs nothing and replays the first request's turn from its start, event by event." +
          retrySafe
      )
      .annotate(
        OpenApi.Transform,
        operation({
          idempotent: true,
          success: "The turn's events as they happen, ending with `done` or `error`",
          payload: TurnRequest,
          examples: turnExamples
        })
      )
  )
  .add(
    HttpApiEndpoint.post("queueTurn", "/sessions/:id/turns")
      .setPath(SessionIdParam)
      .setPayload(TurnRequest)
      .setHeaders(IdempotencyHeaders)
      .addSuccess(TurnAccepted)
      .addError(SessionNotFound)
      .addError(SessionClosed)
      .addError(AgentFailed)
      .addError(AppSessionLimit)
      .addError(BudgetExhausted)
      .addError(RateLimited)
      .addError(QueueFull)
      .addError(StorageQuota)
      .addError(DiskQuota)
      .addError(WorkspaceOverQuota)
      .addError(PoolFull)
      .addError(ShuttingDown)
      .addError(IdempotencyKeyReused)
      .annotate(OpenApi.Summary, "Queue one prompt and answer at once (async turn)")
      .annotate(
        OpenApi.Description,
        "Body as `/turn`. The turn is recorded (`queued`) with the next `turn_index` before this answers " +
          "202, and runs in the session's mailbox order like any other turn. Read it back with " +
          "`GET /sessions/{id}/turns/{n}` (poll until its `status` is no longer `queued` or `running`), " +
          "or follow it with `GET /sessions/{id}/turns/{n}/stream`." + retrySafe
      )
      .annotate(
        OpenApi.Transform,
        operation({ idempotent: true, success: "The turn is queued", payload: TurnRequest, examples: turnExamples })
      )
  )
  .add(
    HttpApiEndpoint.get("listTurns", "/sessions/:id/turns")
      .setPath(SessionIdParam)
      .setUrlParams(ListTurnsParams)
      .addSuccess(TurnList)
      .addError(SessionNotFound)
      .annotate(OpenApi.Summary, "The session's turns, oldest first, without their messages")
      .annotate(
        OpenApi.Description,
        "Every accepted turn is stored, whatever its outcome: queued, running, completed, failed, " +
          "cancelled, or interrupted (the gateway stopped during it). Page with `after` (the last " +
          "`turn_index` seen, default 0) and `limit` (1 to 1000, default 100)."
      )
      .annotate(OpenApi.Transform, operation({ success: "A page of the session's turns" }))
  )
  .add(
    HttpApiEndpoint.get("getTurn", "/sessions/:id/turns/:n")
      .setPath(TurnPathParams)
      .setUrlParams(TurnEventsParams)
      .addSuccess(TurnDetail)
      .addError(SessionNotFound)
      .addError(TurnNotFound)
      .annotate(OpenApi.Summary, "One stored turn with a page of its messages and their text")
      .annotate(
        OpenApi.Description,
        "`events` are the turn's ACP messages in order (those so far while it runs), a page at a time: those " +
          "after `events_after` (default 0), at most `events_limit` (default 1000); `next_events_after` names the " +
          "next page (null after the last) and `events_total` how many there are. `text` joins the text of the " +
          "page's `agent_message_chunk` updates: what the agent said. A stored turn keeps at most " +
          "CLAWDFORGE_TURN_MAX_STORED_MB of messages (`truncated` says when it kept fewer than its stream carried)."
      )
      .annotate(OpenApi.Transform, operation({ success: "The turn" }))
  )
  .add(
    HttpApiEndpoint.get("streamStoredTurn", "/sessions/:id/turns/:n/stream")
      .setPath(TurnPathParams)
      .setHeaders(TurnStreamHeaders)
      .addSuccess(TurnEventStream)
      .addError(SessionNotFound)
      .addError(TurnNotFound)
      .addError(TooManyStreams)
      .annotate(OpenApi.Summary, "The turn's events from its start (or after `Last-Event-ID`), then live ones")
      .annotate(
        OpenApi.Description,
        "Answers `text/event-stream` with the events of `/turn/stream`: `event: acp` per ACP message " +
          "(`AcpMessage`), then `event: done` (`TurnDone`) or `event: error` (`TurnStreamError`), which " +
          "ends the stream. The messages stored so far come first, then the live ones while the turn runs. " +
          "Every event has `id: <turn_index>.<seq>` (`seq` counts the turn's events from 1); send the last " +
          "id you received as `Last-Event-ID` and the stream resumes right after that event: nothing twice, " +
          "nothing missing. A turn interrupted by a gateway restart ends with `error` `turn_interrupted`. " +
          "Reading never changes the turn; it may be read any number of times."
      )
      .annotate(
        OpenApi.Transform,
        (op: Record<string, any>) => {
          const done = operation({ success: "The turn's events, ending with `done` or `error`" })(op)
          // Headers are declared lower-case; the document spells this one as RFC 8895 and browsers do.
          for (const parameter of done.parameters ?? []) {
            if (parameter.in === "header" && parameter.name === "last-event-id") parameter.name = "Last-Event-ID"
          }
          return done
        }
      )
  )
  .add(
    HttpApiEndpoint.post("cancelTurn", "/sessions/:id/cancel")
      .setPath(SessionIdParam)
      .addSuccess(CancelReply)
      .addError(SessionNotFound)
      .annotate(OpenApi.Summary, "Cancel the running turn")
      .annotate(
        OpenApi.Description,
        "Sends `session/cancel` to the agent. The running turn ends with `stop_reason: \"cancelled\"`; " +
          "the session stays usable. `cancelled` is false when no turn was running."
      )
      .annotate(OpenApi.Transform, operation({ success: "Whether a running turn was cancelled" }))
  )
  .add(
    HttpApiEndpoint.get("getSession", "/sessions/:id")
      .setPath(SessionIdParam)
      .addSuccess(SessionReply)
      .addError(SessionNotFound)
      .annotate(OpenApi.Summary, "Session state")
      .annotate(OpenApi.Description, "Timestamps are integer Unix seconds; `status` is `closed` once `closed_at` is set.")
      .annotate(OpenApi.Transform, operation({ success: "The session" }))
  )
  .add(
    HttpApiEndpoint.patch("updateSession", "/sessions/:id")
      .setPath(SessionIdParam)
      .setPayload(UpdateSessionRequest)
      .addSuccess(SessionReply)
      .addError(SessionNotFound)
      .addError(SessionClosed)
      .addError(InvalidConfig)
      .addError(AgentFailed)
      .addError(AppSessionLimit)
      .addError(PoolFull)
      .addError(ShuttingDown)
      .annotate(OpenApi.Summary, "Change the model, mode or config options between turns")
      .annotate(
        OpenApi.Description,
        "Waits in the session's mailbox like a turn, so it applies after the turns sent before it, and " +
          "answers the session's state then. A value the agent does not offer is a 400 `invalid_config` " +
          "naming what it offers; nothing is changed then."
      )
      .annotate(
        OpenApi.Transform,
        operation({
          success: "The session with its new settings",
          payload: UpdateSessionRequest,
          examples: { model: { summary: "Another model", value: { model: "demo-large" } } }
        })
      )
  )
  .add(
    HttpApiEndpoint.get("listPermissions", "/sessions/:id/permissions")
      .setPath(SessionIdParam)
      .addSuccess(PermissionList)
      .addError(SessionNotFound)
      .annotate(OpenApi.Summary, "The agent's requests waiting for an answer (ask mode)")
      .annotate(
        OpenApi.Description,
        "Under `permission_mode: \"ask\"` each `session/request_permission` (and each elicitation) of the agent " +
          "waits here until it is answered, its turn is cancelled or its session closed (answered `cancelled`), or " +
          "`expires_at` passes (CLAWDFORGE_PERMISSION_TIMEOUT_SECS: the first `reject_*` option). Streams show " +
          "each as `event: permission`."
      )
      .annotate(OpenApi.Transform, operation({ success: "The pending requests, oldest first" }))
  )
  .add(
    HttpApiEndpoint.post("answerPermission", "/sessions/:id/permissions/:request_id")
      .setPath(PermissionParams)
      .setPayload(PermissionAnswer)
      .addSuccess(AnswerReply)
      .addError(SessionNotFound)
      .addError(PermissionNotFound)
      .annotate(OpenApi.Summary, "Answer a request of the agent")
      .annotate(
        OpenApi.Description,
        "A permission request takes one of its `option_id`s (another is a 400); an elicitation takes `action` " +
          "(`accept` with `content`, `decline`, `cancel`). A request answered already, or unknown, is 404 " +
          "`permission_not_found`."
      )
      .annotate(
        OpenApi.Transform,
        operation({
          success: "The answer reached the agent",
          payload: PermissionAnswer,
          examples: {
            allow: { summary: "Allow the tool call once", value: { option_id: "allow" } },
            elicitation: { summary: "Fill in the form", value: { action: "accept", content: { branch: "main" } } }
          }
        })
      )
  )
  .add(
    HttpApiEndpoint.get("listSessions", "/sessions")
      .setUrlParams(ListSessionsParams)
      .addSuccess(SessionList)
      .annotate(OpenApi.Summary, "The caller's sessions, newest first")
      .annotate(
        OpenApi.Description,
        "Only the calling app's sessions. `status` filters open or closed ones; `limit` is 1 to 1000 " +
          "(default 100)."
      )
      .annotate(OpenApi.Transform, operation({ success: "The caller's sessions" }))
  )
  .add(
    HttpApiEndpoint.del("closeSession", "/sessions/:id")
      .setPath(SessionIdParam)
      .addSuccess(CloseReply)
      .addError(SessionNotFound)
      .annotate(OpenApi.Summary, "Close the session and stop its agent (idempotent)")
      .annotate(
        OpenApi.Description,
        "Stops the agent and frees its pool slot; the ledger keeps the session until the hard TTL. " +
          "Closing a closed session answers `{ok: true, already_closed: true}`."
      )
      .annotate(OpenApi.Transform, operation({ success: "Closed now, or `already_closed`" }))
  )
  .middleware(Authorization)
  .annotate(OpenApi.Title, "sessions")
  .annotate(
    OpenApi.Description,
    "Multi-turn sessions, each with its own live agent. Another app's session answers exactly like a " +
      "missing one: 404, never 403."
  )
{}

export class AgentsApi extends HttpApiGroup.make("agents", { topLevel: true })
  .add(
    HttpApiEndpoint.get("listAgents", "/agents")
      .addSuccess(AgentList)
      .annotate(OpenApi.Summary, "The agents a session can run, and what each declared")
      .annotate(
        OpenApi.Description,
        "The registry (the built-ins with `CLAWDFORGE_AGENTS` merged over them), sorted by name. " +
          "`available` says whether the agent's command can be found on this gateway (a built-in " +
          "adapter that is not installed is `false`); `capabilities` are what the agent declared in its " +
          "`initialize` answer, learned at its first start and kept (`null` until then). The agents' " +
          "environment never appears."
      )
      .annotate(OpenApi.Transform, operation({ success: "The agent registry" }))
  )
  .middleware(Authorization)
  .annotate(OpenApi.Title, "agents")
  .annotate(OpenApi.Description, "The agent registry")
{}

export class TenancyApi extends HttpApiGroup.make("tenancy", { topLevel: true })
  .add(
    HttpApiEndpoint.get("getUsage", "/usage")
      .setUrlParams(UsageParams)
      .addSuccess(Schema.Struct({ ok: Schema.Literal(true), ...UsageReport.fields }).annotations({ identifier: "UsageReply" }))
      .annotate(OpenApi.Summary, "What the caller's agents used: turns, sessions, runs, tokens and cost")
      .annotate(
        OpenApi.Description,
        "The calling app's own totals in the window (`from` inclusive, `to` exclusive, Unix seconds; open " +
          "when left out), and with `group_by` the same per UTC day or per agent. A turn counts once it has " +
          "ended; tokens and cost as far as the agents report them (`claude-agent-acp` reports cost)."
      )
      .annotate(OpenApi.Transform, operation({ success: "The caller's usage" }))
  )
  .add(
    HttpApiEndpoint.get("getLimits", "/limits")
      .addSuccess(Schema.Struct({ ok: Schema.Literal(true), ...LimitsReport.fields }).annotations({ identifier: "LimitsReply" }))
      .annotate(OpenApi.Summary, "The caller's limits and its use of them")
      .annotate(
        OpenApi.Description,
        "`max_sessions` (live sessions; beyond it a create is 429 `app_session_limit`), `turns_per_minute` " +
          "(any 60 s; beyond it a turn is 429 `rate_limited` with `Retry-After`), `daily_cost_usd` (once the " +
          "day's cost reaches it, creates and turns are 429 `budget_exhausted` until 00:00 UTC), each null " +
          "when unset; `permission_modes` (the modes a create may ask for; all four when unset) and `network` " +
          "(what the app's agents reach; null: the gateway's default); set by the operator " +
          "(`CLAWDFORGE_APP_LIMITS`, `clawdforge apps limits`)."
      )
      .annotate(OpenApi.Transform, operation({ success: "The caller's limits and use" }))
  )
  .middleware(Authorization)
  .annotate(OpenApi.Title, "tenancy")
  .annotate(OpenApi.Description, "What an app used, and the limits it runs under")
{}

export class ObservabilityApi extends HttpApiGroup.make("observability", { topLevel: true })
  .add(
    HttpApiEndpoint.get("getMetrics", "/metrics")
      .addSuccess(
        Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/plain; version=0.0.4" }))
      )
      .annotate(OpenApi.Summary, "Prometheus metrics")
      .annotate(
        OpenApi.Description,
        "Text exposition format: `clawdforge_sessions_live`, `clawdforge_pool_capacity`, " +
          "`clawdforge_turns_total{app,outcome}`, `clawdforge_turn_duration_seconds` (histogram). " +
          "Needs an app token like every other endpoint."
      )
      .annotate(OpenApi.Transform, operation({ success: "The metrics, as Prometheus scrapes them" }))
  )
  .middleware(Authorization)
  .annotate(OpenApi.Title, "observability")
  .annotate(OpenApi.Description, "What operators watch")
{}

export class Api extends HttpApi.make("clawdforge")
  .add(HealthApi)
  .add(RunApi)
  .add(SessionsApi)
  .add(WorkspaceArchiveApi.middleware(Authorization))
  .add(WorkspaceFilesApi.middleware(Authorization))
  .add(WorkspaceChangesApi.middleware(Authorization))
  .add(WorkspaceAdminApi)
  .add(AgentsApi)
  .add(TenancyApi)
  .add(ObservabilityApi)
  .add(AdminApi)
  .add(ConsoleApi)
  // Raised by the gateway's own request handling (decode, routing, body limit).
  .addError(BadRequest)
  .addError(NotFound)
  .addError(PayloadTooLarge)
  .addError(RequestTimeout)
  // The data of a streamed turn's events, for clients that read the stream event by event.
  .annotate(HttpApi.AdditionalSchemas, [TurnStreamEventData])
  .annotate(OpenApi.Title, "clawdforge")
  .annotate(OpenApi.Version, version)
  .annotate(OpenApi.Summary, "Self-hosted gateway for running coding agents as a service")
  .annotate(
    OpenApi.Description,
    "Runs coding agents (Claude Code, Codex, Gemini CLI, any Agent Client Protocol agent) as a service: " +
      "one-shot jobs (`POST /run`) and multi-turn sessions (`/sessions`).\n\n" +
      "Every request except `GET /healthz`, `GET /openapi.json`, `GET /docs` and the console's page needs " +
      "`Authorization: Bearer <token>`: an app's token, or for `/admin/*` the operators' (CLAWDFORGE_ADMIN_TOKEN). Bodies are JSON. Every error is `{ok: false, error, message}` " +
      "(plus fields named in its schema): `error` is a stable machine-readable code, `_tag` names the " +
      "error type for typed clients. Bad input is always a 4xx, never a 500.\n\n" +
      "The requests that start work (`POST /run`, `POST /sessions`, `/turn`, `/turns`, `/turn/stream`) take an " +
      "`Idempotency-Key` header: a retried request with the same key is safe. It never runs twice, and answers " +
      "what the first request answered (its status and body; a stream is replayed) with `Idempotent-Replayed: true`."
  )
  .annotate(OpenApi.License, { name: "MIT" })
  .annotate(OpenApi.Servers, [{ url: "/", description: "The gateway serving this document" }])
  .annotate(OpenApi.Transform, finishDocument)
{}
