import createClient, { type Client } from "openapi-fetch"
import type { paths } from "./openapi.js"

/**
 * A plain `fetch` client typed from the generated OpenAPI types (src/client/openapi.ts), for
 * callers that do not use Effect. Every call resolves to `{ data, error, response }`: `error` is
 * the `{ok: false, error, message}` body of a non-2xx reply, typed per status.
 */
export const createFetchClient = (options: { readonly baseUrl: string; readonly token: string }): Client<paths> =>
  createClient<paths>({
    baseUrl: options.baseUrl,
    headers: { Authorization: `Bearer ${options.token}` }
  })

export type FetchClient = Client<paths>
export type { components, operations, paths } from "./openapi.js"
