import { HttpApp, HttpMiddleware, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import { randomUUID } from "node:crypto"

// A caller's own id is kept when it is a plain token; anything else is replaced.
const wellFormed = /^[A-Za-z0-9._:-]{1,128}$/

/**
 * Gives every request an id (the caller's `x-request-id`, or a new one): every log line of
 * the request carries it as `request_id`, and the response echoes it.
 */
export const withRequestId = HttpMiddleware.make((app) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const given = request.headers["x-request-id"]
    const id = given !== undefined && wellFormed.test(given) ? given : randomUUID()
    // Server middleware runs around a request already answered: add the header just before sending.
    yield* HttpApp.appendPreResponseHandler((_request, response) =>
      Effect.succeed(HttpServerResponse.setHeader(response, "x-request-id", id))
    )
    return yield* Effect.annotateLogs(app, "request_id", id)
  })
)
