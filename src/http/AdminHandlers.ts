import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Effect, Layer, Option, Redacted } from "effect"
import { Api } from "../domain/Api.js"
import { NotACluster } from "../domain/Cluster.js"
import { Admin } from "../services/admin/Admin.js"
import { ClusterView } from "../services/admin/ClusterView.js"
import { Webhooks } from "../services/tenancy/Webhooks.js"
import { AppConfig } from "../services/config/AppConfig.js"
import { AppTokens } from "../services/ledger/AppTokens.js"
import { AppNotFound } from "../domain/Admin.js"
import type { AppName } from "../domain/Ids.js"
import { AdminAuthorizationLive } from "./AdminAuthorization.js"
import { Console } from "./Console.js"
import { resumeAfter } from "./Handlers.js"
import { turnEventStream } from "./TurnStream.js"

const notAClusterMessage = "This gateway is not a node of a cluster: GET /cluster answers on nodes (CLAWDFORGE_CLUSTER=true)"

/** `/admin/*` and `GET /cluster`: the operators' API, behind the admin guard. */
export const AdminHttpLive = HttpApiBuilder.group(Api, "admin", (handlers) =>
  Effect.gen(function*() {
    const admin = yield* Admin
    // Provided on a node of a cluster only.
    const cluster = yield* Effect.serviceOption(ClusterView)
    const webhooks = yield* Webhooks
    const { appTokens } = yield* AppConfig
    const tokens = yield* AppTokens
    /** Webhooks are set for apps that are configured: from CLAWDFORGE_APP_TOKENS or active in the ledger. */
    const configuredApp = (name: AppName) =>
      appTokens.some(([app]) => app === name)
        ? Effect.void
        : Effect.flatMap(tokens.list(), (apps) =>
          apps.some((app) => app.name === name && app.revoked_at === null)
            ? Effect.void
            : Effect.fail(new AppNotFound({
              message: `No app ${name} (neither in CLAWDFORGE_APP_TOKENS nor active in the ledger)`
            })))
    return handlers
      .handle("getAdminOverview", () => admin.overview())
      .handle("listAdminApps", () =>
        Effect.map(admin.apps(), (apps) => ({ ok: true as const, count: apps.length, apps })))
      .handle("createAdminApp", ({ payload }) => admin.createApp(payload.name))
      .handle("revokeAdminApp", ({ path }) => admin.revokeApp(path.name))
      .handle("setAdminAppLimits", ({ path, payload }) => admin.setLimits(path.name, payload))
      .handle("setAdminAppWebhook", ({ path, payload }) =>
        Effect.zipRight(
          configuredApp(path.name),
          Effect.map(webhooks.set(path.name, payload.url), (hook) => ({
            ok: true as const,
            app: hook.app,
            url: hook.url,
            secret: Redacted.value(hook.secret),
            created_at: hook.created_at
          }))
        ))
      .handle("removeAdminAppWebhook", ({ path }) =>
        Effect.zipRight(
          configuredApp(path.name),
          Effect.map(webhooks.remove(path.name), (removed) =>
            removed ? { ok: true as const } : { ok: true as const, already_removed: true as const })
        ))
      .handle("listAdminSessions", ({ urlParams }) =>
        Effect.map(admin.listSessions(urlParams), (list) => ({ ok: true as const, count: list.length, sessions: list })))
      .handle("getAdminSession", ({ path }) => admin.session(path.id))
      .handle("closeAdminSession", ({ path }) =>
        Effect.map(
          admin.close(path.id),
          ({ alreadyClosed }) => alreadyClosed ? { ok: true as const, already_closed: true } : { ok: true as const }
        ))
      .handle("getAdminTurn", ({ path, urlParams }) =>
        admin.getTurn(path.id, path.n, { after: urlParams.events_after, limit: urlParams.events_limit }))
      .handle("streamAdminTurn", ({ headers, path }) =>
        Effect.flatMap(
          admin.followTurn(path.id, path.n),
          (feed) => Effect.map(resumeAfter(feed.turnIndex, headers["last-event-id"]), (after) => turnEventStream(feed, after))
        ))
      .handle("listAdminPermissions", () =>
        Effect.map(admin.pending(), (permissions) => ({ ok: true as const, count: permissions.length, permissions })))
      .handle("answerAdminPermission", ({ path, payload }) =>
        Effect.as(admin.answer(path.id, path.request_id, payload), { ok: true as const }))
      .handle("getAdminUsage", ({ urlParams }) => admin.usageByApp(urlParams))
      .handle("listAuditEvents", ({ urlParams }) =>
        Effect.map(admin.audit(urlParams), (events) => ({ ok: true as const, count: events.length, events })))
      .handle("getCluster", () =>
        Option.match(cluster, {
          onNone: () => Effect.fail(new NotACluster({ message: notAClusterMessage })),
          onSome: (view) => view.status()
        }))
  })).pipe(Layer.provide([Admin.Default, AdminAuthorizationLive]))

/** `GET /console` and its assets: open (the page signs in with the admin token). */
export const ConsoleHttpLive = HttpApiBuilder.group(Api, "console", (handlers) =>
  Effect.gen(function*() {
    const console = yield* Console
    return handlers
      .handle("getConsole", () => console.page())
      .handle("getConsoleAsset", ({ path }) => console.asset(path.file))
  })).pipe(Layer.provide(Console.Default))
