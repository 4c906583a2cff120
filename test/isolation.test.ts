/**
 * Isolation as an attacker would try it: the demo agent, inside a real bubblewrap sandbox started by a
 * real gateway process, probes what it can read, list, write, signal and reach (`probe ...`), with two
 * apps, an admin token and a secret key configured. What it must reach works; nothing of the gateway,
 * its ledger, another session or another app does; its memory and processes are capped while the
 * gateway and the other sessions go on.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer, type Server } from "node:http"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { bwrapAvailable } from "./support/Bubblewrap.js"
import { api, dataDir, freePort, type GatewayProcess, runGatewayToExit, startGateway } from "./support/GatewayProcess.js"
import { ledgerIn } from "./support/Ledgers.js"
import { until } from "./support/Poll.js"
import { probeResult } from "./support/Probe.js"
import { appName, appToken, otherApp, otherToken } from "./support/TestGateway.js"

const adminToken = "admin-token-0123456789abcdef"
const secretKey = "secret-key-0123456789abcdef"
const asRoot = process.getuid?.() === 0
const repoRoot = resolve(import.meta.dirname, "..")

/** The host's processes whose command line names `text` (a session's workspace is in its bwrap's). */
const hostProcessesNaming = (text: string) =>
  readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(text)
    } catch {
      return false
    }
  })

/** A loopback HTTP server answering 200 "hello" (what an allowed host looks like to an agent). */
const helloServer = async (): Promise<{ server: Server; port: number }> => {
  const server = createServer((_, response) => response.end("hello"))
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done))
  return { server, port: (server.address() as { port: number }).port }
}

