import { Effect } from "effect"
import { AppConfig } from "../config/AppConfig.js"
import { makeKeyedRate } from "./KeyedRate.js"

/**
 * Wrong bearer tokens counted per client address: `limit` of them at once, then `limit` a minute;
 * an address past that is throttled until its next one is due. Up to 10,000 addresses are kept
 * (see `makeKeyedRate`).
 */
export class AuthFailures extends Effect.Service<AuthFailures>()("clawdforge/AuthFailures", {
  effect: Effect.gen(function*() {
    const { authFailuresPerMinute: limit } = yield* AppConfig
    const failures = makeKeyedRate({ perSecond: limit / 60, burst: limit, maxKeys: 10_000 })

    // On every guarded request's path: plain synchronous work, untraced.

    /** Seconds until `address` may send a wrong token again; 0 when it is not throttled. */
    const retryAfterSecs = Effect.fnUntraced(function*(address: string) {
      if (limit === 0) return 0
      const wait = failures.waitOf(address, Date.now())
      return wait === 0 ? 0 : Math.max(1, Math.ceil(wait / 1000))
    })

    /** Counts one wrong token from `address` (a throttled address's count stays where it is). */
    const recordFailure = Effect.fnUntraced(function*(address: string) {
      if (limit !== 0) failures.take(address, Date.now())
    })

    return { retryAfterSecs, recordFailure } as const
  }),
  dependencies: [AppConfig.Default]
}) {}
