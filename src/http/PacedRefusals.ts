import { HttpApiBuilder, type HttpApp, HttpApiSchema, HttpServerRequest } from "@effect/platform"
import { Effect, Layer, Schema } from "effect"
import { tokenDigest } from "../services/tenancy/Auth.js"
import { RefusalPacing } from "../services/tenancy/RefusalPacing.js"
import { bearerToken } from "./Authorization.js"

/**
 * Whether the API answers `error` 429: one of an app's own limits, as its schema says (a wrong
 * token's 429 is answered before this, per address, by the guards).
 */
const isRefusal = (error: unknown) => {
  const schema = typeof error === "object" && error !== null ? error.constructor : undefined
  return Schema.isSchema(schema) && HttpApiSchema.getStatusError(schema) === 429
}

/**
 * Api-level middleware: a request its app's limits refuse is answered when `RefusalPacing` lets
 * its token's refusals go, so a client that retries them in a loop slows down, not other apps.
 * Only refused requests are looked at (their token digested); others pass as they are.
 */
export const PacedRefusalsLive = Layer.unwrapEffect(
  Effect.map(RefusalPacing, (pacing) =>
    HttpApiBuilder.middleware((app: HttpApp.Default) =>
      Effect.tapError(app, (error) =>
        isRefusal(error)
          ? Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
            pacing.pace(tokenDigest(bearerToken(request.headers.authorization)).toString("hex")))
          : Effect.void)
    ))
).pipe(Layer.provide(RefusalPacing.DefaultWithoutDependencies))