describe.skipIf(!bwrapAvailable)("agents in a sandbox of their own", () => {
  let gateway: GatewayProcess
  let data: string
  let ledger: string
  let allowed: { server: Server; port: number }
  let refused: { server: Server; port: number }
  const sessions: Array<string> = []

  const create = async (token = appToken, body: Record<string, unknown> = { agent: "echo" }) => {
    const created = await api(gateway, "POST", "/sessions", body, token)
    expect(created.status, JSON.stringify(created.body)).toBe(200)
    sessions.push(created.body.session_id)
    return created.body.session_id as string
  }
  const turn = (sid: string, prompt: string, token = appToken) =>
    api(gateway, "POST", `/sessions/${sid}/turn`, { prompt }, token)
  const probe = async (sid: string, what: string, token = appToken) => {
    const reply = await turn(sid, `probe ${what}`, token)
    expect(reply.status, JSON.stringify(reply.body).slice(0, 500)).toBe(200)
    return probeResult(reply.body.events)
  }
  const workspaceOf = async (sid: string, token = appToken) =>
    (await api(gateway, "GET", `/sessions/${sid}`, undefined, token)).body.cwd as string

  beforeAll(async () => {
    allowed = await helloServer()
    refused = await helloServer()
    data = dataDir()
    ledger = await ledgerIn(data)
    gateway = await startGateway({
      CLAWDFORGE_SANDBOX: "bwrap",
      CLAWDFORGE_DB: ledger,
      CLAWDFORGE_ADMIN_TOKEN: adminToken,
      CLAWDFORGE_SECRET_KEY: secretKey,
      CLAWDFORGE_AGENT_MEMORY_MB: "256",
      CLAWDFORGE_AGENT_PIDS: "48",
      CLAWDFORGE_MAX_LIVE_SESSIONS: "40",
      // app-b's agents get no network at all; app-c's reach the allowed server through the proxy.
      CLAWDFORGE_APP_TOKENS: `${appName}=${appToken},${otherApp}=${otherToken},app-c=token-app-c-0123456789`,
      CLAWDFORGE_APP_LIMITS: JSON.stringify({
        [otherApp]: { network: "none" },
        "app-c": { network: `allow:127.0.0.1:${allowed.port}` }
      })
    }, data)
  }, 60_000)

  afterAll(async () => {
    await gateway?.stop()
    allowed?.server.close()
    refused?.server.close()
    if (data !== undefined) rmSync(data, { recursive: true, force: true })
  })

  it("says so: GET /agents, the admin overview and the start-up line", async () => {
    const agents = await api(gateway, "GET", "/agents")
    expect(agents.body).toMatchObject({ sandbox: "bwrap", limits: true })
    const overview = await api(gateway, "GET", "/admin/overview", undefined, adminToken)
    expect(overview.body).toMatchObject({ sandbox: "bwrap", limits: true })
    expect(gateway.output()).toMatch(/agents run sandboxed \(bubblewrap/)
  })

  it("an agent's environment holds nothing of the gateway's, its launcher's neither", async () => {
    const sid = await create()
    const env = await probe(sid, "env")
    const names = env["names"] as Array<string>
    expect(names.filter((name) => name.startsWith("CLAWDFORGE_"))).toEqual([])
    const values = env["values"] as Record<string, string | null>
    expect(values["HOME"]).toBe(join(data, "workspaces", appName, ".home"))
    expect(values["TMPDIR"]).toBe("/tmp")
    expect(values["IS_SANDBOX"]).toBe(asRoot ? "1" : null)
    // PID 1 is bwrap: it was started with the same clean environment (and, the gateway being root, it is
    // root's: the agent cannot even read it).
    const launcher = await probe(sid, "environ 1")
    if (launcher.ok) {
      expect((launcher["names"] as Array<string>).filter((name) => name.startsWith("CLAWDFORGE_"))).toEqual([])
    } else {
      expect(launcher.code).toBe("EACCES")
    }
    // Whatever the agent said, no token or key reached the ledger's stored events either.
    const stored = readFileSync(ledger)
    for (const secret of [adminToken, secretKey, appToken, otherToken]) expect(stored.includes(secret)).toBe(false)
  })

  it("it runs as an unprivileged user and sees only its own processes", async () => {
    const sid = await create()
    const me = await probe(sid, "whoami")
    expect(me["uid"]).not.toBe(0)
    expect(me["cwd"]).toBe(await workspaceOf(sid))
    const ps = await probe(sid, "ps")
    const processes = ps["processes"] as Array<{ pid: number }>
    // Its own PID namespace: bwrap, the agent, nothing of the host's.
    expect(processes.length).toBeLessThan(6)
    expect(processes.some((p) => p.pid === gateway.child.pid)).toBe(false)
    expect((await probe(sid, `kill ${gateway.child.pid} 15`)).code).toBe("ESRCH")
    expect((await probe(sid, "read /etc/shadow")).ok).toBe(false)
    expect((await probe(sid, "write /usr/clawdforge-was-here")).ok).toBe(false)
    expect(gateway.child.exitCode).toBeNull()
  })

  it("it reads and writes its workspace, its app's HOME and /tmp, and nothing else of the machine", async () => {
    const sid = await create()
    const mine = await workspaceOf(sid)
    const home = join(data, "workspaces", appName, ".home")
    expect(await probe(sid, `write ${mine}/notes.txt`)).toMatchObject({ ok: true })
    expect(readFileSync(join(mine, "notes.txt")).length).toBeGreaterThan(0)
    expect(await probe(sid, `write ${home}/settings.json`)).toMatchObject({ ok: true })
    expect(await probe(sid, "write /tmp/scratch")).toMatchObject({ ok: true })

    // Another session of the same app, and one of another app, each with a file on the host.
    const sibling = await create()
    const stranger = await create(otherToken)
    const siblingFile = join(await workspaceOf(sibling), "secret.txt")
    const strangerFile = join(await workspaceOf(stranger, otherToken), "secret.txt")
    writeFileSync(siblingFile, "sibling's")
    writeFileSync(strangerFile, "stranger's")
    const otherHome = join(data, "workspaces", otherApp, ".home")
    for (const path of [siblingFile, strangerFile, ledger, `${otherHome}/x`, join(repoRoot, "package.json")]) {
      expect(await probe(sid, `read ${path}`), path).toMatchObject({ ok: false })
      expect(await probe(sid, `write ${path}`), path).toMatchObject({ ok: false })
    }
    // Listing the folders above its own shows only the way down to what it was given.
    const listed = await probe(sid, `list ${join(data, "workspaces")}`)
    expect(listed["entries"]).toEqual([appName])
    const appFolder = await probe(sid, `list ${join(data, "workspaces", appName)}`)
    expect((appFolder["entries"] as Array<string>).sort()).toEqual([".home", sid].sort())
    const dataFolder = await probe(sid, `list ${data}`)
    expect(dataFolder["entries"]).toEqual(["workspaces"])
    // The gateway's own folder: its node_modules (the agent's program needs them) and the program, no more.
    const repo = await probe(sid, `list ${repoRoot}`)
    expect(repo["entries"]).not.toContain("package.json")
    expect(repo["entries"]).not.toContain("src")
  })

  it("an agent past its memory fails its turn with a 502 that says so; the session, the gateway and others go on", async () => {
    const victim = await create()
    const bystander = await create()
    const [blown, fine] = await Promise.all([turn(victim, "probe alloc 1024"), turn(bystander, "hello")])
    expect(blown.status).toBe(502)
    expect(blown.body).toMatchObject({ ok: false, error: "agent_failed" })
    expect(blown.body.message).toMatch(/memory limit of 256 MB/)
    expect(fine.status).toBe(200)
    // Its next turn starts the agent again and resumes.
    const again = await turn(victim, "hello again")
    expect(again.status, JSON.stringify(again.body).slice(0, 300)).toBe(200)
    expect((await api(gateway, "GET", "/healthz")).status).toBe(200)
  })

  it("a fork bomb stops at the process limit", async () => {
    const sid = await create()
    const bomb = await probe(sid, "spawn 200")
    expect(bomb.ok).toBe(false)
    expect(bomb["started"] as number).toBeLessThan(48)
    expect((await probe(sid, "whoami")).ok).toBe(true)
  })

  it("network host: the gateway's API still refuses an agent without a token", async () => {
    const sid = await create()
    const port = new URL(gateway.url).port
    expect(await probe(sid, `connect 127.0.0.1 ${port}`)).toMatchObject({ ok: true })
    expect(await probe(sid, `http http://127.0.0.1:${port}/sessions`)).toMatchObject({ ok: false, status: 401 })
  })

  it("network none: nothing but its own loopback", async () => {
    const sid = await create(otherToken)
    const port = new URL(gateway.url).port
    expect((await probe(sid, `connect 127.0.0.1 ${port}`, otherToken)).ok).toBe(false)
    expect((await probe(sid, `connect 127.0.0.1 ${allowed.port}`, otherToken)).ok).toBe(false)
  })

  it("network allow: the listed host through the proxy, nothing else, and the refusal is logged", async () => {
    const token = "token-app-c-0123456789"
    const sid = await create(token)
    const env = await probe(sid, "env", token)
    expect((env["values"] as Record<string, string>)["HTTP_PROXY"]).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(await probe(sid, `http http://127.0.0.1:${allowed.port}/`, token)).toMatchObject({ ok: true, status: 200 })
    expect(await probe(sid, `http http://127.0.0.1:${refused.port}/`, token)).toMatchObject({ ok: false, status: 403 })
    const port = new URL(gateway.url).port
    expect(await probe(sid, `http http://127.0.0.1:${port}/healthz`, token)).toMatchObject({ ok: false, status: 403 })
    // Straight out, without the proxy: its own network namespace has no way.
    expect((await probe(sid, `connect 127.0.0.1 ${allowed.port}`, token)).ok).toBe(false)
    await until("the refusal is logged", () => gateway.output().includes(`127.0.0.1:${refused.port}`))
    expect(gateway.output()).toMatch(/app-c/)
  })

  it("closing a session leaves no sandbox, no agent and no cgroup behind", async () => {
    const sid = await create()
    const workspace = await workspaceOf(sid)
    expect(hostProcessesNaming(workspace).length).toBeGreaterThan(0)
    expect((await api(gateway, "DELETE", `/sessions/${sid}`)).status).toBe(200)
    await until("the sandbox is gone", () => hostProcessesNaming(workspace).length === 0)
  })
})

describe.skipIf(!bwrapAvailable)("the acpx driver and /run in the sandbox", () => {
  let gateway: GatewayProcess
  let data: string
  let ledger: string
  let claudeDir: string

  beforeAll(async () => {
    data = dataDir()
    ledger = await ledgerIn(data)
    claudeDir = mkdtempSync(join(tmpdir(), "clawdforge-isolation-claude-"))
    // A `claude` that reports what it can see, in the shape `claude -p --output-format json` prints.
    const claude = join(claudeDir, "claude")
    writeFileSync(
      claude,
      `#!${process.execPath}
const fs = require("node:fs")
const can = (path) => { try { fs.readFileSync(path); return true } catch { return false } }
const seen = { names: Object.keys(process.env), uid: process.getuid(), cwd: process.cwd(), home: process.env.HOME, ledger: can(${JSON.stringify(ledger)}) }
console.log(JSON.stringify({ type: "result", subtype: "success", is_error: false, result: JSON.stringify(seen), stop_reason: "end_turn" }))
`,
      { mode: 0o755 }
    )
    gateway = await startGateway({
      CLAWDFORGE_SANDBOX: "bwrap",
      CLAWDFORGE_DB: ledger,
      CLAWDFORGE_ADMIN_TOKEN: adminToken,
      CLAWDFORGE_CLAUDE_BIN: claude,
      CLAWDFORGE_AGENTS: JSON.stringify({
        "echo-acpx": { command: [process.execPath, join(repoRoot, "dist/app/demo-agent.mjs")], driver: "acpx" }
      })
    }, data)
  }, 60_000)

  afterAll(async () => {
    await gateway?.stop()
    for (const dir of [data, claudeDir]) if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  it("acpx and the agent it starts live in the session's sandbox, and go with it", async () => {
    const created = await api(gateway, "POST", "/sessions", { agent: "echo-acpx" })
    expect(created.status, JSON.stringify(created.body)).toBe(200)
    const sid = created.body.session_id
    const say = async (prompt: string) => {
      const reply = await api(gateway, "POST", `/sessions/${sid}/turn`, { prompt })
      expect(reply.status, JSON.stringify(reply.body).slice(0, 500)).toBe(200)
      return probeResult(reply.body.events)
    }
    const env = await say("probe env")
    expect((env["names"] as Array<string>).filter((name) => name.startsWith("CLAWDFORGE_"))).toEqual([])
    expect(await say(`probe read ${ledger}`)).toMatchObject({ ok: false })
    expect((await say("probe whoami"))["uid"]).not.toBe(0)
    // A second turn is served by the same warm queue owner, in the same sandbox.
    expect(await say("probe ps")).toMatchObject({ ok: true })
    const workspace = created.body.cwd as string
    expect((await api(gateway, "DELETE", `/sessions/${sid}`)).status).toBe(200)
    await until("the sandbox is gone", () => hostProcessesNaming(workspace).length === 0)
  })

  it("/run's claude runs in a throwaway workspace of the app's, sandboxed, with the clean environment", async () => {
    const run = await api(gateway, "POST", "/run", { prompt: "what can you see" })
    expect(run.status, JSON.stringify(run.body)).toBe(200)
    const seen = run.body.result
    expect(seen.names.filter((name: string) => name.startsWith("CLAWDFORGE_"))).toEqual([])
    expect(seen.ledger).toBe(false)
    expect(seen.uid).not.toBe(0)
    expect(seen.home).toBe(join(data, "workspaces", appName, ".home"))
    expect(seen.cwd.startsWith(join(data, "workspaces", appName, ".run-"))).toBe(true)
    // The throwaway workspace is gone with the run.
    expect(readdirSync(join(data, "workspaces", appName)).filter((entry) => entry.startsWith(".run-"))).toEqual([])
  })
})

describe("with the sandbox off", () => {
  let gateway: GatewayProcess
  let data: string

  beforeAll(async () => {
    data = dataDir()
    gateway = await startGateway({ CLAWDFORGE_SANDBOX: "off", CLAWDFORGE_ADMIN_TOKEN: adminToken, CLAWDFORGE_SECRET_KEY: secretKey }, data)
  }, 60_000)
  afterAll(async () => {
    await gateway?.stop()
    if (data !== undefined) rmSync(data, { recursive: true, force: true })
  })

  it("the environment is still clean and the HOME still the app's; start-up warns and GET /agents says so", async () => {
    const created = await api(gateway, "POST", "/sessions", { agent: "echo" })
    expect(created.status).toBe(200)
    const reply = await api(gateway, "POST", `/sessions/${created.body.session_id}/turn`, { prompt: "probe env" })
    const env = probeResult(reply.body.events)
    expect((env["names"] as Array<string>).filter((name) => name.startsWith("CLAWDFORGE_"))).toEqual([])
    expect((env["values"] as Record<string, string>)["HOME"]).toBe(join(data, "workspaces", appName, ".home"))
    expect((await api(gateway, "GET", "/agents")).body).toMatchObject({ sandbox: "off" })
    expect(gateway.output()).toMatch(/agents run unsandboxed \(CLAWDFORGE_SANDBOX=off\)/)
  })

  it("what needs the sandbox stops start-up with one line", async () => {
    const port = async () => String(await freePort())
    const noBwrap = await runGatewayToExit({ CLAWDFORGE_SANDBOX: "bwrap", PATH: "/nonexistent", CLAWDFORGE_PORT: await port() })
    expect(noBwrap.code).toBe(1)
    expect(noBwrap.stderr.trim()).toBe("clawdforge: CLAWDFORGE_SANDBOX: bwrap: cannot sandbox agents here (bwrap (bubblewrap) is not installed)")
    const noNetwork = await runGatewayToExit({ CLAWDFORGE_SANDBOX: "off", CLAWDFORGE_AGENT_NETWORK: "none", CLAWDFORGE_PORT: await port() })
    expect(noNetwork.code).toBe(1)
    expect(noNetwork.stderr.trim()).toMatch(/^clawdforge: CLAWDFORGE_AGENT_NETWORK: none needs the sandbox, which is off/)
    const badNetwork = await runGatewayToExit({ CLAWDFORGE_AGENT_NETWORK: "allow:bad host", CLAWDFORGE_PORT: await port() })
    expect(badNetwork.code).toBe(1)
    expect(badNetwork.stderr.trim()).toMatch(/^clawdforge: invalid configuration: CLAWDFORGE_AGENT_NETWORK: /)
  })
})
