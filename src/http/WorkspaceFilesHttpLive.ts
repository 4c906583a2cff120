import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { NodeHttpServerRequest, NodeStream } from "@effect/platform-node"
import { Effect } from "effect"
import { Api, CurrentApp } from "../domain/Api.js"
import { BadRequest } from "../domain/Errors.js"
import { WorkspaceFiles } from "../services/workspaces/WorkspaceFiles.js"

/** A whole number of bytes from `Content-Length`, when the request says it. */
const contentLengthOf = (header: string | undefined) => {
  if (header === undefined) return undefined
  const length = Number(header)
  return Number.isSafeInteger(length) && length >= 0 ? length : undefined
}

/** `/sessions/{id}/files`: a session's workspace, listed, downloaded, uploaded (raw bytes both ways) and deleted. */
export const WorkspaceFilesHttpLive = HttpApiBuilder.group(Api, "files", (handlers) =>
  Effect.gen(function*() {
    const files = yield* WorkspaceFiles
    return handlers
      .handle("listFiles", ({ path, urlParams }) =>
        Effect.flatMap(CurrentApp, (app) => files.list(app, path.id, urlParams.path ?? "", urlParams.recursive === "true")))
      // Raw: the file's bytes stream from disk, with the type of its extension and its ETag.
      .handleRaw("getFile", ({ path }) =>
        Effect.gen(function*() {
          const file = yield* files.download(yield* CurrentApp, path.id, path["*"])
          return HttpServerResponse.raw(file.body, {
            contentType: file.contentType,
            contentLength: file.size,
            headers: { etag: file.etag, "cache-control": "no-cache" }
          })
        }))
      // Raw: the body streams to disk as it arrives, never held whole (see src/http/RawBodies.ts).
      .handleRaw("putFile", ({ path, request }) =>
        Effect.gen(function*() {
          const app = yield* CurrentApp
          const headers = request.headers
          const ifNoneMatch = headers["if-none-match"]
          if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== "*") {
            return yield* new BadRequest({ message: "Invalid request: If-None-Match on a PUT takes only `*` (create, never replace)" })
          }
          // Not closed when the upload stops early: Node reads the rest of the body after the answer,
          // so the client reads the answer rather than a reset connection.
          const body = NodeStream.fromReadable(
            () => NodeHttpServerRequest.toIncomingMessage(request),
            () => new BadRequest({ message: "The request body could not be read to its end" }),
            // A megabyte at a time: fewer, larger writes to the file.
            { closeOnDone: false, chunkSize: 1024 * 1024 }
          )
          const written = yield* files.upload(app, path.id, path["*"], body, {
            ifMatch: headers["if-match"],
            ifNoneMatch,
            contentLength: contentLengthOf(headers["content-length"])
          })
          const { created, ...reply } = written
          return HttpServerResponse.unsafeJson(reply, { status: created ? 201 : 200, headers: { etag: written.etag } })
        }))
      .handle("deleteFile", ({ path, urlParams }) =>
        Effect.flatMap(CurrentApp, (app) => files.remove(app, path.id, path["*"], urlParams.recursive === "true")))
  }))
