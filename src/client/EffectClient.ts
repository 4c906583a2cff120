import { HttpApiClient, HttpClient, HttpClientRequest } from "@effect/platform"
import type { Effect } from "effect"
import { Api } from "../domain/Api.js"

/**
 * The typed Effect client, derived from the same `Api` the server serves: every endpoint is a
 * method (`client.sessions.turn({ path, payload })`) and every documented error is a typed
 * failure (`SessionNotFound`, `SessionClosed`, ...). Needs an `HttpClient`, e.g.
 * `FetchHttpClient.layer` or `NodeHttpClient.layerUndici`.
 */
export const makeClient = (options: { readonly baseUrl: string; readonly token: string }) =>
  HttpApiClient.make(Api, {
    baseUrl: options.baseUrl,
    transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(options.token))
  })

export type Client = Effect.Effect.Success<ReturnType<typeof makeClient>>
