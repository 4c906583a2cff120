import { Effect, Option, Record } from "effect"
import { accessSync, constants, statSync } from "node:fs"
import { delimiter, join } from "node:path"
import { fileURLToPath } from "node:url"
import type { AgentCapabilities, AgentDefinition, AgentInfo } from "../../domain/Agent.js"
import { UnknownAgent } from "../../domain/Errors.js"
import { AppConfig } from "../config/AppConfig.js"

/** The scripted ACP agent the project ships; the demo agent `echo` needs no API key. */
export const scriptedAgentPath = fileURLToPath(new URL("./demo-agent.mjs", import.meta.url))

export const builtinAgents = (): Record<string, AgentDefinition> => ({
  claude: { command: ["claude-agent-acp"], driver: "acp", env: {} },
  codex: { command: ["codex-acp"], driver: "acp", env: {} },
  gemini: { command: ["gemini", "--acp"], driver: "acp", env: {} },
  echo: { command: [process.execPath, scriptedAgentPath], driver: "acp", env: {} }
})

/** Whether `command` names an executable: a path as it is, a bare name through PATH. */
const commandExists = (command: string, path: string) => {
  const executable = (file: string) => {
    try {
      accessSync(file, constants.X_OK)
      return statSync(file).isFile()
    } catch {
      return false
    }
  }
  if (command.includes("/")) return executable(command)
  return path.split(delimiter).some((dir) => dir.length > 0 && executable(join(dir, command)))
}

export class AgentRegistry extends Effect.Service<AgentRegistry>()("clawdforge/AgentRegistry", {
  effect: Effect.gen(function*() {
    const config = yield* AppConfig
    // CLAWDFORGE_AGENTS entries replace built-ins of the same name.
    const agents = { ...builtinAgents(), ...config.agents }
    const names = Object.keys(agents).sort()

    const lookup = Effect.fn("AgentRegistry.lookup")(function*(name: string) {
      return yield* Option.match(Record.get(agents, name), {
        onNone: () =>
          new UnknownAgent({ message: `Unknown agent "${name}"; known agents: ${names.join(", ")}`, agents: names }),
        onSome: Effect.succeed
      })
    })

    // What each agent declared at its first start, kept for `GET /agents`.
    const learned = new Map<string, AgentCapabilities>()
    const learn = (name: string, capabilities: AgentCapabilities | undefined) =>
      Effect.sync(() => {
        if (capabilities !== undefined) learned.set(name, capabilities)
      })

    /** The registry as callers see it: names, drivers, whether they can run here, what they declared. */
    const list = Effect.fn("AgentRegistry.list")(function*() {
      return names.map((name): AgentInfo => {
        const definition = agents[name]!
        return {
          name,
          driver: definition.driver,
          available: commandExists(definition.command[0], definition.env["PATH"] ?? process.env["PATH"] ?? ""),
          capabilities: learned.get(name) ?? null
        }
      })
    })

    return { names, lookup, learn, list } as const
  }),
  dependencies: [AppConfig.Default]
}) {}
