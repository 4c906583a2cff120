import { HttpApiBuilder, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { createServer, type Server, STATUS_CODES } from "node:http"
import type { Duplex } from "node:stream"
import { Api } from "../domain/Api.js"
import { AppConfig, listeningOn } from "../services/config/AppConfig.js"
import { AdminHttpLive, ConsoleHttpLive } from "./AdminHandlers.js"
import { AuthorizationLive } from "./Authorization.js"
import {
  AgentsHttpLive,
  HealthHttpLive,
  ObservabilityHttpLive,
  RunHttpLive,
  SessionsHttpLive,
  TenancyHttpLive
} from "./Handlers.js"
import { RequestErrorsLive } from "./RequestErrors.js"
import { withRequestLog } from "./RequestLog.js"

/** The API with its handlers; needs the gateway services. */
export const ApiLive = HttpApiBuilder.api(Api).pipe(
  Layer.provide([
    HealthHttpLive,
    RunHttpLive,
    SessionsHttpLive,
    AgentsHttpLive,
    TenancyHttpLive,
    ObservabilityHttpLive,
    AdminHttpLive,
    ConsoleHttpLive
  ]),
  Layer.provide(AuthorizationLive),
  Layer.provide(Layer.unwrapEffect(Effect.map(AppConfig, (config) => RequestErrorsLive(config.maxBodyBytes))))
)

/**
 * Routes: the API, `/openapi.json` and `/docs`, behind the request log (whose lines carry the
 * request id); needs an HttpServer.
 */
export const HttpAppLive = HttpApiBuilder.serve(withRequestLog).pipe(
  Layer.provide(ApiLive)
)

/**
 * Requests Node's HTTP parser refuses before the gateway sees them (raw NUL or non-ASCII in
 * the path, over-long headers, broken framing) get the gateway's error shape, not a bare 400.
 */
export const jsonClientErrors = (server: Server): Server =>
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (error.code === "ECONNRESET" || !socket.writable) return void socket.destroy()
    const status = error.code === "HPE_HEADER_OVERFLOW" ? 431 : 400
    const body = JSON.stringify({
      ok: false,
      error: status === 431 ? "headers_too_large" : "bad_request",
      message: status === 431 ? "The request line or headers are too large" : "The request is not valid HTTP"
    })
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
    )
  })

/** The Node HTTP server on `CLAWDFORGE_HOST:CLAWDFORGE_PORT`. */
export const NodeServerLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) =>
    listeningOn(
      NodeHttpServer.layer(() => jsonClientErrors(createServer()), { host: config.host, port: config.port }),
      "CLAWDFORGE_PORT",
      config.host,
      config.port
    ))
)

export const HttpLive = HttpAppLive.pipe(HttpServer.withLogAddress, Layer.provide(NodeServerLive))
