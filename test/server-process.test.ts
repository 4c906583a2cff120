/** The gateway as a user runs it: the compiled `dist/app/main.js` in its own process (`npm start`). */
import { existsSync } from "node:fs"
import { type AddressInfo, createServer } from "node:net"
import { join, resolve } from "node:path"
import { describe, expect, it } from "vitest"
import { api, dataDir, runGatewayToExit, startGateway } from "./support/GatewayProcess.js"
import { agentLogFile, agentText, isAlive, readAgentLog, scriptedAgents, startedPids } from "./support/ScriptedAgent.js"
import { appToken, otherToken } from "./support/TestGateway.js"

const root = resolve(import.meta.dirname, "..")

describe("start-up configuration", () => {
  it("an invalid value stops start-up with one line naming the variable", async () => {
    const { code, stdout, stderr } = await runGatewayToExit({ CLAWDFORGE_PORT: "not-a-port" })
    expect(code).toBe(1)
    const lines = stderr.split("\n").filter((l) => l.trim().length > 0)
    expect(lines, stderr).toHaveLength(1)
    expect(lines[0]).toContain("CLAWDFORGE_PORT")
    expect(stdout).not.toContain("Listening")
  })

  it("a CLAWDFORGE_DB of another URL scheme stops start-up with one line naming it, and creates nothing", async () => {
    const { code, stdout, stderr } = await runGatewayToExit({ CLAWDFORGE_DB: "ftp://x" })
    expect(code).toBe(1)
    const lines = stderr.split("\n").filter((l) => l.trim().length > 0)
    expect(lines, stderr).toHaveLength(1)
    expect(lines[0]).toContain("CLAWDFORGE_DB")
    expect(stdout).not.toContain("Listening")
    expect(existsSync(join(root, "ftp:"))).toBe(false)
  })

  it("a port another process holds stops start-up with one line naming CLAWDFORGE_PORT", async () => {
    const holder = createServer()
    await new Promise<void>((done) => holder.listen(0, "127.0.0.1", done))
    try {
      const port = (holder.address() as AddressInfo).port
      const { code, stdout, stderr } = await runGatewayToExit({ CLAWDFORGE_HOST: "127.0.0.1", CLAWDFORGE_PORT: String(port) })
      expect(code).toBe(1)
      // The log's warnings are JSON lines on stdout; the reason is one line on stderr.
      const lines = stderr.split("\n").filter((l) => l.trim().length > 0)
      expect(lines, stderr).toEqual([`clawdforge: CLAWDFORGE_PORT: cannot listen on 127.0.0.1:${port} (listen EADDRINUSE: address already in use 127.0.0.1:${port})`])
      expect(stdout).not.toContain("Listening")
      // How agents would have run is said only by a gateway that serves.
      expect(stdout).not.toContain("agents run")
    } finally {
      holder.close()
    }
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

describe("restart", () => {
  it("a session open when the gateway died continues after a restart on the same database", async () => {
    const log = agentLogFile()
    const data = dataDir()
    const env = { CLAWDFORGE_AGENTS: scriptedAgents(log) }
    const first = await startGateway(env, data)
    let sid: string
    try {
      sid = (await api(first, "POST", "/sessions", { agent: "scripted" })).body.session_id
      const t1 = await api(first, "POST", `/sessions/${sid}/turn`, { prompt: "before the restart" })
      expect(t1.body.turn_index).toBe(1)
    } finally {
      await first.stop("SIGKILL")
    }
    const second = await startGateway(env, data)
    try {
      const state = await api(second, "GET", `/sessions/${sid}`)
      expect(state.body).toMatchObject({ status: "open", turn_count: 1 })
      const t2 = await api(second, "POST", `/sessions/${sid}/turn`, { prompt: "history" })
      expect(t2.status).toBe(200)
      expect(t2.body.turn_index).toBe(2)
      expect(agentText(t2.body.events)).toContain("before the restart")
      const [, resumedPid] = startedPids(log)
      expect(readAgentLog(log).filter((l) => l.pid === resumedPid).map((l) => l.event)).toContain("session/load")
    } finally {
      await second.stop()
    }
    expect(startedPids(log).filter(isAlive)).toEqual([])
  })

  it("SIGTERM lets a running turn finish, commits it, then exits with no agent left", async () => {
    const log = agentLogFile()
    const data = dataDir()
    const env = { CLAWDFORGE_AGENTS: scriptedAgents(log) }
    const gateway = await startGateway(env, data)
    let sid: string
    try {
      sid = (await api(gateway, "POST", "/sessions", { agent: "scripted" })).body.session_id
      const slow = api(gateway, "POST", `/sessions/${sid}/turn`, { prompt: "sleep 1000" }).catch(() => undefined)
      await new Promise((r) => setTimeout(r, 300))
      const stoppedAt = Date.now()
      expect(await gateway.stop("SIGTERM")).toBe(0)
      console.log(`SIGTERM with a 1 s turn running: exited after ${Date.now() - stoppedAt} ms`)
      await slow
    } finally {
      await gateway.stop("SIGKILL")
    }
    expect(startedPids(log).filter(isAlive)).toEqual([])
    const again = await startGateway(env, data)
    try {
      const state = await api(again, "GET", `/sessions/${sid}`)
      expect(state.body.turn_count).toBe(1)
    } finally {
      await again.stop()
    }
  })

  it("SIGTERM cancels a turn that does not end, and exits within a few seconds", async () => {
    const log = agentLogFile()
    const gateway = await startGateway({ CLAWDFORGE_AGENTS: scriptedAgents(log) })
    try {
      const sid = (await api(gateway, "POST", "/sessions", { agent: "scripted" })).body.session_id
      void api(gateway, "POST", `/sessions/${sid}/turn`, { prompt: "hang" }).catch(() => undefined)
      await new Promise((r) => setTimeout(r, 300))
      const stoppedAt = Date.now()
      expect(await gateway.stop("SIGTERM")).toBe(0)
      const took = Date.now() - stoppedAt
      console.log(`SIGTERM with a hung turn: exited after ${took} ms`)
      expect(took).toBeLessThan(10_000)
      expect(readAgentLog(log).map((l) => l.event)).toContain("session/cancel")
    } finally {
      await gateway.stop("SIGKILL")
    }
    expect(startedPids(log).filter(isAlive)).toEqual([])
  })
})
