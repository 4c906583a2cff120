import { Schema } from "effect"

// `Idempotency-Key` on the routes that start work (`POST /run`, `/sessions`, `/turn`, `/turns`,
// `/turn/stream`): a retried request with the same key answers what the first one answered.

/** 1 to 255 visible ASCII characters. */
export const IdempotencyKey = Schema.String.pipe(
  Schema.pattern(/^[\x21-\x7e]{1,255}$/)
).annotations({
  description: "Any 1 to 255 visible ASCII characters, unique per request the app means (a UUID is fine). A " +
    "repeat of the request with the same key and the same body does not run it again: it answers the first " +
    "request's status and body (waiting for it while it runs; a stream is replayed) with " +
    "`Idempotent-Replayed: true`. The same key with a different request is a 422 `idempotency_key_reused`. " +
    "Keys are kept CLAWDFORGE_IDEMPOTENCY_TTL_SECS (default one day), per app.",
  message: () => ({ message: "Expected an Idempotency-Key of 1 to 255 visible ASCII characters", override: true })
})

export const IdempotencyHeaders = Schema.Struct({
  "idempotency-key": Schema.optionalWith(IdempotencyKey, { exact: true })
})

/** What the docs say of the response header a replay carries. */
export const replayedHeader = {
  "Idempotent-Replayed": {
    description: "`true` when this is the stored answer of an earlier request with the same Idempotency-Key"
  }
}

/** The sentence every endpoint that takes the header adds to its description. */
export const retrySafe = "\n\nWith an `Idempotency-Key` header, a retry is safe: a repeat with the same key and body " +
  "never runs the work twice and answers what the first request answered, with `Idempotent-Replayed: true`."
