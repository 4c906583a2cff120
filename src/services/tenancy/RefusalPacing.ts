import { Effect } from "effect"
import { AppConfig } from "../config/AppConfig.js"
import { makeKeyedRate } from "./KeyedRate.js"

/** How late a paced refusal is answered at most. */
const maxPaceMillis = 5_000

/**
 * An app's refusals, paced per token: the 429s of its own limits (`queue_full`,
 * `too_many_streams`, `rate_limited`, …) are answered at once up to `rate` a second (a second's
 * worth at once), and past that each when its turn comes, at most `maxPaceMillis` late. A client
 * that sends a refused request again at once, in a loop, then costs the gateway `rate` refusals a
 * second rather than as many as its event loop can answer, which other apps' requests wait behind
 * (on 2 cores, 850 a second of 100 KB turns refused `queue_full` took the gateway's whole core and
 * made another app's turns 3.5 times slower). Counted on each node; a request that is not refused
 * is never paced. Up to 10,000 tokens are kept (see `makeKeyedRate`).
 */
export class RefusalPacing extends Effect.Service<RefusalPacing>()("clawdforge/RefusalPacing", {
  effect: Effect.gen(function*() {
    const { refusalsPerSecond: rate } = yield* AppConfig
    const refusals = makeKeyedRate({ perSecond: rate, burst: rate, maxKeys: 10_000 })

    /** Waits until a refusal for `key` (a token's digest) may be answered. */
    const pace = (key: string): Effect.Effect<void> =>
      rate === 0 ? Effect.void : Effect.suspend(() => {
        const wait = refusals.take(key, Date.now(), maxPaceMillis)
        return wait === 0 ? Effect.void : Effect.sleep(wait)
      })

    return { pace } as const
  }),
  dependencies: [AppConfig.Default]
}) {}
