import { Schema } from "effect"

export const AgentDriverKind = Schema.Literal("acp", "acpx")
export type AgentDriverKind = typeof AgentDriverKind.Type

/** One agent registry entry, as `CLAWDFORGE_AGENTS` spells it. */
export const AgentDefinition = Schema.Struct({
  command: Schema.NonEmptyArray(Schema.String.pipe(Schema.minLength(1))),
  driver: Schema.optionalWith(AgentDriverKind, { default: () => "acp" as const }),
  env: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.String }), { default: () => ({}) })
})
export type AgentDefinition = typeof AgentDefinition.Type
