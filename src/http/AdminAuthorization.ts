import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Layer, Option, Redacted } from "effect"
import { timingSafeEqual } from "node:crypto"
import { AdminAuthorization } from "../domain/Admin.js"
import { NotFound, Unauthorized } from "../domain/Errors.js"
import { AppConfig } from "../services/config/AppConfig.js"
import { tokenDigest } from "../services/ledger/AppTokens.js"
import { AuthFailures } from "../services/tenancy/AuthFailures.js"
import { bearerHeader, challenge, throttled } from "./Authorization.js"

/** What an admin route answers while CLAWDFORGE_ADMIN_TOKEN is not set. */
export const adminOffMessage = "No such route: the admin API is off: set CLAWDFORGE_ADMIN_TOKEN"

/** What the admin API answers is every app's, and once a new token: no cache keeps it. */
const noStore = HttpApp.appendPreResponseHandler((_request, response) =>
  Effect.succeed(HttpServerResponse.setHeader(response, "cache-control", "no-store"))
)

/**
 * The operators' guard. The token is compared as SHA-256 digests with `timingSafeEqual` (equal
 * lengths whatever was sent), so the time taken says nothing of how much of it was right. An app
 * token is just a wrong token here: 401.
 */
export const AdminAuthorizationLive = Layer.effect(
  AdminAuthorization,
  Effect.map(Effect.zip(AppConfig, AuthFailures), ([{ adminToken }, failures]) => {
    const expected = Option.map(adminToken, (token) => tokenDigest(Redacted.value(token)))
    return AdminAuthorization.of({
      adminBearer: (token) =>
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request): Effect.Effect<void, Unauthorized | NotFound> => {
          if (Option.isNone(expected)) return Effect.fail(new NotFound({ message: adminOffMessage }))
          const tokenSent = bearerHeader.test(request.headers.authorization ?? "")
          const digest = tokenSent ? tokenDigest(Redacted.value(token)) : undefined
          const refused = Effect.zipRight(
            // Its own realm: a client told 401 knows it was the operators' token that was wanted.
            challenge(tokenSent, "clawdforge-admin"),
            Effect.fail(new Unauthorized({ message: "Missing or unknown admin token" }))
          )
          return throttled(
            failures,
            request,
            tokenSent,
            Effect.suspend(() => digest !== undefined && timingSafeEqual(digest, expected.value) ? noStore : refused),
            Effect.suspend(() => digest?.equals(expected.value) ? noStore : refused)
          )
        })
    })
  })
)
