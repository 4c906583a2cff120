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
  ? TopLevelClient<Groups, E, never>
  : never

/**
 * The typed Effect client, derived from the same `Api` the server serves: every endpoint is a
 * method named as its OpenAPI operationId (`client.runTurn({ path, payload })`), and every
 * documented error is a typed failure (`SessionNotFound`, `SessionClosed`, ...). `streamTurn`
 * reads the whole stream and answers its events (`TurnStreamEvent`). Needs an `HttpClient`, e.g.
 * `FetchHttpClient.layer` or `NodeHttpClient.layerUndici`.
 */
export const makeClient = (options: {
  readonly baseUrl: string
  readonly token: string
}): Effect.Effect<ApiClient, never, HttpClient.HttpClient> =>
  HttpApiClient.make(Api, {
    baseUrl: options.baseUrl,
    transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(options.token))
  }).pipe(
    // Headers left out are none: the platform's client encodes `headers` whenever the endpoint declares some.
    Effect.map((client) =>
      Object.fromEntries(
        Object.entries(client).map(([name, method]) => [
          name,
          typeof method === "function" ? (request: any) => (method as any)({ headers: {}, ...request }) : method
        ])
      )
    )
  ) as any

export type Client = ApiClient
