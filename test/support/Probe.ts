import { agentText } from "./ScriptedAgent.js"

/** What the demo agent's `probe <what> [args]` answers: `code` is the error's (`EACCES`, `ENOENT`, ...) when `ok` is false. */
export interface ProbeResult {
  readonly ok: boolean
  readonly code?: string
  readonly [field: string]: unknown
}

/** The `probe: {...}` answer out of a turn's events (the text of its `agent_message_chunk` updates). */
export const probeResult = (events: ReadonlyArray<any>): ProbeResult => {
  const text = agentText(events)
  const json = /^probe: (\{.*\})$/s.exec(text)?.[1]
  if (json === undefined) throw new Error(`no probe answer in the turn: ${JSON.stringify(text).slice(0, 500)}`)
  return JSON.parse(json)
}
