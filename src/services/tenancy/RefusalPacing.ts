import { Effect } from "effect"
import { AppConfig } from "../config/AppConfig.js"

/** How late a paced refusal is answered at most. */
export const maxPaceMillis = 5_000
/** How many tokens are remembered at most: past it the stalest is forgotten. */
const maxKeys = 10_000

/**
 * An app's refusals, paced per token: the 429s of its own limits (`queue_full`,
 * `too_many_streams`, `rate_limited`, …) are answered at once up to `rate` a second (a second's
 * worth at once), and past that each when its turn comes, at most `maxPaceMillis` late. A client
 * that sends a refused request again at once, in a loop, then costs the gateway `rate` refusals a
 * second rather than as many as its event loop can answer, which other apps' requests wait behind
 * (on 2 cores, 850 a second of 100 KB turns refused `queue_full` took the gateway's whole core and
 * made another app's turns 3.5 times slower). Counted on each node; a request that is not refused
 * is never paced.
 *
 * The generic cell rate algorithm: per token only when its next refusal is due at the rate.
 */
export class RefusalPacing extends Effect.Service<RefusalPacing>()("clawdforge/RefusalPacing", {
  effect: Effect.gen(function*() {
    const { refusalsPerSecond: rate } = yield* AppConfig
    const spacing = 1000 / rate
    const burst = 1000 - spacing
    const due = new Map<string, number>()

    /** How long a refusal for `key` at `now` waits (ms); the next one's place is taken. */
    const waitOf = (key: string, now: number) => {
      const at = Math.max(due.get(key) ?? now, now)
      const wait = Math.min(maxPaceMillis, Math.max(0, at - burst - now))
      if (!due.has(key) && due.size >= maxKeys) due.delete(due.keys().next().value!)
      // Past the longest wait, no later place is promised: the next waits the longest too.
      due.set(key, Math.min(at, now + burst + maxPaceMillis) + spacing)
      return wait
    }

    /** Waits until a refusal for `key` (a token's digest) may be answered. */
    const pace = (key: string): Effect.Effect<void> =>
      rate === 0 ? Effect.void : Effect.suspend(() => {
        const wait = waitOf(key, Date.now())
        return wait === 0 ? Effect.void : Effect.sleep(wait)
      })

    return { pace } as const
  }),
  dependencies: [AppConfig.Default]
}) {}
