import { Effect } from "effect"
import { AppConfig } from "../config/AppConfig.js"

/** How many client addresses are remembered at most: past it the stalest is forgotten. */
const maxAddresses = 10_000

interface Bucket {
  /** Wrong tokens the address may still send now (refilled continuously). */
  tokens: number
  /** When `tokens` was last brought up to date (ms). */
  at: number
}

/**
 * Wrong bearer tokens counted per client address, as a token bucket each: `limit` of them at
 * once, refilled at `limit` a minute; an address whose bucket is empty is throttled. A full
 * bucket is no entry at all, and the map keeps at most `maxAddresses`, so memory stays bounded
 * whatever addresses a flood comes from.
 */
export class AuthFailures extends Effect.Service<AuthFailures>()("clawdforge/AuthFailures", {
  effect: Effect.gen(function*() {
    const { authFailuresPerMinute: limit } = yield* AppConfig
    const perMs = limit / 60_000
    const buckets = new Map<string, Bucket>()

    const current = (address: string, now: number): Bucket | undefined => {
      const bucket = buckets.get(address)
      if (bucket === undefined) return undefined
      bucket.tokens = Math.min(limit, bucket.tokens + (now - bucket.at) * perMs)
      bucket.at = now
      if (bucket.tokens < limit) return bucket
      buckets.delete(address)
      return undefined
    }

    // On every guarded request's path: plain synchronous work, untraced.

    /** Seconds until `address` may send a wrong token again; 0 when it is not throttled. */
    const retryAfterSecs = Effect.fnUntraced(function*(address: string) {
      if (limit === 0) return 0
      const bucket = current(address, Date.now())
      return bucket === undefined || bucket.tokens >= 1 ? 0 : Math.max(1, Math.ceil((1 - bucket.tokens) / perMs / 1000))
    })

    /** Counts one wrong token from `address`. */
    const recordFailure = Effect.fnUntraced(function*(address: string) {
      if (limit === 0) return
      const now = Date.now()
      const bucket = current(address, now)
      if (bucket !== undefined) {
        bucket.tokens = Math.max(0, bucket.tokens - 1)
        return
      }
      if (buckets.size >= maxAddresses) buckets.delete(buckets.keys().next().value!)
      buckets.set(address, { tokens: limit - 1, at: now })
    })

    return { retryAfterSecs, recordFailure } as const
  }),
  dependencies: [AppConfig.Default]
}) {}
