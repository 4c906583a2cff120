import type { AcpMessage } from "../../domain/Session.js"

/**
 * Parses newline-delimited JSON (what `acpx --format json` prints): one object per line;
 * blank lines, garbage and non-object values are skipped.
 */
export const parseNdjson = (raw: string): Array<AcpMessage> => {
  const messages: Array<AcpMessage> = []
  for (const line of raw.split("\n")) {
    const message = parseJsonLine(line)
    if (message !== undefined) messages.push(message)
  }
  return messages
}

/** One line of NDJSON as an object, or undefined when it is not one. */
export const parseJsonLine = (line: string): AcpMessage | undefined => {
  const trimmed = line.trim()
  if (trimmed.length === 0 || trimmed[0] !== "{") return undefined
  try {
    const value: unknown = JSON.parse(trimmed)
    return typeof value === "object" && value !== null && !Array.isArray(value) ? value as AcpMessage : undefined
  } catch {
    return undefined
  }
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null

/** The `stopReason` of a prompt response (`{result: {stopReason}}`), the last one in the list. */
export const extractStopReason = (events: ReadonlyArray<AcpMessage>): string | undefined => {
  for (let i = events.length - 1; i >= 0; i--) {
    const result = events[i]!["result"]
    if (isRecord(result) && typeof result["stopReason"] === "string") return result["stopReason"]
  }
  return undefined
}

/** The note naming the turn's files; the agent reads it before the user's text. */
export const filesNote = (files: ReadonlyArray<string>): string =>
  `Files to look at:\n${files.map((file) => `- ${file}`).join("\n")}`

/** The prompt text with the files named first: the user's text stays last. */
export const formatPromptWithFiles = (prompt: string, files: ReadonlyArray<string> | undefined): string =>
  files === undefined || files.length === 0 ? prompt : `${filesNote(files)}\n\n${prompt}`

/** The JSON-RPC method of a message, if it is a request or notification. */
export const messageMethod = (message: AcpMessage): string | undefined =>
  typeof message["method"] === "string" ? message["method"] : undefined
