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

/** What an agent declared in its `initialize` answer, as `GET /agents` shows it. */
export const AgentCapabilities = Schema.Struct({
  load_session: Schema.Boolean.annotations({ description: "It can load a session (`session/load`)" }),
  resume: Schema.Boolean.annotations({ description: "It can resume a session without replaying it (`session/resume`)" }),
  close: Schema.Boolean.annotations({ description: "It takes `session/close` before it is stopped" }),
  list: Schema.Boolean.annotations({ description: "It can list its sessions (`session/list`)" }),
  prompt: Schema.Struct({
    image: Schema.Boolean,
    audio: Schema.Boolean,
    embedded_context: Schema.Boolean
  }).annotations({ description: "What a prompt may carry besides text" }),
  auth_methods: Schema.Array(Schema.Struct({ id: Schema.String, name: Schema.String })).annotations({
    description: "How it can be authenticated"
  })
}).annotations({ identifier: "AgentCapabilities", description: "What the agent declared when it first started" })
export type AgentCapabilities = typeof AgentCapabilities.Type

/** One entry of the agent registry, as callers see it: never its command's environment. */
export const AgentInfo = Schema.Struct({
  name: Schema.String.annotations({ description: "What `POST /sessions` takes as `agent`" }),
  driver: AgentDriverKind,
  available: Schema.Boolean.annotations({ description: "Whether its command can be found on this gateway" }),
  capabilities: Schema.NullOr(AgentCapabilities).annotations({
    description: "Learned at its first start; null until then"
  })
}).annotations({ identifier: "AgentInfo", description: "An agent a session can run" })
export type AgentInfo = typeof AgentInfo.Type

/** How agents are boxed on this gateway (`CLAWDFORGE_SANDBOX`, cgroups). */
export const SandboxMode = Schema.Literal("bwrap", "off").annotations({
  description: "`bwrap`: every agent runs in a bubblewrap sandbox of its own; `off`: agents see the machine as the gateway's user does"
})
export const AgentLimited = Schema.Boolean.annotations({
  description: "Whether every agent runs in a cgroup with its memory, process and CPU limits"
})

export const AgentList = Schema.Struct({
  ok: Schema.Literal(true),
  count: Schema.Int.annotations({ description: "How many agents there are" }),
  sandbox: SandboxMode,
  limits: AgentLimited,
  agents: Schema.Array(AgentInfo)
}).annotations({ identifier: "AgentList", description: "The agent registry" })
