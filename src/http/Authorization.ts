import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Layer } from "effect"
import { Authorization } from "../domain/Api.js"
import { Unauthorized } from "../domain/Errors.js"
import { Auth } from "../services/tenancy/Auth.js"

// The platform's bearer security takes whatever follows the header's first 7 characters.
export const bearerHeader = /^Bearer +\S/i

/**
 * The RFC 6750 challenge of a 401: a request without a token gets the bare challenge, one whose
 * token names no app gets `error="invalid_token"`. The admin guard has its own realm.
 */
export const challenge = (tokenSent: boolean, realm = "clawdforge") =>
  HttpApp.appendPreResponseHandler((_request, response) =>
    Effect.succeed(
      response.status === 401
        ? HttpServerResponse.setHeader(
          response,
          "www-authenticate",
          tokenSent ? `Bearer realm="${realm}", error="invalid_token"` : `Bearer realm="${realm}"`
        )
        : response
    )
  )

export const AuthorizationLive = Layer.effect(
  Authorization,
  Effect.map(Auth, (auth) =>
    Authorization.of({
      bearer: (token) =>
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
          const tokenSent = bearerHeader.test(request.headers.authorization ?? "")
          const authenticated = tokenSent
            ? auth.authenticate(token)
            : Effect.fail(new Unauthorized({ message: "Missing or unknown bearer token" }))
          return Effect.tapError(authenticated, () => challenge(tokenSent))
        })
    }))
)
