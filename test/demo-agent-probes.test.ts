/**
 * The demo agent's `probe` command, driven through a real session of a gateway process: what the
 * isolation tests ask the agent from inside its sandbox, here with the sandbox off.
 */
import { existsSync, readFileSync, rmSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { api, dataDir, freePort, type GatewayProcess, startGateway } from "./support/GatewayProcess.js"
import { probeResult } from "./support/Probe.js"

/** A process's parent pid, while it runs (`comm` has no spaces here: `sleep`, `node`). */
const parentOf = (pid: number) => {
  try {
    return Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(" ")[3])
  } catch {
    return undefined
  }
}

describe("the demo agent's probes, in a session with the sandbox off", () => {
  const data = dataDir()
  let gateway: GatewayProcess
  let sid: string

  const probe = async (command: string) => {
    const turn = await api(gateway, "POST", `/sessions/${sid}/turn`, { prompt: `probe ${command}` })
    expect(turn.status, JSON.stringify(turn.body)).toBe(200)
    return probeResult(turn.body.events)
  }

  beforeAll(async () => {
    gateway = await startGateway({ CLAWDFORGE_SANDBOX: "off" }, data)
    // The built-in demo agent: the probes as the gateway ships them.
    const created = await api(gateway, "POST", "/sessions", { agent: "echo" })
    expect(created.status, JSON.stringify(created.body)).toBe(200)
    sid = created.body.session_id
  })

  afterAll(async () => {
    await gateway?.stop()
    rmSync(data, { recursive: true, force: true })
  })

  it("reads and writes inside its workspace, and a missing file is ENOENT", async () => {
    const me = await probe("whoami")
    expect(me).toMatchObject({ ok: true, pid: expect.any(Number), uid: expect.any(Number) })
    const workspace = me["cwd"] as string
    expect(workspace.startsWith(join(data, "workspaces"))).toBe(true)

    expect(await probe(`write ${workspace}/probed.txt`)).toEqual({ ok: true })
    expect(readFileSync(join(workspace, "probed.txt")).length).toBeGreaterThan(0)
    expect(await probe(`read ${workspace}/probed.txt`)).toEqual({ ok: true, bytes: readFileSync(join(workspace, "probed.txt")).length })
    expect((await probe(`list ${workspace}`))["entries"]).toContain("probed.txt")

    expect(await probe(`read ${workspace}/no-such-file`)).toEqual({ ok: false, code: "ENOENT" })
    expect(existsSync(join(workspace, "no-such-file"))).toBe(false)
  })

  it("env gives the variables' names and only six values", async () => {
    const result = await probe("env")
    expect(result.ok).toBe(true)
    const names = result["names"] as Array<string>
    expect(names).toContain("PATH")
    expect(names).toEqual([...names].sort())
    const values = result["values"] as Record<string, string | null>
    expect(Object.keys(values).sort()).toEqual(["HOME", "HTTPS_PROXY", "HTTP_PROXY", "IS_SANDBOX", "PATH", "TMPDIR"])
    expect(values["PATH"]).toEqual(expect.any(String))
  })

  it("a connection to a closed port fails with its code", async () => {
    const closed = await freePort()
    expect(await probe(`connect 127.0.0.1 ${closed}`)).toEqual({ ok: false, code: "ECONNREFUSED" })
  })

  it("allocates 50 MB and starts 3 processes, which it stops again", async () => {
    expect(await probe("alloc 50")).toEqual({ ok: true, mb: 50 })
    expect(await probe("spawn 3")).toEqual({ ok: true, started: 3 })
    // The agent still answers, and sees itself among its processes.
    const me = await probe("whoami")
    const ps = await probe("ps")
    const processes = ps["processes"] as Array<{ pid: number; comm: string }>
    expect(processes.map((p) => p.pid)).toContain(me["pid"])
    // Its `sleep` children are gone before the turn answers.
    const sleepers = processes.filter((p) => p.comm === "sleep" && parentOf(p.pid) === me["pid"])
    expect(sleepers).toEqual([])
  })
})
