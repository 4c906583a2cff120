/** The gateway as a user runs it: `src/main.ts` in its own process. */
import { describe, expect, it } from "vitest"
import { api, runGatewayToExit, startGateway } from "./support/GatewayProcess.js"
import { agentLogFile, isAlive, scriptedAgents, startedPids } from "./support/ScriptedAgent.js"
import { appToken, otherToken } from "./support/TestGateway.js"

describe("start-up configuration", () => {
  it("an invalid value stops start-up with one line naming the variable", async () => {
    const { code, stdout, stderr } = await runGatewayToExit({ CLAWDFORGE_PORT: "not-a-port" })
    expect(code).toBe(1)
    const lines = stderr.split("\n").filter((l) => l.trim().length > 0)
    expect(lines, stderr).toHaveLength(1)
    expect(lines[0]).toContain("CLAWDFORGE_PORT")
    expect(stdout).not.toContain("Listening")
  })

  it("a token in a bad CLAWDFORGE_APP_TOKENS is not echoed", async () => {
    const { code, stderr } = await runGatewayToExit({ CLAWDFORGE_APP_TOKENS: "good=s3cr3t-value,=leaky-token-123" })
    expect(code).toBe(1)
    expect(stderr).toContain("CLAWDFORGE_APP_TOKENS")
    expect(stderr).not.toContain("leaky-token-123")
    expect(stderr).not.toContain("s3cr3t-value")
  })
})

describe("shutdown", () => {
  it("SIGTERM closes every session fiber and leaves no agent process behind", async () => {
    const log = agentLogFile()
    const gateway = await startGateway({ CLAWDFORGE_AGENTS: scriptedAgents(log) })
    try {
      const a = await api(gateway, "POST", "/sessions", { agent: "scripted" })
      const b = await api(gateway, "POST", "/sessions", { agent: "scripted" }, otherToken)
      expect([a.status, b.status]).toEqual([200, 200])
      const t = await api(gateway, "POST", `/sessions/${a.body.session_id}/turn`, { prompt: "hello" })
      expect(t.status).toBe(200)
      const pids = startedPids(log)
      expect(pids).toHaveLength(2)
      expect(pids.every(isAlive)).toBe(true)

      const code = await gateway.stop("SIGTERM")
      expect(code).toBe(0)
      expect(pids.filter(isAlive)).toEqual([])
      // Tokens never reach the logs.
      expect(gateway.output()).not.toContain(appToken)
      expect(gateway.output()).not.toContain(otherToken)
    } finally {
      await gateway.stop("SIGKILL")
    }
  })
})
