import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Data, Effect, Layer, Option, Redacted } from "effect"
import { timingSafeEqual } from "node:crypto"
import { Authorization } from "../domain/Api.js"
import { Unauthorized } from "../domain/Errors.js"
import { AppName } from "../domain/Ids.js"
import { AppConfig } from "../services/config/AppConfig.js"
import { Auth, tokenDigest } from "../services/tenancy/Auth.js"
import { AuthFailures } from "../services/tenancy/AuthFailures.js"

// The platform's bearer security takes whatever follows the header's first 7 characters.
export const bearerHeader = /^Bearer +\S/i

/** The token of an `Authorization: Bearer` header, as the platform's bearer security reads it. */
export const bearerToken = (authorization: string | undefined) => (authorization ?? "").slice("Bearer ".length)

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

/**
 * A client address past its wrong tokens: answered 429 `too_many_auth_failures` with
 * `Retry-After` (by RequestErrorsLive, as no endpoint's error: any guarded route can answer it).
 */
export class AuthThrottled extends Data.TaggedError("AuthThrottled")<{ readonly retryAfterSecs: number }> {}

/**
 * A guard's token check, throttled per client address: a token is sent and wrong, it is counted;
 * once the address is throttled, `check` gives way to `lookup` (the token's digest looked up, no
 * comparison), so a valid token from that address still passes and a wrong one is refused at
 * once. A request without a token is no guess: never counted, never throttled.
 */
export const throttled = <A, E>(
  failures: AuthFailures,
  request: HttpServerRequest.HttpServerRequest,
  tokenSent: boolean,
  check: Effect.Effect<A, E>,
  lookup: Effect.Effect<A, E>
): Effect.Effect<A, E> => {
  if (!tokenSent) return check
  const address = Option.getOrElse(request.remoteAddress, () => "unknown")
  return Effect.flatMap(failures.retryAfterSecs(address), (retryAfterSecs) =>
    retryAfterSecs > 0
      ? Effect.catchAll(lookup, () => Effect.die(new AuthThrottled({ retryAfterSecs })))
      : Effect.tapError(check, () => failures.recordFailure(address)))
}

/** The app guard's check of a bearer token (throttled per address, the 401 with its challenge). */
export const authenticateApp = (auth: Auth, failures: AuthFailures) => (token: Redacted.Redacted<string>) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const tokenSent = bearerHeader.test(request.headers.authorization ?? "")
    const authenticated = tokenSent
      ? throttled(failures, request, true, auth.authenticate(token), auth.lookup(token))
      : Effect.fail(new Unauthorized({ message: "Missing or unknown bearer token" }))
    return Effect.tapError(authenticated, () => challenge(tokenSent))
  })

export const AuthorizationLive = Layer.effect(
  Authorization,
  Effect.map(Effect.zip(Auth, AuthFailures), ([auth, failures]) => Authorization.of({ bearer: authenticateApp(auth, failures) }))
)

/**
 * `/metrics` reads no app's data: with neither token set, the app guard (as before); the name
 * it provides then fills the middleware's slot and nothing reads it.
 */
const metricsScraper = AppName.make("metrics")

/**
 * The guard of `/metrics`: with `CLAWDFORGE_METRICS_TOKEN` or the admin token set, only those
 * (an app token is a 401: every app's names and cost are in the metrics); with neither, any app
 * token, as before.
 */
export const MetricsAuthorizationLive = Layer.effect(
  Authorization,
  Effect.gen(function*() {
    const auth = yield* Auth
    const failures = yield* AuthFailures
    const { metricsToken, adminToken } = yield* AppConfig
    const scrapers = [metricsToken, adminToken].flatMap(Option.toArray).map((token) => tokenDigest(Redacted.value(token)))
    if (scrapers.length === 0) return Authorization.of({ bearer: authenticateApp(auth, failures) })
    const refused = new Unauthorized({ message: "Missing or unknown metrics token (CLAWDFORGE_METRICS_TOKEN or the admin token)" })
    return Authorization.of({
      bearer: (token) =>
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
          const tokenSent = bearerHeader.test(request.headers.authorization ?? "")
          const digest = tokenSent ? tokenDigest(Redacted.value(token)) : undefined
          // Digests of equal length, each compared: the time says nothing of which matched.
          const check = Effect.suspend(() => {
            let match = false
            for (const expected of scrapers) if (digest !== undefined && timingSafeEqual(digest, expected)) match = true
            return match ? Effect.succeed(metricsScraper) : Effect.fail(refused)
          })
          const lookup = Effect.suspend(() =>
            scrapers.some((expected) => digest?.equals(expected)) ? Effect.succeed(metricsScraper) : Effect.fail(refused)
          )
          return Effect.tapError(throttled(failures, request, tokenSent, check, lookup), () => challenge(tokenSent))
        })
    })
  })
)
