import type { HttpServerRequest } from "@effect/platform"

// Routes whose body is bytes the handler streams where they go (an archive, an uploaded file), not
// JSON: the JSON body rules (CLAWDFORGE_MAX_BODY_BYTES, reading the body ahead of the handler) do not
// apply to them, each bounds what it takes itself; and when one answers before its body has
// arrived (a refusal, a quota), the rest is read and thrown away before the connection closes.
const rawBodyRoutes: ReadonlyArray<RegExp> = [
  /^\/sessions\/[^/?]+\/archive(?:\?|$)/,
  /^\/sessions\/[^/?]+\/files\/[^?]/
]

/** Whether the request's body is raw bytes for its handler to stream (see above). */
export const takesRawBody = (request: HttpServerRequest.HttpServerRequest) =>
  request.method === "PUT" && rawBodyRoutes.some((route) => route.test(request.url))
