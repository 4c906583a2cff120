import { Schema } from "effect"

export const RunRequest = Schema.Struct({
  prompt: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(1_000_000)).annotations({
    description: "What to ask claude"
  }),
  model: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256)).annotations({
    description: "Passed as `--model`"
  })),
  system_prompt: Schema.optional(Schema.String.pipe(Schema.maxLength(1_000_000)).annotations({
    description: "Passed as claude's system prompt"
  })),
  timeout_secs: Schema.optional(Schema.Number.pipe(Schema.positive(), Schema.lessThanOrEqualTo(3600)).annotations({
    description: "Stop claude after this many seconds (at most 3600); a timeout is a 502"
  }))
}).annotations({
  // A misspelt field is a 400 that names it (`unknown field "modle"`), never silently ignored.
  parseOptions: { onExcessProperty: "error" },
})
export type RunRequest = typeof RunRequest.Type

/** The v0.1 success reply: exactly these four keys. */
export const RunReply = Schema.Struct({
  ok: Schema.Literal(true),
  result: Schema.Unknown.annotations({
    description: "The JSON claude printed (code fences tolerated), else its text"
  }),
  duration_ms: Schema.Int.annotations({ description: "How long claude ran, in milliseconds" }),
  stop_reason: Schema.NullOr(Schema.String).annotations({ description: "claude's `stop_reason`, when it gave one" })
}).annotations({ identifier: "RunReply", description: "claude answered (the v0.1 reply: exactly these four keys)" })
export type RunReply = typeof RunReply.Type
