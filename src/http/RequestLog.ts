import { HttpApp, HttpMiddleware, HttpServerError, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Context, Effect, Exit, FiberRef, LogLevel } from "effect"
import { randomUUID } from "node:crypto"

// A caller's own id is kept when it is a plain token; anything else is replaced.
const wellFormed = /^[A-Za-z0-9._:-]{1,128}$/

/**
 * The URL as logged: a query keeps its parameters' names, never their values (a token put in a
 * query by mistake must not reach the logs): `/admin/apps?token=&app=`.
 */
export const loggedUrl = (url: string): string => {
  const query = url.indexOf("?")
  if (query < 0) return url
  const names = url.slice(query + 1).split("&").map((pair) => {
    const eq = pair.indexOf("=")
    return eq < 0 ? pair : pair.slice(0, eq + 1)
  })
  return `${url.slice(0, query)}?${names.join("&")}`
}

/**
 * Gives every request an id (the caller's `x-request-id`, or a new one), echoed in the
 * response, and logs each request once it is answered, at info, with its method, path (query values left
 * out), status and duration; every log line of the request carries the id as `request_id`. One middleware
 * instead of the platform's logger plus an id middleware: half the fiber-local work per request,
 * and none of the logging's when the level is above info.
 */
export const withRequestLog = HttpMiddleware.make((app) =>
  Effect.withFiberRuntime((fiber): typeof app => {
    const request = Context.unsafeGet(fiber.currentContext, HttpServerRequest.HttpServerRequest)
    const given = request.headers["x-request-id"]
    const id = given !== undefined && wellFormed.test(given) ? given : randomUUID()
    const logging = LogLevel.greaterThanEqual(LogLevel.Info, fiber.getFiberRef(FiberRef.currentMinimumLogLevel))
    const startedAt = logging ? performance.now() : 0
    // Server middleware runs around a request already answered: add the header just before sending.
    const answered = HttpApp.appendPreResponseHandler((_request, response) =>
      Effect.succeed(HttpServerResponse.setHeader(response, "x-request-id", id))
    ).pipe(Effect.zipRight(app))
    if (!logging) return Effect.annotateLogs(answered, "request_id", id)
    return answered.pipe(
      Effect.onExit((exit) =>
        Effect.logInfo("Sent HTTP response").pipe(Effect.annotateLogs({
          "http.method": request.method,
          "http.url": loggedUrl(request.url),
          "http.status": Exit.isSuccess(exit)
            ? exit.value.status
            : HttpServerError.causeResponseStripped(exit.cause)[0].status,
          duration_ms: Math.round((performance.now() - startedAt) * 1000) / 1000
        }))
      ),
      Effect.annotateLogs("request_id", id)
    )
  })
)
