import type * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import type * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import type * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { Effect, type ParseResult, type Types } from "effect"
import { Api } from "../domain/Api.js"
import { type FilesClient, makeFilesClient } from "./FilesClient.js"

export type { DownloadedFile, FilesClient, FilesError, UploadedFile } from "./FilesClient.js"

type UnionToIntersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I
  : never

/** A request whose headers are all optional may leave `headers` out. */
type OptionalHeaders<Request> = Request extends { readonly headers: infer Headers }
  ? {} extends Headers ? Omit<Request, "headers"> & { readonly headers?: Headers } : Request
  : Request

/** `HttpApiClient.Client.Method`, but `headers` may be left out when none is required (`Idempotency-Key`). */
export type Method<Endpoint, E, GroupError, R> = [Endpoint] extends [
  HttpApiEndpoint.HttpApiEndpoint<
    infer _Name,
    infer _Method,
    infer _Path,
    infer _UrlParams,
    infer _Payload,
    infer _Headers,
    infer _Success,
    infer _Error,
    infer _R,
    infer _RE
  >
] ? <WithResponse extends boolean = false>(
    request: Types.Simplify<
      OptionalHeaders<HttpApiEndpoint.HttpApiEndpoint.ClientRequest<_Path, _UrlParams, _Payload, _Headers, WithResponse>>
    >
  ) => Effect.Effect<
    WithResponse extends true ? [_Success, HttpClientResponse.HttpClientResponse] : _Success,
    _Error | GroupError | E | HttpClientError.HttpClientError | ParseResult.ParseError,
    R
  >
  : never

/**
 * The client of an Api whose groups are all top-level: one method per endpoint, at the root.
 * (`HttpApiClient.Client` in @effect/platform 0.97 reads the methods of one top-level group only;
 * the runtime client has them all.)
 */
export type TopLevelClient<Groups extends HttpApiGroup.HttpApiGroup.Any, E, R> = Types.Simplify<
  UnionToIntersection<
    Groups extends HttpApiGroup.HttpApiGroup<infer _Id, infer Endpoints, infer GroupError, infer _R, true> ? {
        readonly [Endpoint in Endpoints as HttpApiEndpoint.HttpApiEndpoint.Name<Endpoint>]: Method<
          Endpoint,
          E,
          GroupError,
          R
        >
      }
      : never
  >
>

type ApiClient = typeof Api extends HttpApi.HttpApi<infer _Id, infer Groups, infer E, infer _R>
  ? TopLevelClient<Groups, E, never> & {
    /** A session's workspace: list, download, upload and delete its files (raw bytes both ways). */
    readonly files: FilesClient
  }
  : never

/** The methods whose path ends in the rest of the URL (a file's path with its `/`): they go through `files`. */
const filesMethods = (files: FilesClient): Record<string, (request: any) => Effect.Effect<unknown, unknown>> => ({
  getFile: ({ path }) => Effect.map(files.download(path.id, path["*"]), (file) => file.bytes),
  putFile: ({ path, payload, headers = {} }) =>
    Effect.map(
      files.upload(path.id, path["*"], payload, {
        ...(headers["if-match"] === undefined ? {} : { ifMatch: headers["if-match"] }),
        ...(headers["if-none-match"] === undefined ? {} : { ifNoneMatch: headers["if-none-match"] })
      }),
      ({ created: _, ...written }) => written
    ),
  deleteFile: ({ path, urlParams = {} }) => files.remove(path.id, path["*"], { recursive: urlParams.recursive === "true" })
})

/**
 * The typed Effect client, derived from the same `Api` the server serves: every endpoint is a
 * method named as its OpenAPI operationId (`client.runTurn({ path, payload })`), and every
 * documented error is a typed failure (`SessionNotFound`, `SessionClosed`, ...). `streamTurn`
 * reads the whole stream and answers its events (`TurnStreamEvent`). Needs an `HttpClient`, e.g.
 * `FetchHttpClient.layer` or `NodeHttpClient.layerUndici`. `files` has the workspace's helpers
 * (`client.files.upload(id, "src/app.py", bytes)`), which `getFile`, `putFile` and `deleteFile` use too.
 */
export const makeClient = (options: {
  readonly baseUrl: string
  readonly token: string
}): Effect.Effect<ApiClient, never, HttpClient.HttpClient> =>
  HttpApiClient.make(Api, {
    baseUrl: options.baseUrl,
    transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(options.token))
  }).pipe(
    Effect.zip(makeFilesClient(options)),
    // Headers left out are none: the platform's client encodes `headers` whenever the endpoint declares some.
    Effect.map(([client, files]) => ({
      ...Object.fromEntries(
        Object.entries(client).map(([name, method]) => [
          name,
          typeof method === "function" ? (request: any) => (method as any)({ headers: {}, ...request }) : method
        ])
      ),
      ...filesMethods(files),
      files
    }))
  ) as any

export type Client = ApiClient
