import {
  Headers,
  HttpApiBuilder,
  HttpApiError,
  type HttpApp,
  HttpIncomingMessage,
  HttpServerError,
  HttpServerRequest
} from "@effect/platform"
import { NodeHttpServerRequest } from "@effect/platform-node"
import { Cause, Effect, Option } from "effect"
import type { IncomingMessage } from "node:http"
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
  // A body nested so deeply that describing why it does not decode overflows the stack.
  if (error instanceof RangeError && error.message.includes("call stack")) {
    return Option.some(new BadRequest({ message: "The request body is nested too deeply" }))
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
 * Reads a body that came without a Content-Length (chunked) up to the limit. Past it, the rest
 * is drained, not destroyed (destroying the socket would drop the 413 with it), up to a bound.
 */
const readStreamed = (source: IncomingMessage, maxBodyBytes: number) =>
  Effect.async<string, PayloadTooLarge>((resume) => {
    const chunks: Array<Buffer> = []
    let bytes = 0
    source.on("data", (chunk: Buffer) => {
      bytes += chunk.length
      if (bytes <= maxBodyBytes) chunks.push(chunk)
      else if (bytes > 16 * maxBodyBytes) source.destroy()
    })
    source.once("end", () =>
      resume(bytes > maxBodyBytes ? Effect.fail(tooLarge(maxBodyBytes)) : Effect.succeed(Buffer.concat(chunks).toString("utf8"))))
    // An error is followed by `close`; listening keeps it from being thrown.
    source.on("error", () => {})
    // Destroyed before its end (past 16x the limit, or the client went away).
    source.once("close", () => {
      if (!source.readableEnded) resume(Effect.fail(tooLarge(maxBodyBytes)))
    })
  })

/**
 * Api-level middleware. Bodies are JSON whatever the Content-Type says; a body over the
 * limit is a 413 (refused from its Content-Length before it is read, or read and drained
 * when chunked); and the platform's own request errors (some of them defects) become the
 * API's error types, encoded like any other.
 */
export const RequestErrorsLive = (maxBodyBytes: number) =>
  HttpApiBuilder.middleware((app) =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const length = Number(request.headers["content-length"] ?? 0)
      if (length > maxBodyBytes) return yield* tooLarge(maxBodyBytes)
      let modified = request.modify({ headers: Headers.set(request.headers, "content-type", "application/json") })
      if (request.headers["content-length"] === undefined && request.headers["transfer-encoding"] !== undefined) {
        // The platform's reader destroys the socket past its limit: read it here, and hand the
        // handler a request whose body (`text`, which `json` reads) is what was read.
        const text = yield* readStreamed(NodeHttpServerRequest.toIncomingMessage(request), maxBodyBytes)
        modified = Object.create(modified, { text: { value: Effect.succeed(text) } })
      }
      return yield* (app as HttpApp.Default<unknown>).pipe(
        HttpIncomingMessage.withMaxBodySize(Option.some(maxBodyBytes)),
        Effect.provideService(HttpServerRequest.HttpServerRequest, modified),
        Effect.catchAllCause((cause) =>
          Option.match(toApiError(Cause.squash(cause), maxBodyBytes), {
            onNone: () => Effect.failCause(cause),
            onSome: Effect.fail
          })
        )
      )
    }) as HttpApp.Default
  )
