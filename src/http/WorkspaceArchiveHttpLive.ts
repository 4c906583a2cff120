import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { NodeHttpServerRequest, NodeStream } from "@effect/platform-node"
import { Effect } from "effect"
import { Api, CurrentApp } from "../domain/Api.js"
import { SessionClosed } from "../domain/Errors.js"
import { BadArchive } from "../domain/WorkspaceArchive.js"
import { Sessions } from "../services/sessions/Sessions.js"
import { WorkspaceArchive } from "../services/workspaces/WorkspaceArchive.js"
import { WorkspaceQuota } from "../services/workspaces/WorkspaceQuota.js"
import { AppConfig } from "../services/config/AppConfig.js"
import { WorkspaceQuotaExceeded } from "../domain/WorkspaceFiles.js"

const mb = 1024 * 1024

/** `GET/PUT /sessions/{id}/archive`: the workspace out as a streamed tar.gz, a tar or tar.gz in. */
export const WorkspaceArchiveHttpLive = HttpApiBuilder.group(Api, "workspaceArchive", (handlers) =>
  Effect.gen(function*() {
    const sessions = yield* Sessions
    const archive = yield* WorkspaceArchive
    const quota = yield* WorkspaceQuota
    const config = yield* AppConfig
    return handlers
      .handle("getArchive", ({ path }) =>
        Effect.gen(function*() {
          const workspace = yield* sessions.workspace(yield* CurrentApp, path.id)
          return HttpServerResponse.stream(yield* archive.pack(workspace.dir), {
            contentType: "application/gzip",
            headers: { "content-disposition": `attachment; filename="${workspace.session_id}.tar.gz"` }
          })
        }))
      // Raw: the body is streamed into the extraction as it arrives, never held whole.
      .handleRaw("putArchive", ({ path, request }) =>
        Effect.gen(function*() {
          const app = yield* CurrentApp
          const workspace = yield* sessions.workspace(app, path.id)
          if (workspace.closed) {
            return yield* new SessionClosed({ message: "The session is closed: its workspace can be read, not changed" })
          }
          // Not destroyed when the extraction stops early: the rest of the body is read and thrown away
          // after the answer (RequestErrors, RawBodies), so the client gets the answer, not a reset.
          const body = NodeStream.fromReadable(
            () => NodeHttpServerRequest.toIncomingMessage(request),
            () => new BadArchive({ message: "The request body could not be read to its end" }),
            { closeOnDone: false }
          )
          // The room the quotas leave (413 `workspace_quota`, 429 `disk_quota` when there is none); past
          // it mid-archive, the quota that ran out says so.
          const room = yield* quota.admit(app, workspace.dir, 0)
          const extracted = yield* archive.extract(workspace.dir, body, room).pipe(
            Effect.catchTag("ArchiveTooLarge", ({ bytes }) =>
              Effect.flatMap(quota.admit(app, workspace.dir, bytes), () =>
                new WorkspaceQuotaExceeded({
                  message: `The archive holds more than the ${(room / mb).toFixed(1)} MB left under the workspace's quotas`,
                  limit_mb: config.workspaceMaxBytes / mb,
                  used_mb: 0
                })))
          )
          yield* quota.changed(app, workspace.dir)
          return { ok: true as const, ...extracted }
        }))
  }))
