import { Schema } from "effect"

export const RunRequest = Schema.Struct({
  prompt: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(1_000_000)),
  model: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256))),
  system_prompt: Schema.optional(Schema.String.pipe(Schema.maxLength(1_000_000))),
  timeout_secs: Schema.optional(Schema.Number.pipe(Schema.positive(), Schema.lessThanOrEqualTo(3600)))
})
export type RunRequest = typeof RunRequest.Type

/** The v0.1 success reply: exactly these four keys. */
export const RunReply = Schema.Struct({
  ok: Schema.Literal(true),
  result: Schema.Unknown,
  duration_ms: Schema.Int,
  stop_reason: Schema.NullOr(Schema.String)
}).annotations({ identifier: "RunReply" })
export type RunReply = typeof RunReply.Type
