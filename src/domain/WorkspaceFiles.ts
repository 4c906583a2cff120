import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import { operation } from "./ApiDocument.js"
import { BadRequest, errorFields, SessionClosed, SessionNotFound } from "./Errors.js"

// The errors of a session's workspace (its files routes, and what archives, clones and turns
// share with them: the quotas).

export class BadPath extends Schema.TaggedError<BadPath>()(
  "BadPath",
  errorFields("bad_path"),
  HttpApiSchema.annotations({
    status: 400,
    description: "The path is absolute, holds `..`, a NUL or a backslash (in any encoding), or crosses a symlink"
  })
) {}

export class FileNotFound extends Schema.TaggedError<FileNotFound>()(
  "FileNotFound",
  errorFields("file_not_found"),
  HttpApiSchema.annotations({ status: 404, description: "No such file in the session's workspace" })
) {}

export class IsADirectory extends Schema.TaggedError<IsADirectory>()(
  "IsADirectory",
  errorFields("is_a_directory"),
  HttpApiSchema.annotations({ status: 400, description: "The path names a folder (list it, or delete it with ?recursive=true)" })
) {}

export class PreconditionFailed extends Schema.TaggedError<PreconditionFailed>()(
  "PreconditionFailed",
  errorFields("precondition_failed"),
  HttpApiSchema.annotations({ status: 412, description: "`If-Match` or `If-None-Match: *` does not hold for the file as it is" })
) {}

export class FileTooLarge extends Schema.TaggedError<FileTooLarge>()(
  "FileTooLarge",
  {
    ...errorFields("file_too_large"),
    limit_bytes: Schema.Number.annotations({ description: "The largest file the gateway takes (CLAWDFORGE_MAX_FILE_MB)" })
  },
  HttpApiSchema.annotations({ status: 413, description: "The file is larger than CLAWDFORGE_MAX_FILE_MB" })
) {}

export class DiskQuota extends Schema.TaggedError<DiskQuota>()(
  "DiskQuota",
  {
    ...errorFields("disk_quota"),
    limit_mb: Schema.Number.annotations({ description: "The app's `max_disk_mb`" }),
    used_mb: Schema.Number.annotations({ description: "What the app's workspaces and HOME hold (MB, as last measured)" })
  },
  HttpApiSchema.annotations({ status: 429, description: "The app's workspaces and HOME are at its `max_disk_mb`" })
) {}

/** A write that would take the session's workspace past `CLAWDFORGE_WORKSPACE_MAX_MB`: refused, nothing written. */
export class WorkspaceQuotaExceeded extends Schema.TaggedError<WorkspaceQuotaExceeded>()(
  "WorkspaceQuotaExceeded",
  {
    ...errorFields("workspace_quota"),
    limit_mb: Schema.Number.annotations({ description: "CLAWDFORGE_WORKSPACE_MAX_MB" }),
    used_mb: Schema.Number.annotations({ description: "What the workspace holds (MB)" })
  },
  HttpApiSchema.annotations({ status: 413, description: "The write would take the workspace past CLAWDFORGE_WORKSPACE_MAX_MB" })
) {}

/** The workspace is over `CLAWDFORGE_WORKSPACE_MAX_MB` (a turn left it so): no turn until files go. */
export class WorkspaceOverQuota extends Schema.TaggedError<WorkspaceOverQuota>()(
  "WorkspaceOverQuota",
  {
    ...errorFields("workspace_quota"),
    limit_mb: Schema.Number.annotations({ description: "CLAWDFORGE_WORKSPACE_MAX_MB" }),
    used_mb: Schema.Number.annotations({ description: "What the workspace holds (MB)" })
  },
  HttpApiSchema.annotations({ status: 429, description: "The workspace is over CLAWDFORGE_WORKSPACE_MAX_MB: delete files first" })
) {}

// The files routes: schemas and the `WorkspaceFilesApi` group.

const Ok = Schema.Literal(true)

export const FileEntry = Schema.Struct({
  path: Schema.String.annotations({ description: "Relative to the workspace's root, `/` between folders" }),
  type: Schema.Literal("file", "dir", "symlink").annotations({ description: "A symlink is listed, never followed" }),
  size: Schema.Int.annotations({ description: "Bytes (a folder: 0; a symlink: the length of its target)" }),
  mtime: Schema.Int.annotations({ description: "Last modified, Unix seconds" })
}).annotations({ identifier: "FileEntry" })

export const FileListing = Schema.Struct({
  ok: Ok,
  path: Schema.String.annotations({ description: "The folder listed (`\"\"`: the workspace's root)" }),
  entries: Schema.Array(FileEntry),
  truncated: Schema.Boolean.annotations({ description: "More entries than a listing holds (100,000): list a folder further down" })
}).annotations({ identifier: "FileListing" })

export const ListFilesParams = Schema.Struct({
  path: Schema.optional(Schema.String.annotations({ description: "A folder of the workspace (default: its root)" })),
  recursive: Schema.optional(
    Schema.Literal("true", "false").annotations({ description: "`true`: everything under the folder, not only its entries" })
  )
})

/** The session and the file: the file's path is the rest of the URL, `/` between folders. */
export const FilePathParams = Schema.Struct({
  id: Schema.String.annotations({ description: "The `session_id` that `POST /sessions` answered" }),
  "*": Schema.String.annotations({ description: "The file's path in the workspace, `/` between folders" })
})

export const DeleteFileParams = Schema.Struct({
  recursive: Schema.optional(Schema.Literal("true", "false").annotations({ description: "`true` to delete a folder with all it holds" }))
})

