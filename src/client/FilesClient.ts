import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { Effect, type ParseResult, Schema } from "effect"
import { BadRequest, SessionClosed, SessionNotFound, Unauthorized } from "../domain/Errors.js"
import {
  BadPath,
  DiskQuota,
  FileCreated,
  FileDeleted,
  FileListing,
  FileNotFound,
  FileTooLarge,
  IsADirectory,
  PreconditionFailed,
  WorkspaceQuotaExceeded
} from "../domain/WorkspaceFiles.js"

/** What a files request may fail with, as the gateway answers it (decoded by `_tag`). */
export const FilesError = Schema.Union(
  BadRequest, Unauthorized, SessionNotFound, SessionClosed, BadPath, FileNotFound, IsADirectory, PreconditionFailed,
  FileTooLarge, WorkspaceQuotaExceeded, DiskQuota
)
export type FilesError = typeof FilesError.Type

type Failure = FilesError | HttpClientError.HttpClientError | ParseResult.ParseError

/** A downloaded file: its bytes, `ETag` and `Content-Type`. */
export interface DownloadedFile {
  readonly bytes: Uint8Array
  readonly etag: string
  readonly contentType: string
}

/** An uploaded file: `created` when it is new (201), else it replaced one (200). */
export type UploadedFile = typeof FileCreated.Type & { readonly created: boolean }

/**
 * A session's workspace from an Effect program: `list`, `download`, `upload` (raw bytes, streamed by
 * the gateway to disk) and `remove`. A file's path keeps its `/` (each segment is percent-encoded).
 */
export interface FilesClient {
  readonly list: (
    sessionId: string,
    options?: { readonly path?: string; readonly recursive?: boolean }
  ) => Effect.Effect<typeof FileListing.Type, Failure>
  readonly download: (sessionId: string, path: string) => Effect.Effect<DownloadedFile, Failure>
  readonly upload: (
    sessionId: string,
    path: string,
    body: Uint8Array | string,
    options?: { readonly ifMatch?: string; readonly ifNoneMatch?: "*" }
  ) => Effect.Effect<UploadedFile, Failure>
  readonly remove: (
    sessionId: string,
    path: string,
    options?: { readonly recursive?: boolean }
  ) => Effect.Effect<typeof FileDeleted.Type, Failure>
}

/** `/sessions/{id}/files/{path}` with each segment encoded and the `/` between them kept. */
export const filePath = (sessionId: string, path: string) =>
  `/sessions/${encodeURIComponent(sessionId)}/files/${path.split("/").map(encodeURIComponent).join("/")}`

/** The files helpers over an `HttpClient` (the Effect client's `files`). */
export const makeFilesClient = (options: { readonly baseUrl: string; readonly token: string }) =>
  Effect.map(HttpClient.HttpClient, (http): FilesClient => {
    const client = http.pipe(
      HttpClient.mapRequest((request) =>
        request.pipe(HttpClientRequest.prependUrl(options.baseUrl), HttpClientRequest.bearerToken(options.token))
      )
    )
    /** A 2xx response, or the gateway's error decoded into its class. */
    const answered = (response: HttpClientResponse.HttpClientResponse) =>
      response.status >= 200 && response.status < 300
        ? Effect.succeed(response)
        : Effect.flatMap(HttpClientResponse.schemaBodyJson(FilesError)(response), Effect.fail)
    const send = (request: HttpClientRequest.HttpClientRequest) => Effect.flatMap(client.execute(request), answered)
    return {
      list: (sessionId, listOptions = {}) =>
        send(
          HttpClientRequest.get(`/sessions/${encodeURIComponent(sessionId)}/files`, {
            urlParams: {
              ...(listOptions.path === undefined ? {} : { path: listOptions.path }),
              ...(listOptions.recursive === true ? { recursive: "true" } : {})
            }
          })
        ).pipe(Effect.flatMap(HttpClientResponse.schemaBodyJson(FileListing)), Effect.scoped),
      download: (sessionId, path) =>
        send(HttpClientRequest.get(filePath(sessionId, path))).pipe(
          Effect.flatMap((response) =>
            Effect.map(response.arrayBuffer, (buffer) => ({
              bytes: new Uint8Array(buffer),
              etag: response.headers["etag"] ?? "",
              contentType: response.headers["content-type"] ?? "application/octet-stream"
            }))
          ),
          Effect.scoped
        ),
      upload: (sessionId, path, body, uploadOptions = {}) =>
        send(
          HttpClientRequest.put(filePath(sessionId, path)).pipe(
            HttpClientRequest.bodyUint8Array(
              typeof body === "string" ? new TextEncoder().encode(body) : body,
              "application/octet-stream"
            ),
            HttpClientRequest.setHeaders({
              ...(uploadOptions.ifMatch === undefined ? {} : { "if-match": uploadOptions.ifMatch }),
              ...(uploadOptions.ifNoneMatch === undefined ? {} : { "if-none-match": uploadOptions.ifNoneMatch })
            })
          )
        ).pipe(
          Effect.flatMap((response) =>
            Effect.map(HttpClientResponse.schemaBodyJson(FileCreated)(response), (written) => ({
              ...written,
              created: response.status === 201
            }))
          ),
          Effect.scoped
        ),
      remove: (sessionId, path, removeOptions = {}) =>
        send(
          HttpClientRequest.del(filePath(sessionId, path), {
            urlParams: removeOptions.recursive === true ? { recursive: "true" } : {}
          })
        ).pipe(Effect.flatMap(HttpClientResponse.schemaBodyJson(FileDeleted)), Effect.scoped)
    }
  })
