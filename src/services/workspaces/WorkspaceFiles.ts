import { Effect, type Stream } from "effect"
import { extname } from "node:path"
import { Readable } from "node:stream"
import type { AppName } from "../../domain/Ids.js"
import { FileTooLarge, IsADirectory, PreconditionFailed } from "../../domain/WorkspaceFiles.js"
import { AppConfig } from "../config/AppConfig.js"
import { sessionClosed } from "../sessions/SessionErrors.js"
import { Sessions } from "../sessions/Sessions.js"
import { WorkspacePaths } from "./WorkspacePaths.js"
import { WorkspaceQuota } from "./WorkspaceQuota.js"

/** How many entries one listing holds at most (`truncated` past it). */
export const maxListedEntries = 100_000

// The types a download is served with, by extension: what browsers and tools need to show a
// workspace's usual files; anything else is application/octet-stream.
const typesByExtension: Record<string, string> = {
  ".txt": "text/plain; charset=utf-8",
  ".md": "text/markdown; charset=utf-8",
  ".csv": "text/csv; charset=utf-8",
  ".log": "text/plain; charset=utf-8",
  ".html": "text/html; charset=utf-8",
  ".htm": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".cjs": "text/javascript; charset=utf-8",
  ".ts": "text/plain; charset=utf-8",
  ".tsx": "text/plain; charset=utf-8",
  ".py": "text/x-python; charset=utf-8",
  ".sh": "text/x-shellscript; charset=utf-8",
  ".json": "application/json",
  ".xml": "application/xml",
  ".yaml": "application/yaml",
  ".yml": "application/yaml",
  ".toml": "application/toml",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".ico": "image/vnd.microsoft.icon",
  ".pdf": "application/pdf",
  ".zip": "application/zip",
  ".gz": "application/gzip",
  ".tgz": "application/gzip",
  ".tar": "application/x-tar",
  ".wasm": "application/wasm",
  ".mp3": "audio/mpeg",
  ".wav": "audio/wav",
  ".mp4": "video/mp4",
  ".webm": "video/webm"
}

/** A download's `Content-Type`, from the file's extension. */
export const contentTypeOf = (path: string) => typesByExtension[extname(path).toLowerCase()] ?? "application/octet-stream"

/** The validators an `If-Match` header lists (`*`: any); a weak one never matches a strong comparison. */
const listedTags = (header: string) =>
  header.split(",").map((tag) => tag.trim()).filter((tag) => tag.length > 0 && !tag.startsWith("W/"))

/** What a PUT asks of the file as it is: `If-Match` (one of these versions) and `If-None-Match: *` (none at all). */
export interface WritePreconditions {
  readonly ifMatch?: string | undefined
  readonly ifNoneMatch?: string | undefined
}

const preconditionFailure = (path: string, conditions: WritePreconditions, current: { readonly etag: string } | undefined) => {
  if (conditions.ifNoneMatch !== undefined && current !== undefined) {
    return new PreconditionFailed({ message: `${path} exists (If-None-Match: *)` })
  }
  if (conditions.ifMatch !== undefined) {
    const tags = listedTags(conditions.ifMatch)
    if (current === undefined) return new PreconditionFailed({ message: `${path} does not exist (If-Match)` })
    if (!tags.includes("*") && !tags.includes(current.etag)) {
      return new PreconditionFailed({ message: `${path} is at ${current.etag}, not the version If-Match names` })
    }
  }
  return undefined
}

/**
 * A session's workspace over HTTP: list, download, upload, delete, each path reached through
 * `WorkspacePaths` (never through a link), each write within the quotas and given to the agent's user.
 */
