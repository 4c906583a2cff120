import { HttpApiBuilder, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Duration, Effect, Layer } from "effect"
import { createServer, type Server, STATUS_CODES } from "node:http"
import type { Duplex } from "node:stream"
import { Api } from "../domain/Api.js"
import { AppConfig, listeningOn } from "../services/config/AppConfig.js"
import { AdminHttpLive, ConsoleHttpLive } from "./AdminHandlers.js"
import { AuthFailures } from "../services/tenancy/AuthFailures.js"
import { AuthorizationLive, MetricsAuthorizationLive } from "./Authorization.js"
import {
  AgentsHttpLive,
  HealthHttpLive,
  ObservabilityHttpLive,
  RunHttpLive,
  SessionsHttpLive,
  TenancyHttpLive
} from "./Handlers.js"
import { WorkspaceArchive } from "../services/workspaces/WorkspaceArchive.js"
import { WorkspaceArchiveHttpLive } from "./WorkspaceArchiveHttpLive.js"
import { WorkspaceFilesHttpLive } from "./WorkspaceFilesHttpLive.js"
import { PacedRefusalsLive } from "./PacedRefusals.js"
import { RequestErrorsLive } from "./RequestErrors.js"
import { withRequestLog } from "./RequestLog.js"
import { TurnRoutesLive } from "./TurnRoutes.js"
import { WorkspaceAdminHttpLive, WorkspaceChangesHttpLive } from "./WorkspaceChangesHttpLive.js"

/** The API with its handlers; needs the gateway services. */
export const ApiLive = HttpApiBuilder.api(Api).pipe(
  Layer.provide([
    HealthHttpLive,
    RunHttpLive,
    SessionsHttpLive,
    // The gateway's one WorkspaceQuota (the services'), so archives and uploads count against the same figures.
    WorkspaceArchiveHttpLive.pipe(Layer.provide(WorkspaceArchive.Default)),
    WorkspaceFilesHttpLive,
    WorkspaceChangesHttpLive,
    WorkspaceAdminHttpLive,
    AgentsHttpLive,
    TenancyHttpLive,
    // `/metrics` has a guard of its own (a middleware's Live layer is provided to the group using it).
    ObservabilityHttpLive.pipe(Layer.provide(MetricsAuthorizationLive)),
    AdminHttpLive,
    ConsoleHttpLive
  ]),
  Layer.provide(AuthorizationLive),
  // One count of wrong tokens per address for every guard: app, admin and metrics.
  Layer.provide(AuthFailures.DefaultWithoutDependencies),
  Layer.provide(Layer.unwrapEffect(Effect.map(AppConfig, (config) => RequestErrorsLive(config.maxBodyBytes)))),
  // Inside RequestErrors, which passes the endpoints' typed errors on: it sees which are refusals.
  Layer.provide(PacedRefusalsLive),
  // Built before RequestErrors (a later provide is built first), so its API-level middleware is the inner one.
  Layer.provide(TurnRoutesLive)
)

/**
 * Routes: the API, `/openapi.json` and `/docs`, behind the request log (whose lines carry the
 * request id); needs an HttpServer.
 */
export const HttpAppLive = HttpApiBuilder.serve(withRequestLog).pipe(
  Layer.provide(ApiLive)
)

/** The JSON error a raw socket answer carries, as the API's own errors do. */
const rawAnswer = (status: number, error: string, message: string, tag?: string) => {
  const body = JSON.stringify(tag === undefined ? { ok: false, error, message } : { _tag: tag, ok: false, error, message })
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
}

/**
 * Requests Node's HTTP parser refuses before the gateway sees them (raw NUL or non-ASCII in
 * the path, over-long headers, broken framing) get the gateway's error shape, not a bare 400;
 * one that did not arrive within the body timeout is a 408.
 */
export const jsonClientErrors = (server: Server, bodyTimeoutSecs?: number): Server =>
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (error.code === "ECONNRESET" || !socket.writable) return void socket.destroy()
    // An answer already begun on this connection cannot be followed by another.
    const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage
    if (inFlight?.headersSent === true) return void socket.destroy()
    if (error.code === "ERR_HTTP_REQUEST_TIMEOUT") {
      return void socket.end(rawAnswer(
        408,
        "request_timeout",
        `The request did not arrive within ${bodyTimeoutSecs ?? "the"} s (CLAWDFORGE_BODY_TIMEOUT_SECS)`,
        // As the OpenAPI document's RequestTimeout, so that typed clients decode it.
        "RequestTimeout"
      ))
    }
    socket.end(
      error.code === "HPE_HEADER_OVERFLOW"
        ? rawAnswer(431, "headers_too_large", "The request line or headers are too large")
        : rawAnswer(400, "bad_request", "The request is not valid HTTP")
    )
  })

/**
 * Node's own request timeout bounds how long a request's head and body may take to arrive (a
 * body trickled a byte at a time would otherwise hold its connection for Node's 300 s); it is
 * checked every `connectionsCheckingInterval`, so that runs at a fraction of the timeout.
 */
const serverWithBodyTimeout = (bodyTimeout: Duration.Duration) => {
  const millis = Duration.toMillis(bodyTimeout)
  return jsonClientErrors(
    createServer({
      requestTimeout: millis,
      headersTimeout: Math.min(60_000, millis),
      connectionsCheckingInterval: Math.max(100, Math.min(5_000, Math.floor(millis / 4)))
    }),
    Math.round(millis / 1000)
  )
}

/** The Node HTTP server on `CLAWDFORGE_HOST:CLAWDFORGE_PORT`. */
export const NodeServerLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) =>
    listeningOn(
      NodeHttpServer.layer(() => serverWithBodyTimeout(config.bodyTimeout), { host: config.host, port: config.port }),
      "CLAWDFORGE_PORT",
      config.host,
      config.port
    ))
)

export const HttpLive = HttpAppLive.pipe(HttpServer.withLogAddress, Layer.provide(NodeServerLive))
