import { Schema } from "effect"

const Count = Schema.NullOr(Schema.Int)

export const TurnUsage = Schema.Struct({
  input_tokens: Count.annotations({ description: "Input tokens of the turn; null when the agent does not say" }),
  output_tokens: Count.annotations({ description: "Output tokens of the turn; null when the agent does not say" }),
  total_tokens: Count.annotations({ description: "All tokens of the turn; null when the agent does not say" }),
  cost_usd: Schema.NullOr(Schema.Number).annotations({
    description: "What the turn cost, in US dollars; null when the agent does not say"
  })
}).annotations({ identifier: "TurnUsage", description: "What the turn used, as far as the agent reports it" })
export type TurnUsage = typeof TurnUsage.Type
