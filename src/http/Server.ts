import { HttpApiBuilder, HttpApiScalar, HttpMiddleware, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, flow, Layer } from "effect"
import { createServer } from "node:http"
import { Api } from "../domain/Api.js"
import { AppConfig } from "../services/AppConfig.js"
import { AuthorizationLive } from "./Authorization.js"
import { HealthLive, ObservabilityLive, RunLive, SessionsLive } from "./Handlers.js"
import { RequestErrorsLive } from "./RequestErrors.js"
import { withRequestId } from "./RequestId.js"

/** The API with its handlers; needs the gateway services. */
export const ApiLive = HttpApiBuilder.api(Api).pipe(
  Layer.provide([HealthLive, RunLive, SessionsLive, ObservabilityLive]),
  Layer.provide(AuthorizationLive),
  Layer.provide(Layer.unwrapEffect(Effect.map(AppConfig, (config) => RequestErrorsLive(config.maxBodyBytes))))
)

/**
 * Routes: the API, `/openapi.json` and `/docs`, behind the request logger (whose lines carry
 * the request id); needs an HttpServer.
 */
export const HttpAppLive = HttpApiBuilder.serve(flow(HttpMiddleware.logger, withRequestId)).pipe(
  Layer.provide(HttpApiScalar.layer({ path: "/docs" })),
  Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" })),
  Layer.provide(ApiLive)
)

/** The Node HTTP server on `CLAWDFORGE_HOST:CLAWDFORGE_PORT`. */
export const NodeServerLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) => NodeHttpServer.layer(createServer, { host: config.host, port: config.port }))
)

export const HttpLive = HttpAppLive.pipe(HttpServer.withLogAddress, Layer.provide(NodeServerLive))
