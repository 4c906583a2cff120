import {
  Headers,
  HttpApiBuilder,
  HttpApiError,
  type HttpApp,
  HttpIncomingMessage,
  HttpServerError,
  HttpServerRequest,
  HttpServerResponse
} from "@effect/platform"
import { NodeHttpServerRequest } from "@effect/platform-node"
import { Cause, Effect, identity, Option, Schema } from "effect"
import type { IncomingMessage } from "node:http"
import { BadRequest, NotFound, PayloadTooLarge, TooManyAuthFailures } from "../domain/Errors.js"
import { AuthThrottled } from "./Authorization.js"
import { takesRawBody } from "./RawBodies.js"

const clip = (text: string) => text.length > 500 ? `${text.slice(0, 500)}…` : text

/** An issue as people read it; a field the schema does not have is named as such (`unknown field "modle"`). */
const describeIssue = (issue: HttpApiError.HttpApiDecodeError["issues"][number]) => {
  if (issue._tag === "Unexpected" && issue.path.length > 0) {
    const field = String(issue.path[issue.path.length - 1])
    const within = issue.path.slice(0, -1).join(".")
    return `unknown field ${JSON.stringify(field)}${within.length === 0 ? "" : ` in ${within}`}`
  }
  return `${issue.path.length === 0 ? "body" : issue.path.join(".")}: ${issue.message}`
}

const describeIssues = (error: HttpApiError.HttpApiDecodeError) =>
  error.issues.length === 0 ? error.message : error.issues.map(describeIssue).join("; ")

/** The answer to a client address throttled for its wrong tokens. */
const tooManyAuthFailures = (retryAfterSecs: number) =>
  HttpServerResponse.unsafeJson(
    Schema.encodeSync(TooManyAuthFailures)(
      new TooManyAuthFailures({
        message: `Too many wrong tokens from this address: try again in ${retryAfterSecs} s`,
        retry_after_secs: retryAfterSecs
      })
    ),
    { status: 429, headers: { "retry-after": String(retryAfterSecs) } }
  )

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
 * How much of a refused body is still read (and thrown away) after the 413, and for how long:
 * enough for an ordinary client to finish writing the upload it began, so the connection ends
 * cleanly and the client reads the 413, without letting a client hold the connection open.
 */
const discardBytes = 64 * 1024 * 1024
const discardMillis = 10_000

/**
 * After a 413 sent while the body is still arriving: the answer says `Connection: close`, the
 * rest of the body is read and thrown away, and the connection closes once the body has ended
 * (or past `discardBytes` or `discardMillis`). Node's own way of closing after such an answer,
 * `socket.destroySoon()`, would close the socket with the client's bytes still unread, and the
 * reset that sends can reach the client before it reads the 413 (ECONNRESET, EPIPE, no answer).
 */
const discardRest = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.sync(() => {
    const source = NodeHttpServerRequest.toIncomingMessage(request)
    const socket = source.socket
    const response = NodeHttpServerRequest.toServerResponse(request)
    if (source.readableEnded || socket === null || socket.destroyed || response.headersSent) return
    response.setHeader("connection", "close")
    let bytes = 0
    let answered = false
    let timer: ReturnType<typeof setTimeout> | undefined
    const close = () => {
      clearTimeout(timer)
      // Node's own: end, then destroy once the answer has been written out.
      delete (socket as { destroySoon?: unknown }).destroySoon
      socket.destroySoon()
    }
    source.on("data", (chunk: Buffer) => {
      bytes += chunk.length
      if (answered && bytes > discardBytes) close()
    })
    source.once("end", () => {
      if (answered) close()
    })
    source.resume()
    // Node calls this once the answer is written, as the request's last on this connection.
    socket.destroySoon = () => {
      answered = true
      // The answer and a FIN go out; the client's bytes are still read.
      socket.end()
      if (source.readableEnded || bytes > discardBytes) return close()
      timer = setTimeout(() => socket.destroy(), discardMillis)
      socket.once("close", () => clearTimeout(timer))
    }
  })

/**
 * Reads a body that came without a Content-Length (chunked) up to the limit, never holding
 * more than the limit. Past it, fails at once: the 413 goes out while the rest still arrives
 * (see `discardRest`).
 */
export const readStreamed = (source: IncomingMessage, maxBodyBytes: number) =>
  Effect.async<string, PayloadTooLarge | BadRequest>((resume) => {
    let chunks: Array<Buffer> = []
    let bytes = 0
    const onData = (chunk: Buffer) => {
      bytes += chunk.length
      if (bytes <= maxBodyBytes) return void chunks.push(chunk)
      chunks = []
      source.off("data", onData)
      resume(Effect.fail(tooLarge(maxBodyBytes)))
    }
    source.on("data", onData)
    source.once("end", () => {
      if (bytes <= maxBodyBytes) resume(Effect.succeed(Buffer.concat(chunks).toString("utf8")))
    })
    // An error is followed by `close`; listening keeps it from being thrown.
    source.on("error", () => {})
    // Closed before its end: the client went away.
    source.once("close", () => {
      if (!source.readableEnded && bytes <= maxBodyBytes) {
        resume(Effect.fail(new BadRequest({ message: "The request body could not be read" })))
      }
    })
  })

/**
 * Api-level middleware. Bodies are JSON whatever the Content-Type says; a body over the
 * limit is a 413 (refused from its Content-Length before it is read, or as soon as a chunked
 * one passes the limit), answered with `Connection: close` while the rest of the body is
 * thrown away; and the platform's own request errors (some of them defects) become the API's
 * error types, encoded like any other.
 */
export const RequestErrorsLive = (maxBodyBytes: number) =>
  HttpApiBuilder.middleware((app) =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      // An archive or an upload streams its bytes in its handler, under limits of its own.
      const raw = takesRawBody(request)
      const length = Number(request.headers["content-length"] ?? 0)
      if (!raw && length > maxBodyBytes) return yield* tooLarge(maxBodyBytes)
      // Most callers send JSON as JSON: the request is copied only when it says otherwise.
      let modified = raw || request.headers["content-type"] === "application/json"
        ? request
        : request.modify({ headers: Headers.set(request.headers, "content-type", "application/json") })
      if (!raw && request.headers["content-length"] === undefined && request.headers["transfer-encoding"] !== undefined) {
        // The platform's reader destroys the socket past its limit: read it here, and hand the
        // handler a request whose body (`text`, which `json` reads) is what was read.
        const text = yield* readStreamed(NodeHttpServerRequest.toIncomingMessage(request), maxBodyBytes)
        modified = Object.create(modified, { text: { value: Effect.succeed(text) } })
      }
      return yield* (app as HttpApp.Default<unknown>).pipe(
        HttpIncomingMessage.withMaxBodySize(raw ? Option.none() : Option.some(maxBodyBytes)),
        modified === request ? identity : Effect.provideService(HttpServerRequest.HttpServerRequest, modified),
        Effect.catchAllCause((cause) => {
          const squashed = Cause.squash(cause)
          if (squashed instanceof AuthThrottled) return Effect.succeed(tooManyAuthFailures(squashed.retryAfterSecs))
          return Option.match(toApiError(squashed, maxBodyBytes), {
            onNone: () => Effect.failCause(cause),
            onSome: Effect.fail
          })
        })
      )
    }).pipe(
      // A refusal sent while the body still arrives: the rest is read and thrown away, then the connection closes.
      Effect.tapError((error) =>
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
          error instanceof PayloadTooLarge || takesRawBody(request) ? discardRest(request) : Effect.void)
      )
    ) as HttpApp.Default
  )
