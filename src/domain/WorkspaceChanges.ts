import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import { AdminAuthorization } from "./Admin.js"
import { operation } from "./ApiDocument.js"
import { BadRequest, SessionNotFound, TurnNotFound } from "./Errors.js"
import { IntFromString, SessionId } from "./Ids.js"
import { FileNotFound } from "./WorkspaceFiles.js"
import { WorkspaceChange } from "./WorkspaceChange.js"

export { maxDiffBytes, maxTurnChanges, TurnChanges, WorkspaceChange } from "./WorkspaceChange.js"

// What turns did to a session's workspace: each stored turn's `changes`, and what changed since a turn.

/** Path id: any string; one that is not a well-formed id is simply not found (404). */
const ChangesPath = Schema.Struct({
  id: Schema.String.annotations({ description: "The `session_id` that `POST /sessions` answered" })
})

export const ChangesParams = Schema.Struct({
  since_turn: Schema.optional(IntFromString({
    minimum: 0,
    maximum: 2_147_483_647,
    description: "The turn after which changes count; 0 (the default): since the session began, uploads included"
  })),
  diff: Schema.optional(Schema.Literal("true", "false").annotations({
    description: "`true`: each text file under 1 MB comes with a unified `diff`"
  }))
})

/** A change with, when asked for, its unified diff. */
export const WorkspaceChangeWithDiff = Schema.Struct({
  ...WorkspaceChange.fields,
  diff: Schema.optional(Schema.String.annotations({
    description: "With `diff=true`: the unified diff (3 lines of context) of a text file under 1 MB on both sides; " +
      "absent for a binary or larger file, a symlink, or a diff that took too long"
  }))
}).annotations({ identifier: "WorkspaceChangeWithDiff" })

export const ChangesReply = Schema.Struct({
  ok: Schema.Literal(true),
  session_id: SessionId,
  since_turn: Schema.Int.annotations({ description: "The turn the changes are counted from (0: the session's start)" }),
  count: Schema.Int.annotations({ description: "How many changes `changes` holds" }),
  changes: Schema.Array(WorkspaceChangeWithDiff).annotations({ description: "By path" })
}).annotations({ identifier: "ChangesReply", description: "What changed in the workspace since a turn, up to now" })
export type ChangesReply = typeof ChangesReply.Type

/** Its routes carry the app's `Authorization` (added where the Api is assembled). */
export class WorkspaceChangesApi extends HttpApiGroup.make("workspaceChanges", { topLevel: true })
  .add(
    HttpApiEndpoint.get("getChanges", "/sessions/:id/changes")
      .setPath(ChangesPath)
      .setUrlParams(ChangesParams)
      .addSuccess(ChangesReply)
      .addError(SessionNotFound)
      .addError(TurnNotFound)
      .addError(BadRequest)
      .annotate(OpenApi.Summary, "What changed in the workspace since a turn")
      .annotate(
        OpenApi.Description,
        "The files added, modified and deleted after turn `since_turn` ended, up to now (0: since the session " +
          "began, uploads and archives included; a closed session's workspace too, until the hard TTL). With " +
          "`diff=true` each text file under 1 MB carries a unified diff against its content then. A turn that has " +
          "not ended is a 400; one the session does not have, 404 `turn_not_found`. Each turn's own changes are " +
          "its `changes` (`GET /sessions/{id}/turns/{n}`, the stream's `done` event, the `turn.completed` webhook).\n\n" +
          "```sh\ncurl -H \"Authorization: Bearer $TOKEN\" \"$GATEWAY/sessions/$ID/changes?since_turn=1&diff=true\"\n```"
      )
      .annotate(OpenApi.Transform, operation({ success: "The changes, by path" }))
  )
  .annotate(OpenApi.Title, "workspace changes")
  .annotate(OpenApi.Description, "What the agent's turns did to the session's workspace")
{}

/** A file of the workspace as the console lists it. */
export const WorkspaceFileEntry = Schema.Struct({
  path: Schema.String.annotations({ description: "Relative to the workspace root, `/`-separated" }),
  size: Schema.Int.annotations({ description: "In bytes" }),
  type: Schema.Literal("file", "symlink")
}).annotations({ identifier: "WorkspaceFileEntry" })

export const WorkspaceFileList = Schema.Struct({
  ok: Schema.Literal(true),
  session_id: SessionId,
  count: Schema.Int,
  files: Schema.Array(WorkspaceFileEntry).annotations({ description: "By path" })
}).annotations({ identifier: "WorkspaceFileList", description: "The workspace's files now (`.git` and `.home` left out)" })

const AdminFilePath = Schema.Struct({
  id: Schema.String.annotations({ description: "Any app's `session_id`" }),
  "*": Schema.String.annotations({ description: "The file's path, relative to the workspace root" })
})

/**
 * The operators' view of a session's workspace, for the console: its files as the last snapshot
 * sees them, each downloadable from that snapshot (nothing on the workspace's disk is opened).
 */
export class WorkspaceAdminApi extends HttpApiGroup.make("workspaceAdmin", { topLevel: true })
  .add(
    HttpApiEndpoint.get("listAdminFiles", "/admin/sessions/:id/files")
      .setPath(ChangesPath)
      .addSuccess(WorkspaceFileList)
      .addError(SessionNotFound)
      .annotate(OpenApi.Summary, "Any app's session's workspace files (the console's list)")
      .annotate(
        OpenApi.Description,
        "Every file of the workspace now (a snapshot taken for the question), with its size; `.git` and `.home` " +
          "are left out, symlinks listed as such and never followed. The app's own routes are `/sessions/{id}/files`."
      )
      .annotate(OpenApi.Transform, operation({ success: "The workspace's files, by path" }))
  )
  .add(
    HttpApiEndpoint.get("getAdminFile", "/admin/sessions/:id/files/*")
      .setPath(AdminFilePath)
      .addSuccess(
        Schema.Uint8ArrayFromSelf.pipe(
          HttpApiSchema.withEncoding({ kind: "Uint8Array", contentType: "application/octet-stream" }),
          Schema.annotations({ description: "The file's bytes as the last snapshot holds them" })
        )
      )
      .addError(SessionNotFound)
      .addError(FileNotFound)
      .addError(BadRequest)
      .annotate(OpenApi.Summary, "One file of any app's session's workspace (the console's download)")
      .annotate(
        OpenApi.Description,
        "The file's bytes as a snapshot of the workspace holds them (taken for the question): a path that is not " +
          "a file there, or a file over 16 MB (snapshots do not keep those), is 404 `file_not_found`; a path that is " +
          "absolute or holds `..`, a NUL or a backslash is 400."
      )
      .annotate(OpenApi.Transform, operation({ success: "The file's bytes" }))
  )
  .middleware(AdminAuthorization)
  .annotate(OpenApi.Title, "admin")
  .annotate(OpenApi.Description, "The operators' view of workspaces")
{}
