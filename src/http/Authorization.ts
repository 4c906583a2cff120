import { Effect, Layer } from "effect"
import { Authorization } from "../domain/Api.js"
import { Auth } from "../services/Auth.js"

export const AuthorizationLive = Layer.effect(
  Authorization,
  Effect.map(Auth, (auth) => Authorization.of({ bearer: auth.authenticate }))
)
