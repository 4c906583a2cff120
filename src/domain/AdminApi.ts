import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import {
  AdminAppList,
  AdminAuthorization,
  AdminSessionDetail,
  AdminSessionList,
  AdminSessionsParams,
  AdminUsageParams,
  AdminUsageReply,
  AppExists,
  AppLimitsReply,
  AppNameParam,
  AppNotFound,
  AuditList,
  AuditParams,
  CreateAppRequest,
  CreatedApp,
  Overview,
  PendingPermissionList,
  RevokeAppReply,
  SetLimitsRequest
} from "./Admin.js"
import { operation } from "./ApiDocument.js"
import { ClusterStatus, NotACluster } from "./Cluster.js"
import { PermissionNotFound, SessionNotFound, TurnNotFound } from "./Errors.js"
import { AppName } from "./Ids.js"
import { AnswerReply, PermissionAnswer, PermissionParams } from "./Permission.js"
import { CloseReply, SessionIdParam, TurnEventStream } from "./Session.js"
import { TurnDetail, TurnEventsParams, TurnPathParams, TurnStreamHeaders } from "./Turn.js"
import { RemoveWebhookReply, SetWebhookReply, SetWebhookRequest, WebhookUrlRefused } from "./Webhooks.js"

/** The operators' API: every app's apps, sessions, usage and audit trail, behind the admin token. */
export class AdminApi extends HttpApiGroup.make("admin", { topLevel: true })
  .add(
    HttpApiEndpoint.get("getAdminOverview", "/admin/overview")
      .addSuccess(Overview)
      .annotate(OpenApi.Summary, "The gateway at a glance: pool, live sessions by app, turns per minute, cost today")
      .annotate(
        OpenApi.Description,
        "What the console's overview draws. `minutes` counts the turns that ended in each of the last 30 minutes " +
          "(and what they cost); `cost_today_usd` and `turns_today` count since 00:00 UTC."
      )
      .annotate(OpenApi.Transform, operation({ success: "The overview" }))
  )
  .add(
    HttpApiEndpoint.get("listAdminApps", "/admin/apps")
      .addSuccess(AdminAppList)
      .annotate(OpenApi.Summary, "Every app by name, with its limits and use (never a token)")
      .annotate(
        OpenApi.Description,
        "The apps of CLAWDFORGE_APP_TOKENS and of the ledger (revoked ones too, with `revoked_at`), sorted by name."
      )
      .annotate(OpenApi.Transform, operation({ success: "The apps" }))
  )
  .add(
    HttpApiEndpoint.post("createAdminApp", "/admin/apps")
      .setPayload(CreateAppRequest)
      .addSuccess(CreatedApp, { status: 201 })
      .addError(AppExists)
      .annotate(OpenApi.Summary, "Add an app and get its bearer token, shown this once")
      .annotate(
        OpenApi.Description,
        "As `clawdforge apps add`: the ledger keeps only the token's SHA-256, and a running gateway accepts it " +
          "within seconds. A revoked app can be added again: that issues a new token. A name that is active " +
          "(in the ledger or CLAWDFORGE_APP_TOKENS) is 409 `app_exists`."
      )
      .annotate(
        OpenApi.Transform,
        operation({
          success: "The new app, with its token",
          payload: CreateAppRequest,
          examples: { add: { summary: "A new app", value: { name: AppName.make("billing-bot") } } }
        })
      )
  )
  .add(
    HttpApiEndpoint.del("revokeAdminApp", "/admin/apps/:name")
      .setPath(AppNameParam)
      .addSuccess(RevokeAppReply)
      .addError(AppNotFound)
      .annotate(OpenApi.Summary, "Revoke an app's token (idempotent)")
      .annotate(
        OpenApi.Description,
        "Its token is refused within seconds; its sessions and usage stay in the ledger. An app of " +
          "CLAWDFORGE_APP_TOKENS is removed there, not here (404 `app_not_found`)."
      )
      .annotate(OpenApi.Transform, operation({ success: "Revoked now, or `already_revoked`" }))
  )
  .add(
    HttpApiEndpoint.put("setAdminAppLimits", "/admin/apps/:name/limits")
      .setPath(AppNameParam)
      .setPayload(SetLimitsRequest)
      .addSuccess(AppLimitsReply)
      .annotate(OpenApi.Summary, "Replace an app's limits in the ledger")
      .annotate(
        OpenApi.Description,
        "As `clawdforge apps limits`, but whole: the limits given are stored, the others are taken out of the " +
          "ledger (CLAWDFORGE_APP_LIMITS applies to them again); `{}` clears them all. A running gateway applies " +
          "them within seconds."
      )
      .annotate(
        OpenApi.Transform,
        operation({
          success: "The app's limits as they apply now, and where each comes from",
          payload: SetLimitsRequest,
          examples: {
            limits: { summary: "Three sessions, 20 turns a minute, 5 USD a day", value: { max_sessions: 3, turns_per_minute: 20, daily_cost_usd: 5 } },
            isolation: {
              summary: "Never approve-all; agents reach only the package registry",
              value: { permission_modes: ["approve-reads", "deny-all", "ask"], network: "allow:registry.npmjs.org:443" }
            },
            clear: { summary: "Back to CLAWDFORGE_APP_LIMITS", value: {} }
          }
        })
      )
  )
  .add(
    HttpApiEndpoint.put("setAdminAppWebhook", "/admin/apps/:name/webhook")
      .setPath(AppNameParam)
      .setPayload(SetWebhookRequest)
      .addSuccess(SetWebhookReply)
      .addError(WebhookUrlRefused)
      .addError(AppNotFound)
      .annotate(OpenApi.Summary, "Set an app's webhook URL and get its new signing secret, shown this once")
      .annotate(
        OpenApi.Description,
        "As `clawdforge apps webhook set`. A URL that is not absolute http(s), carries a user or password, or whose " +
          "host is or resolves to a loopback, private, link-local, shared (100.64/10), unspecified or multicast " +
          "address (in any spelling) is 400 `webhook_url_refused` and changes nothing, unless " +
          "CLAWDFORGE_WEBHOOK_ALLOW_PRIVATE=true. The name is resolved and checked again at every delivery. " +
          "An app that is not configured is 404 `app_not_found`. A running gateway uses it within seconds."
      )
      .annotate(
        OpenApi.Transform,
        operation({
          success: "The webhook, with its signing secret",
          payload: SetWebhookRequest,
          examples: { set: { summary: "A receiver on the internet", value: { url: "https://hooks.example.com/clawdforge" } } }
        })
      )
  )
  .add(
    HttpApiEndpoint.del("removeAdminAppWebhook", "/admin/apps/:name/webhook")
      .setPath(AppNameParam)
      .addSuccess(RemoveWebhookReply)
      .addError(AppNotFound)
      .annotate(OpenApi.Summary, "Remove an app's webhook (idempotent); its pending deliveries are dropped")
      .annotate(OpenApi.Description, "As `clawdforge apps webhook remove`.")
      .annotate(OpenApi.Transform, operation({ success: "Removed now, or `already_removed`" }))
  )
  .add(
    HttpApiEndpoint.get("listAdminSessions", "/admin/sessions")
      .setUrlParams(AdminSessionsParams)
      .addSuccess(AdminSessionList)
      .annotate(OpenApi.Summary, "Sessions of every app, newest first")
      .annotate(
        OpenApi.Description,
        "`app` and `status` filter; `limit` is 1 to 1000 (default 100). `live` says whether its agent runs now."
      )
      .annotate(OpenApi.Transform, operation({ success: "The sessions" }))
  )
  .add(
    HttpApiEndpoint.get("getAdminSession", "/admin/sessions/:id")
      .setPath(SessionIdParam)
      .addSuccess(AdminSessionDetail)
      .addError(SessionNotFound)
      .annotate(OpenApi.Summary, "A session of any app: its state, turns, audit trail and pending requests")
      .annotate(OpenApi.Transform, operation({ success: "The session" }))
  )
  .add(
    HttpApiEndpoint.del("closeAdminSession", "/admin/sessions/:id")
      .setPath(SessionIdParam)
      .addSuccess(CloseReply)
      .addError(SessionNotFound)
      .annotate(OpenApi.Summary, "Close a session of any app and stop its agent (idempotent)")
      .annotate(OpenApi.Description, "As the app's own `DELETE /sessions/{id}`.")
      .annotate(OpenApi.Transform, operation({ success: "Closed now, or `already_closed`" }))
  )
  .add(
    HttpApiEndpoint.get("getAdminTurn", "/admin/sessions/:id/turns/:n")
      .setPath(TurnPathParams)
      .setUrlParams(TurnEventsParams)
      .addSuccess(TurnDetail)
      .addError(SessionNotFound)
      .addError(TurnNotFound)
      .annotate(OpenApi.Summary, "One turn of any app's session, with its messages and text")
      .annotate(OpenApi.Description, "As the app's own `GET /sessions/{id}/turns/{n}`.")
      .annotate(OpenApi.Transform, operation({ success: "The turn" }))
  )
  .add(
    HttpApiEndpoint.get("streamAdminTurn", "/admin/sessions/:id/turns/:n/stream")
      .setPath(TurnPathParams)
      .setHeaders(TurnStreamHeaders)
      .addSuccess(TurnEventStream)
      .addError(SessionNotFound)
      .addError(TurnNotFound)
      .annotate(OpenApi.Summary, "Follow a turn of any app's session: its events so far, then live ones")
      .annotate(
        OpenApi.Description,
        "As the app's own `GET /sessions/{id}/turns/{n}/stream` (server-sent events, `Last-Event-ID` to resume). " +
          "Read it with `fetch`: an `EventSource` cannot send the admin token, and the token never goes in a URL."
      )
      .annotate(OpenApi.Transform, operation({ success: "The turn's events, ending with `done` or `error`" }))
  )
  .add(
    HttpApiEndpoint.get("listAdminPermissions", "/admin/permissions")
      .addSuccess(PendingPermissionList)
      .annotate(OpenApi.Summary, "Every live session's requests waiting for an answer (ask mode)")
      .annotate(OpenApi.Transform, operation({ success: "The pending requests" }))
  )
  .add(
    HttpApiEndpoint.post("answerAdminPermission", "/admin/sessions/:id/permissions/:request_id")
      .setPath(PermissionParams)
      .setPayload(PermissionAnswer)
      .addSuccess(AnswerReply)
      .addError(SessionNotFound)
      .addError(PermissionNotFound)
      .annotate(OpenApi.Summary, "Answer a request an agent waits on, as an operator")
      .annotate(
        OpenApi.Description,
        "As the app's own `POST /sessions/{id}/permissions/{request_id}`; the audit trail and the stream's " +
          "`permission_resolved` say `by: \"admin\"`."
      )
      .annotate(
        OpenApi.Transform,
        operation({
          success: "The answer reached the agent",
          payload: PermissionAnswer,
          examples: { allow: { summary: "Allow the tool call once", value: { option_id: "allow" } } }
        })
      )
  )
  .add(
    HttpApiEndpoint.get("getAdminUsage", "/admin/usage")
      .setUrlParams(AdminUsageParams)
      .addSuccess(AdminUsageReply)
      .annotate(OpenApi.Summary, "What every app used: turns, sessions, runs, tokens and cost, by app")
      .annotate(
        OpenApi.Description,
        "As an app's `GET /usage`, for all of them: `from` inclusive, `to` exclusive (Unix seconds), open when left out."
      )
      .annotate(OpenApi.Transform, operation({ success: "Usage by app" }))
  )
  .add(
    HttpApiEndpoint.get("listAuditEvents", "/admin/audit")
      .setUrlParams(AuditParams)
      .addSuccess(AuditList)
      .annotate(OpenApi.Summary, "The audit trail of every session, newest first")
      .annotate(
        OpenApi.Description,
        "Page back with `before` (the last `id` seen); `limit` is 1 to 1000 (default 100). Events go with their " +
          "session when the sweeper deletes it (CLAWDFORGE_SESSION_HARD_TTL_SECS)."
      )
      .annotate(OpenApi.Transform, operation({ success: "The events" }))
  )
  .add(
    HttpApiEndpoint.get("getCluster", "/cluster")
      .addSuccess(ClusterStatus)
      .addError(NotACluster)
      .annotate(OpenApi.Summary, "The cluster's nodes: their live sessions, capacity and shards, and who owns each shard")
      .annotate(
        OpenApi.Description,
        "Read from the nodes' heartbeats in the shared database (each node writes its own every second; a node " +
          "silent for 5 s is not listed), through any node. A single gateway (CLAWDFORGE_CLUSTER not set) is no " +
          "cluster: 404 `not_a_cluster`."
      )
      .annotate(OpenApi.Transform, operation({ success: "The cluster" }))
  )
  .middleware(AdminAuthorization)
  .annotate(OpenApi.Title, "admin")
  .annotate(
    OpenApi.Description,
    "The operators' API, behind CLAWDFORGE_ADMIN_TOKEN (its own scheme, `adminBearer`): every app's sessions, apps, " +
      "limits, usage and audit trail, and a cluster's nodes (`GET /cluster`). Off (404) when the variable is not set. The console (`GET /console`) reads it."
  )
{}

