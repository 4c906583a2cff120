import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import { operation } from "./ApiDocument.js"
import { errorFields, SessionClosed, SessionNotFound } from "./Errors.js"
import { SessionIdParam } from "./Session.js"
import { DiskQuota, FileNotFound, WorkspaceQuotaExceeded } from "./WorkspaceFiles.js"

// A session's whole workspace as one archive: out as a streamed tar.gz, in as a tar or tar.gz.

export class BadArchive extends Schema.TaggedError<BadArchive>()(
  "BadArchive",
  errorFields("bad_archive"),
  HttpApiSchema.annotations({
    status: 400,
    description: "The body is not a tar or tar.gz, is damaged or truncated, or holds an entry the gateway refuses (an " +
      "absolute name, `..`, a path through a symlink, a hard link to anything but a file of the archive, a device or " +
      "FIFO); `message` names the entry. Nothing was extracted"
  })
) {}

/** The archive's bytes, as the request and the response carry them. */
const archiveBytes = (contentType: string, description: string) =>
  HttpApiSchema.Uint8Array({ contentType }).annotations({ description })

export const ArchiveDownload = archiveBytes("application/gzip", "The workspace as a gzipped tar")

// One type for the body, whatever it holds: tar tells a gzipped tar from a plain one by its first bytes.
export const ArchiveUpload = archiveBytes(
  "application/octet-stream",
  "A tar or a gzipped tar (told apart by its first bytes, whatever the `Content-Type` says)"
)

export const ArchiveExtracted = Schema.Struct({
  ok: Schema.Literal(true),
  entries: Schema.Int.annotations({ description: "Files, folders and links extracted" }),
  bytes: Schema.Int.annotations({ description: "The bytes of the files extracted" })
}).annotations({ identifier: "ArchiveExtracted" })

export class WorkspaceArchiveApi extends HttpApiGroup.make("workspaceArchive", { topLevel: true })
  .add(
    HttpApiEndpoint.get("getArchive", "/sessions/:id/archive")
      .setPath(SessionIdParam)
      .addSuccess(ArchiveDownload)
      .addError(SessionNotFound)
      .addError(FileNotFound)
      .annotate(OpenApi.Summary, "Download the session's workspace as a tar.gz")
      .annotate(
        OpenApi.Description,
        "Streams the whole workspace as it is now: folders, files and symlinks (stored as links, never followed), " +
          "names relative to the workspace's root, so that the archive can be put into another session. Sockets, " +
          "FIFOs and devices are left out. A closed session's workspace stays readable until the hard TTL.\n\n" +
          "```sh\ncurl -H \"Authorization: Bearer $TOKEN\" -o work.tar.gz $GATEWAY/sessions/$ID/archive\n```"
      )
      .annotate(OpenApi.Transform, operation({ success: "The workspace, gzipped tar, streamed" }))
  )
  .add(
    HttpApiEndpoint.put("putArchive", "/sessions/:id/archive")
      .setPath(SessionIdParam)
      .setPayload(ArchiveUpload)
      .addSuccess(ArchiveExtracted)
      .addError(SessionNotFound)
      .addError(SessionClosed)
      .addError(BadArchive)
      .addError(WorkspaceQuotaExceeded)
      .addError(DiskQuota)
      .annotate(OpenApi.Summary, "Extract a tar or tar.gz into the session's workspace, all or nothing")
      .annotate(
        OpenApi.Description,
        "The body is a tar, gzipped or not (told apart by its first bytes). Entries land relative to the workspace's " +
          "root: symlinks become links (never followed), hard links only between files of the archive, the files " +
          "belong to the agent's user. An entry replaces a file or link of the same name and a folder merges into a " +
          "folder. Nothing is extracted when any entry is refused (400 `bad_archive`: an absolute name, `..`, a path " +
          "through a symlink of the archive or of the workspace, a hard link to anything else, a device or FIFO, a " +
          "folder over a file or a file over a folder, a damaged or truncated archive), or when the files would take " +
          "the workspace past CLAWDFORGE_WORKSPACE_MAX_MB (413 `workspace_quota`) or the app past its `max_disk_mb` " +
          "(429 `disk_quota`); the body is read until then, never more.\n\n" +
          "```sh\ncurl -X PUT -H \"Authorization: Bearer $TOKEN\" --data-binary @work.tar.gz $GATEWAY/sessions/$ID/archive\n```"
      )
      .annotate(OpenApi.Transform, operation({ success: "Extracted: what the archive held" }))
  )
  .annotate(OpenApi.Title, "archive")
  .annotate(OpenApi.Description, "A session's whole workspace as one archive: download it, or put one into it")
{}