export const PutFileHeaders = Schema.Struct({
  "if-match": Schema.optional(Schema.String.annotations({ description: "Replace only while the file's `ETag` is this one (else 412)" })),
  "if-none-match": Schema.optional(Schema.Literal("*").annotations({ description: "`*`: create only, never replace (else 412)" }))
})

const fileWrittenFields = {
  ok: Ok,
  path: Schema.String.annotations({ description: "The file's path in the workspace" }),
  size: Schema.Int.annotations({ description: "Bytes written" }),
  etag: Schema.String.annotations({ description: "The file's new `ETag` (also in the header)" })
}
export const FileCreated = Schema.Struct(fileWrittenFields).annotations({ identifier: "FileCreated" })
export const FileReplaced = Schema.Struct(fileWrittenFields).annotations({ identifier: "FileReplaced" })

export const FileDeleted = Schema.Struct({ ok: Ok }).annotations({ identifier: "FileDeleted" })

/** A file's bytes, both ways. */
export const FileBytes = HttpApiSchema.Uint8Array({ contentType: "application/octet-stream" }).annotations({
  description: "The file's bytes"
})

const pathRules = " A path that is absolute, holds `..`, a NUL or a backslash (also percent-encoded), or crosses a " +
  "symlink is 400 `bad_path`: nothing outside the workspace is ever read or written."

export class WorkspaceFilesApi extends HttpApiGroup.make("files", { topLevel: true })
  .add(
    HttpApiEndpoint.get("listFiles", "/sessions/:id/files")
      .setPath(Schema.Struct({ id: FilePathParams.fields.id }))
      .setUrlParams(ListFilesParams)
      .addSuccess(FileListing)
      .addError(SessionNotFound)
      .addError(BadPath)
      .addError(FileNotFound)
      .addError(IsADirectory)
      .annotate(OpenApi.Summary, "List the session's workspace (a folder, or everything under it)")
      .annotate(
        OpenApi.Description,
        "Entries of the folder `path` (default: the workspace's root), or with `recursive=true` everything under it, " +
          "sorted by name; symlinks are listed as such and never followed. A closed session's workspace stays readable " +
          "until the hard TTL removes it." + pathRules
      )
      .annotate(OpenApi.Transform, operation({ success: "The folder's entries" }))
  )
  .add(
    HttpApiEndpoint.get("getFile", "/sessions/:id/files/*")
      .setPath(FilePathParams)
      .addSuccess(FileBytes)
      .addError(SessionNotFound)
      .addError(BadPath)
      .addError(FileNotFound)
      .addError(IsADirectory)
      .annotate(OpenApi.Summary, "Download a file of the session's workspace")
      .annotate(
        OpenApi.Description,
        "The file's bytes, streamed; `Content-Type` from its extension (else `application/octet-stream`) and a strong " +
          "`ETag` (send it as `If-Match` to replace only that version). A folder is 400 `is_a_directory`, a missing " +
          "file 404 `file_not_found`." + pathRules
      )
      .annotate(OpenApi.Transform, operation({
        success: "The file's bytes",
        successHeaders: { ETag: { description: "The file's version: changes with every write" } }
      }))
  )
  .add(
    HttpApiEndpoint.put("putFile", "/sessions/:id/files/*")
      .setPath(FilePathParams)
      .setHeaders(PutFileHeaders)
      .setPayload(FileBytes)
      .addSuccess(FileCreated, { status: 201 })
      .addSuccess(FileReplaced)
      .addError(BadRequest)
      .addError(SessionNotFound)
      .addError(SessionClosed)
      .addError(BadPath)
      .addError(FileNotFound)
      .addError(IsADirectory)
      .addError(PreconditionFailed)
      .addError(FileTooLarge)
      .addError(WorkspaceQuotaExceeded)
      .addError(DiskQuota)
      .annotate(OpenApi.Summary, "Upload a file into the session's workspace (raw bytes)")
      .annotate(
        OpenApi.Description,
        "The body is the file's bytes, streamed to disk (any `Content-Type`). 201 when the file is new, 200 when it " +
          "replaced one; folders on the way are made. The file belongs to the agent's user, so the agent can change " +
          "it. `If-Match: <etag>` replaces only that version, `If-None-Match: *` only creates: 412 " +
          "`precondition_failed` otherwise. Over CLAWDFORGE_MAX_FILE_MB: 413 `file_too_large`; past the workspace's " +
          "CLAWDFORGE_WORKSPACE_MAX_MB: 413 `workspace_quota`; past the app's `max_disk_mb`: 429 `disk_quota`; " +
          "nothing is written then. A closed session is 410." + pathRules
      )
      .annotate(OpenApi.Transform, operation({
        success: "The file replaced one",
        successHeaders: { ETag: { description: "The file's new version" } }
      }))
  )
  .add(
    HttpApiEndpoint.del("deleteFile", "/sessions/:id/files/*")
      .setPath(FilePathParams)
      .setUrlParams(DeleteFileParams)
      .addSuccess(FileDeleted)
      .addError(SessionNotFound)
      .addError(SessionClosed)
      .addError(BadPath)
      .addError(FileNotFound)
      .addError(IsADirectory)
      .annotate(OpenApi.Summary, "Delete a file (or, with recursive=true, a folder) of the session's workspace")
      .annotate(
        OpenApi.Description,
        "A folder needs `recursive=true` (else 400 `is_a_directory`); a symlink is removed itself, never what it " +
          "points to. A closed session is 410." + pathRules
      )
      .annotate(OpenApi.Transform, operation({ success: "Deleted" }))
  )
  .annotate(OpenApi.Title, "files")
  .annotate(OpenApi.Description, "A session's workspace: list, download, upload and delete its files")
{}
