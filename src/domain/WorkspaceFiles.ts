import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import { Schema } from "effect"
import { errorFields } from "./Errors.js"

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
