import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Effect, Layer, Option } from "effect"
import { Api, CurrentApp } from "../domain/Api.js"
import { FileNotFound } from "../domain/WorkspaceFiles.js"
import { Admin } from "../services/admin/Admin.js"
import { Sessions } from "../services/sessions/Sessions.js"
import { WorkspaceChanges } from "../services/workspaces/WorkspaceChanges.js"
import { AdminAuthorizationLive } from "./AdminAuthorization.js"

/**
 * `GET /sessions/{id}/changes`: the caller's session (another app's is 404; a closed one's
 * workspace is still there until the hard TTL), then what changed in it since the turn asked for.
 */
export const WorkspaceChangesHttpLive = HttpApiBuilder.group(Api, "workspaceChanges", (handlers) =>
  Effect.gen(function*() {
    const sessions = yield* Sessions
    const changes = yield* WorkspaceChanges
    return handlers.handle("getChanges", ({ path, urlParams }) =>
      Effect.gen(function*() {
        const app = yield* CurrentApp
        const session = yield* sessions.get(app, path.id)
        return yield* changes.since(session, urlParams.since_turn ?? 0, { diff: urlParams.diff === "true" })
      }))
  }))

/** The console's view of any app's session's workspace: its files, each downloadable from a snapshot. */
export const WorkspaceAdminHttpLive = HttpApiBuilder.group(Api, "workspaceAdmin", (handlers) =>
  Effect.gen(function*() {
    const { sessionById } = yield* Admin
    const changes = yield* WorkspaceChanges
    return handlers
      .handle("listAdminFiles", ({ path }) =>
        Effect.gen(function*() {
          const session = yield* sessionById(path.id)
          const files = yield* changes.files(session)
          return { ok: true as const, session_id: session.session_id, count: files.length, files }
        }))
      .handle("getAdminFile", ({ path }) =>
        Effect.gen(function*() {
          const session = yield* sessionById(path.id)
          const bytes = yield* changes.fileBytes(session, path["*"])
          if (Option.isNone(bytes)) {
            return yield* new FileNotFound({
              message: "Not a file of the workspace (files over 16 MB are not kept in its snapshots)"
            })
          }
          return bytes.value
        }))
  })).pipe(Layer.provide([Admin.Default, AdminAuthorizationLive]))
