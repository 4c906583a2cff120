import { HttpServerRequest } from "@effect/platform"
import { Effect, Layer } from "effect"
import { Authorization } from "../domain/Api.js"
import { Unauthorized } from "../domain/Errors.js"
import { Auth } from "../services/tenancy/Auth.js"

// The platform's bearer security takes whatever follows the header's first 7 characters.
const bearerHeader = /^Bearer +\S/i

export const AuthorizationLive = Layer.effect(
  Authorization,
  Effect.map(Auth, (auth) =>
    Authorization.of({
      bearer: (token) =>
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
          bearerHeader.test(request.headers.authorization ?? "")
            ? auth.authenticate(token)
            : Effect.fail(new Unauthorized({ message: "Missing or unknown bearer token" })))
    }))
)