/** The console page, as `GET /console` serves it. */
export const ConsolePage = Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/html" }))

export const ConsoleAssetParam = Schema.Struct({
  file: Schema.Literal("console.js", "console.css", "icon.svg").annotations({
    description: "The console's script, style sheet or icon"
  })
})

/** The console's page and its assets: no token (the page signs in), served by the gateway itself. */
export class ConsoleApi extends HttpApiGroup.make("console", { topLevel: true })
  .add(
    HttpApiEndpoint.get("getConsole", "/console")
      .addSuccess(ConsolePage)
      .annotate(OpenApi.Summary, "The operators' web console")
      .annotate(
        OpenApi.Description,
        "A page served whole by the gateway (its script and style from `/console/{file}`, nothing from any other " +
          "host, `Content-Security-Policy` to match). It asks for the admin token and keeps it for the tab " +
          "only (`sessionStorage`). Without CLAWDFORGE_ADMIN_TOKEN it is a 404 page that says the admin API is off."
      )
      .annotate(OpenApi.Transform, operation({ success: "An HTML page" }))
  )
  .add(
    HttpApiEndpoint.get("getConsoleAsset", "/console/:file")
      .setPath(ConsoleAssetParam)
      .addSuccess(Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/javascript" })))
      .annotate(OpenApi.Summary, "The console's script, style sheet or icon")
      .annotate(
        OpenApi.Description,
        "Compressed (br, gzip) when the request accepts it; revalidate with `If-None-Match`. Read from the " +
          "build (`dist/app/console/`) when first asked for."
      )
      .annotate(OpenApi.Transform, operation({ success: "The file" }))
  )
  .annotate(OpenApi.Title, "console")
  .annotate(OpenApi.Description, "The operators' web console (no token: it signs in with the admin token)")
{}
