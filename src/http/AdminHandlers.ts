import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Effect, Layer, Option } from "effect"
import { Api } from "../domain/Api.js"
import { NotACluster } from "../domain/Cluster.js"
import { Admin } from "../services/admin/Admin.js"
import { ClusterView } from "../services/admin/ClusterView.js"
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
    return handlers
      .handle("getAdminOverview", () => admin.overview())
      .handle("listAdminApps", () =>
        Effect.map(admin.apps(), (apps) => ({ ok: true as const, count: apps.length, apps })))
      .handle("createAdminApp", ({ payload }) => admin.createApp(payload.name))
      .handle("revokeAdminApp", ({ path }) => admin.revokeApp(path.name))
      .handle("setAdminAppLimits", ({ path, payload }) => admin.setLimits(path.name, payload))
      .handle("listAdminSessions", ({ urlParams }) =>
        Effect.map(admin.listSessions(urlParams), (list) => ({ ok: true as const, count: list.length, sessions: list })))
      .handle("getAdminSession", ({ path }) => admin.session(path.id))
      .handle("closeAdminSession", ({ path }) =>
        Effect.map(
          admin.close(path.id),
          ({ alreadyClosed }) => alreadyClosed ? { ok: true as const, already_closed: true } : { ok: true as const }
        ))
      .handle("getAdminTurn", ({ path }) => admin.getTurn(path.id, path.n))
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
