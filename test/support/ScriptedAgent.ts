import { readFileSync } from "node:fs"
import { join } from "node:path"
import { scriptedAgentPath } from "../../src/services/agents/AgentRegistry.js"
import { tempDir } from "./TempDirs.js"

/** A log file the scripted agent appends `{pid, event, ...}` lines to (removed at the end of the test file). */
export const agentLogFile = () => join(tempDir("clawdforge-agent-"), "agent.log")

export interface AgentLogLine {
  readonly pid: number
  readonly event: string
  readonly sessionId?: string
}

export const readAgentLog = (file: string): Array<AgentLogLine> => {
  try {
    return readFileSync(file, "utf8").split("\n").filter((l) => l.trim().length > 0).map((l) => JSON.parse(l))
  } catch {
    return []
  }
}

/** Pids of every scripted agent process that started, in order. */
export const startedPids = (file: string) =>
  readAgentLog(file).filter((l) => l.event === "start").map((l) => l.pid)

/**
 * Whether the process still runs. A zombie does not: an agent orphaned by a SIGKILLed gateway
 * exits but waits for PID 1 to reap it, which in a container may take a while.
 */
export const isAlive = (pid: number) => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"))
  } catch {
    return false
  }
}

/** `CLAWDFORGE_AGENTS` registering the scripted agent as `scripted` (and variants). */
export const scriptedAgents = (log: string, env: Record<string, string> = {}) =>
  JSON.stringify({
    scripted: { command: [process.execPath, scriptedAgentPath], env: { SCRIPTED_AGENT_LOG: log, ...env } },
    "scripted-resume": {
      command: [process.execPath, scriptedAgentPath],
      env: { SCRIPTED_AGENT_LOG: log, SCRIPTED_AGENT_RESUME: "1", ...env }
    },
    "scripted-noload": {
      command: [process.execPath, scriptedAgentPath],
      env: { SCRIPTED_AGENT_LOG: log, SCRIPTED_AGENT_NO_LOAD: "1", ...env }
    },
    "scripted-stubborn": {
      command: [process.execPath, scriptedAgentPath],
      env: { SCRIPTED_AGENT_LOG: log, SCRIPTED_AGENT_IGNORE_CANCEL: "1", ...env }
    }
  })

/** What the agent said in a turn: the text of its `agent_message_chunk` updates. */
export const agentText = (events: ReadonlyArray<any>) =>
  events
    .filter((e) => e.method === "session/update" && e.params?.update?.sessionUpdate === "agent_message_chunk")
    .map((e) => e.params.update.content.text)
    .join("")
