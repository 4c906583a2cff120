import { describe, expect, it } from "@effect/vitest"
import { extractStopReason, formatPromptWithFiles, parseNdjson } from "../src/services/agents/AcpMessages.js"
import { parseResultText } from "../src/services/agents/ClaudeRunner.js"
import { answerPermission } from "../src/services/agents/Permissions.js"

describe("acpx output helpers", () => {
  it("extracts the stop reason from NDJSON", () => {
    const raw = [
      "{\"jsonrpc\":\"2.0\",\"id\":\"req-1\",\"method\":\"session/prompt\",\"params\":{}}",
      "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\",\"params\":{\"sessionUpdate\":\"agent_message_chunk\",\"content\":{\"type\":\"text\",\"text\":\"Hi\"}}}",
      "{\"jsonrpc\":\"2.0\",\"id\":\"req-1\",\"result\":{\"stopReason\":\"end_turn\"}}",
      ""
    ].join("\n")
    const events = parseNdjson(raw)
    expect(events).toHaveLength(3)
    expect(extractStopReason(events)).toBe("end_turn")
  })

  it("has no stop reason without a prompt response", () => {
    expect(extractStopReason(parseNdjson("{\"jsonrpc\":\"2.0\",\"method\":\"session/update\",\"params\":{}}"))).toBe(
      undefined
    )
  })

  it("skips garbage lines", () => {
    const raw = "{\"a\":1}\nnot json\n{\"b\":2}\n\n \n{\"c\":3}\n[1,2]\n42\n{broken\n"
    expect(parseNdjson(raw)).toEqual([{ a: 1 }, { b: 2 }, { c: 3 }])
  })

  it("names the files before the prompt, which stays last", () => {
    expect(formatPromptWithFiles("hello", undefined)).toBe("hello")
    expect(formatPromptWithFiles("hello", [])).toBe("hello")
    const annotated = formatPromptWithFiles("hello", ["/data/x.txt", "/data/y.txt"])
    expect(annotated).toContain("/data/x.txt")
    expect(annotated).toContain("/data/y.txt")
    expect(annotated.endsWith("hello")).toBe(true)
    expect(annotated.indexOf("/data/x.txt")).toBeLessThan(annotated.indexOf("hello"))
  })
})

describe("claude result text", () => {
  it("parses JSON, tolerating code fences, else keeps the text", () => {
    expect(parseResultText("{\"hello\":\"world\"}")).toEqual({ hello: "world" })
    expect(parseResultText("```json\n{\"hello\":\"world\"}\n```")).toEqual({ hello: "world" })
    expect(parseResultText("```\n[1, 2]\n```")).toEqual([1, 2])
    expect(parseResultText("just words")).toBe("just words")
  })
})

describe("permission answers", () => {
  const request = (kind: "read" | "edit") => ({
    sessionId: "s",
    toolCall: { toolCallId: "t", title: "x", kind },
    options: [
      { optionId: "allow", name: "Allow", kind: "allow_once" as const },
      { optionId: "reject", name: "Reject", kind: "reject_once" as const }
    ]
  })
  const chosen = (mode: "approve-all" | "approve-reads" | "deny-all", kind: "read" | "edit") => {
    const outcome = answerPermission(mode, request(kind)).outcome
    return outcome.outcome === "selected" ? outcome.optionId : outcome.outcome
  }

  it("follows the session's permission mode", () => {
    expect(chosen("approve-all", "edit")).toBe("allow")
    expect(chosen("approve-reads", "read")).toBe("allow")
    expect(chosen("approve-reads", "edit")).toBe("reject")
    expect(chosen("deny-all", "read")).toBe("reject")
  })
})