export class WorkspaceFiles extends Effect.Service<WorkspaceFiles>()("clawdforge/WorkspaceFiles", {
  effect: Effect.gen(function*() {
    const config = yield* AppConfig
    const sessions = yield* Sessions
    const paths = yield* WorkspacePaths
    const quota = yield* WorkspaceQuota

    /** The session's workspace for a write: 404 for another app's, 410 once closed. */
    const writable = (app: AppName, id: string) =>
      Effect.flatMap(sessions.workspace(app, id), (workspace) =>
        workspace.closed ? Effect.fail(sessionClosed(workspace.session_id)) : Effect.succeed(workspace))

    const list = Effect.fn("WorkspaceFiles.list")(function*(app: AppName, id: string, path: string, recursive: boolean) {
      const workspace = yield* sessions.workspace(app, id)
      const segments = yield* paths.parse(path)
      const listed = yield* paths.list(workspace.dir, segments, { recursive, limit: maxListedEntries })
      return { ok: true as const, path: segments.join("/"), entries: listed.entries, truncated: listed.truncated }
    })

    /**
     * The file for a download: its bytes as a stream (which closes the file once it ends or is
     * destroyed), its size, type and `ETag`. Closed sessions' files too, until the hard TTL.
     */
    const download = Effect.fn("WorkspaceFiles.download")(function*(app: AppName, id: string, path: string) {
      const workspace = yield* sessions.workspace(app, id)
      const segments = yield* paths.parse(path)
      const file = yield* paths.openFile(workspace.dir, segments)
      // At most the bytes it had when opened: the agent may append to it meanwhile, the length is said already.
      if (file.size === 0) yield* Effect.promise(() => file.handle.close().catch(() => {}))
      const body: Readable = file.size === 0
        ? Readable.from([])
        : file.handle.createReadStream({ start: 0, end: file.size - 1, autoClose: true, highWaterMark: 1024 * 1024 })
      return { body, size: file.size, etag: file.etag, contentType: contentTypeOf(segments[segments.length - 1] ?? "") }
    })

    /**
     * Streams `body` into the file (made with its folders, given to the agent): 201 created or 200
     * replaced. Refused before a byte is read when `contentLength` says it is too large or the quota
     * is used up; past the limits while it arrives, refused then, with nothing written.
     */
    const upload = Effect.fn("WorkspaceFiles.upload")(function*<E>(
      app: AppName,
      id: string,
      path: string,
      body: Stream.Stream<Uint8Array, E>,
      options: WritePreconditions & { readonly contentLength?: number | undefined }
    ) {
      const workspace = yield* writable(app, id)
      const segments = yield* paths.parse(path)
      const shown = segments.join("/")
      const maxFile = config.maxFileBytes
      const tooLarge = (bytes: number) =>
        new FileTooLarge({
          message: `${shown}: ${bytes} bytes${options.contentLength === undefined ? " or more" : ""}, past ` +
            `CLAWDFORGE_MAX_FILE_MB (${maxFile / 1024 / 1024} MB)`,
          limit_bytes: maxFile
        })
      if (options.contentLength !== undefined && options.contentLength > maxFile) return yield* tooLarge(options.contentLength)
      const existing = yield* paths.lstat(workspace.dir, segments)
      if (existing?.isDirectory) return yield* new IsADirectory({ message: `${shown} is a folder` })
      // Checked now so a refused upload is not read, and again right before the file is put in place.
      const early = preconditionFailure(shown, options, existing)
      if (early !== undefined) return yield* early
      const oldSize = existing?.size ?? 0
      const room = yield* quota.admit(app, workspace.dir, (options.contentLength ?? 0) - oldSize)
      const written = yield* paths.writeFile(workspace.dir, segments, body, {
        maxBytes: Math.min(maxFile, oldSize + room),
        tooLarge: (bytes) =>
          bytes > maxFile
            ? Effect.fail(tooLarge(bytes))
            : Effect.flatMap(quota.admit(app, workspace.dir, bytes - oldSize), () => Effect.fail(tooLarge(bytes))),
        check: (current) => {
          const failure = preconditionFailure(shown, options, current)
          return failure === undefined ? Effect.void : Effect.fail(failure)
        }
      })
      yield* quota.added(app, workspace.dir, written.size - (written.created ? 0 : oldSize))
      return { ok: true as const, path: shown, size: written.size, etag: written.etag, created: written.created }
    })

    const remove = Effect.fn("WorkspaceFiles.remove")(function*(app: AppName, id: string, path: string, recursive: boolean) {
      const workspace = yield* writable(app, id)
      const segments = yield* paths.parse(path)
      yield* paths.remove(workspace.dir, segments, recursive)
      yield* quota.changed(app, workspace.dir)
      return { ok: true as const }
    })

    return { list, download, upload, remove } as const
  }),
  dependencies: [AppConfig.Default, Sessions.Default, WorkspacePaths.Default, WorkspaceQuota.Default]
}) {}
