import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Predicate } from "effect"
import type { AppName } from "../domain/Ids.js"
import type { AppLimits } from "../services/tenancy/AppLimits.js"

/** Seconds until a refused request may succeed: the rate's window, or the budget's next day. */
const retryAfterOf = (error: unknown, nowSeconds: number): number | undefined => {
  if (Predicate.isTagged(error, "RateLimited")) return (error as unknown as { retry_after_secs: number }).retry_after_secs
  if (Predicate.isTagged(error, "BudgetExhausted")) {
    return Math.max(1, (error as unknown as { resets_at: number }).resets_at - nowSeconds)
  }
  return undefined
}

/**
 * A turn's reply carries the app's rate as it goes out (`RateLimit-Limit`, `-Remaining`,
 * `-Reset`, when the app has a `turns_per_minute`); a 429 `rate_limited` or `budget_exhausted`
 * carries `Retry-After`.
 */
export const rateLimitHeaders = <A, E, R>(
  limits: Pick<AppLimits, "rateOf">,
  app: AppName,
  self: Effect.Effect<A, E, R>
) =>
  Effect.gen(function*() {
    let retryAfter: number | undefined
    yield* HttpApp.appendPreResponseHandler((_request, response) =>
      Effect.map(limits.rateOf(app), (rate) => {
        const headers: Record<string, string> = {}
        if (rate !== undefined) {
          headers["ratelimit-limit"] = String(rate.limit)
          headers["ratelimit-remaining"] = String(rate.remaining)
          headers["ratelimit-reset"] = String(rate.resetSeconds)
        }
        if (retryAfter !== undefined) headers["retry-after"] = String(retryAfter)
        return Object.keys(headers).length === 0 ? response : HttpServerResponse.setHeaders(response, headers)
      })
    )
    return yield* self.pipe(
      Effect.tapError((error) => Effect.sync(() => retryAfter = retryAfterOf(error, Math.floor(Date.now() / 1000))))
    )
  })
