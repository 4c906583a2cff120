import {
  Headers,
  HttpApiBuilder,
  HttpApiError,
  type HttpApp,
  HttpIncomingMessage,
  HttpServerError,
  HttpServerRequest
} from "@effect/platform"
import { Cause, Effect, Option } from "effect"
import { BadRequest, NotFound, PayloadTooLarge } from "../domain/Errors.js"

const clip = (text: string) => text.length > 500 ? `${text.slice(0, 500)}…` : text

const describeIssues = (error: HttpApiError.HttpApiDecodeError) =>
  error.issues.length === 0
    ? error.message
    : error.issues.map((issue) => `${issue.path.length === 0 ? "body" : issue.path.join(".")}: ${issue.message}`)
      .join("; ")

const tooLarge = (maxBodyBytes: number) =>
  new PayloadTooLarge({ message: `The request body is larger than ${maxBodyBytes} bytes` })

/** The gateway's own failures (decoding, routing, body limit) as the API's error types. */
const toApiError = (error: unknown, maxBodyBytes: number): Option.Option<unknown> => {
  if (error instanceof HttpApiError.HttpApiDecodeError) {
    return Option.some(new BadRequest({ message: clip(`Invalid request: ${describeIssues(error)}`) }))
  }
  if (!HttpServerError.isServerError(error)) return Option.none()
  switch (error._tag) {
    case "RouteNotFound":
      return Option.some(
        new NotFound({ message: clip(`No route for ${error.request.method} ${error.request.url.split("?")[0]}`) })
      )
    case "RequestError": {
      const cause = error.cause
      if (cause instanceof Error && cause.message === "maxBytes exceeded") return Option.some(tooLarge(maxBodyBytes))
      return Option.some(
        new BadRequest({
          message: cause instanceof SyntaxError ? "The request body is not valid JSON" : "The request body could not be read"
        })
      )
    }
    default:
      return Option.none()
  }
}

/**
 * Api-level middleware. Bodies are JSON whatever the Content-Type says; a body over the
 * limit is refused from its Content-Length before it is read; and the platform's own request
 * errors (some of them defects) become the API's error types, encoded like any other.
 */
export const RequestErrorsLive = (maxBodyBytes: number) =>
  HttpApiBuilder.middleware((app) =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const length = Number(request.headers["content-length"] ?? 0)
      if (length > maxBodyBytes) return yield* tooLarge(maxBodyBytes)
      return yield* (app as HttpApp.Default<unknown>).pipe(
        HttpIncomingMessage.withMaxBodySize(Option.some(maxBodyBytes)),
        Effect.provideService(
          HttpServerRequest.HttpServerRequest,
          request.modify({ headers: Headers.set(request.headers, "content-type", "application/json") })
        ),
        Effect.catchAllCause((cause) =>
          Option.match(toApiError(Cause.squash(cause), maxBodyBytes), {
            onNone: () => Effect.failCause(cause),
            onSome: Effect.fail
          })
        )
      )
    }) as HttpApp.Default
  )
