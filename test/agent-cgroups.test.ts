/**
 * A cgroup per agent (AgentCgroups): real processes in real cgroups on this host (v1 or v2), with a
 * 64 MB memory limit, 20 processes and half a CPU.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, rmdirSync } from "node:fs"
import { dirname, join } from "node:path"
import { type ConfigError, ConfigProvider, Effect, Exit, Layer, ManagedRuntime, Scope } from "effect"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { AgentCgroups, type AgentCgroup, enterCgroup } from "../src/services/sandbox/AgentCgroups.js"
import { until } from "./support/Poll.js"

const limitsConfig = ConfigProvider.fromMap(new Map([
  ["CLAWDFORGE_AGENT_MEMORY_MB", "64"],
  ["CLAWDFORGE_AGENT_PIDS", "20"],
  ["CLAWDFORGE_AGENT_CPUS", "0.5"]
]))
const layer = AgentCgroups.Default.pipe(Layer.provide(Layer.setConfigProvider(limitsConfig)))

let runtime: ManagedRuntime.ManagedRuntime<AgentCgroups, ConfigError.ConfigError>
let cgroups: AgentCgroups
const scopes: Array<Scope.CloseableScope> = []
const children: Array<ChildProcess> = []

beforeAll(async () => {
  runtime = ManagedRuntime.make(layer)
  cgroups = await runtime.runPromise(AgentCgroups)
  if (!cgroups.available) console.log(`no cgroups here: the agent-cgroups tests check the unlimited fallback (${cgroups.reason})`)
})
afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  for (const scope of scopes.splice(0)) await Effect.runPromise(Scope.close(scope, Exit.void))
})
afterAll(() => runtime.dispose())

/** An agent's cgroup in a scope of the test's own (closed in afterEach unless the test closes it). */
const makeCgroup = async (name: string) => {
  const scope = await Effect.runPromise(Scope.make())
  scopes.push(scope)
  const cgroup = await runtime.runPromise(Scope.extend(cgroups.make(name), scope))
  return { cgroup, scope }
}

/**
 * Where the gateway cannot make cgroups (no delegation, not root): it says why in one line and starts
 * agents unlimited, never failing; this is what each test checks on such a host instead.
 */
const expectNoLimits = async () => {
  expect(cgroups.reason).toMatch(/^[^\n]+$/)
  const { cgroup } = await makeCgroup("unlimited")
  expect(cgroup.procsFiles).toEqual([])
  expect(enterCgroup(cgroup.procsFiles, ["node", "-e", "1"])).toEqual(["node", "-e", "1"])
  expect(await runtime.runPromise(cgroup.oomKilled)).toBe(false)
}

const closeScope = (scope: Scope.CloseableScope) => Effect.runPromise(Scope.close(scope, Exit.void))

/** The folder of `cgroup` that has `file` (v1: one folder per controller; v2: the one folder). */
const controlFile = (cgroup: AgentCgroup, file: string) => {
  const dir = cgroup.procsFiles.map(dirname).find((d) => existsSync(join(d, file)))
  if (dir === undefined) throw new Error(`no ${file} in ${cgroup.procsFiles.join(", ")}`)
  return join(dir, file)
}
const pidsIn = (cgroup: AgentCgroup) =>
  new Set(cgroup.procsFiles.flatMap((f) => readFileSync(f, "utf8").split("\n").filter((l) => l !== "").map(Number)))

/** Starts `argv` (through `enterCgroup` when given a cgroup) and answers how it ended. */
const run = (argv: ReadonlyArray<string>, cgroup?: AgentCgroup) => {
  const [command, ...args] = cgroup === undefined ? argv : enterCgroup(cgroup.procsFiles, argv)
  const child = spawn(command!, args, { stdio: ["ignore", "pipe", "pipe"] })
  children.push(child)
  let output = ""
  child.stdout!.on("data", (chunk) => (output += chunk))
  child.stderr!.on("data", (chunk) => (output += chunk))
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, output }))
  )
  return { child, ended }
}

/** Allocates about 200 MB in Buffers and writes every page, then says "survived". */
const hog = [
  process.execPath,
  "-e",
  "const kept = []; for (let i = 0; i < 20; i++) kept.push(Buffer.alloc(10 * 1024 * 1024, i + 1)); console.log('survived')"
]

describe("enterCgroup", () => {
  it("leaves argv alone without procs files", () => {
    expect(enterCgroup([], ["node", "-e", "1"])).toEqual(["node", "-e", "1"])
  })

  it("passes every argv element as it is, never through the shell's script", async () => {
    if (!cgroups.available) return expectNoLimits()
    const { cgroup } = await makeCgroup("argv")
    const tricky = ["a b", "$(touch /tmp/should-not-exist)", "'\"`;|&", "--", "", "*"]
    const { ended } = run([process.execPath, "-e", "console.log(JSON.stringify(process.argv.slice(1)))", ...tricky], cgroup)
    const { code, output } = await ended
    expect(code).toBe(0)
    expect(JSON.parse(output)).toEqual(tricky)
  })

  it("joins before it runs anything: the command and its children are in the cgroup", async () => {
    if (!cgroups.available) return expectNoLimits()
    const { cgroup } = await makeCgroup("join")
    const { ended } = run(["/bin/sh", "-c", "cat /proc/self/cgroup; sh -c 'cat /proc/self/cgroup'"], cgroup)
    const { code, output } = await ended
    expect(code).toBe(0)
    const leaf = dirname(cgroup.procsFiles[0]!).split("/").pop()!
    const lines = output.split("\n").filter((l) => l.includes(leaf))
    // Each process shows the agent's cgroup once per hierarchy it joined.
    expect(lines.length).toBe(2 * cgroup.procsFiles.length)
  })

  it("exits 125 and runs nothing when it cannot join", async () => {
    const { ended } = run(enterCgroup(["/proc/no-such-cgroup/cgroup.procs"], ["/bin/echo", "ran"]))
    const { code, output } = await ended
    expect(code).toBe(125)
    expect(output).not.toContain("ran")
  })
})

describe("AgentCgroups", () => {
  it("finds the host's cgroups and writes the limits", async () => {
    if (!cgroups.available) return expectNoLimits()
    expect(["v1", "v2"]).toContain(cgroups.version)
    expect(cgroups.reason).toBeUndefined()
    const { cgroup } = await makeCgroup("limits/of this one")
    expect(cgroup.memoryMb).toBe(64)
    expect(cgroup.procsFiles[0]).toMatch(/\/clawdforge-\d+-\d+\/agent-limits_of_this_one-\d+\/cgroup\.procs$/)
    const read = (file: string) => readFileSync(controlFile(cgroup, file), "utf8").trim()
    if (cgroups.version === "v1") {
      expect(read("memory.limit_in_bytes")).toBe(String(64 * 1024 * 1024))
      expect(read("cpu.cfs_quota_us")).toBe("50000")
    } else {
      expect(read("memory.max")).toBe(String(64 * 1024 * 1024))
      expect(read("cpu.max")).toBe("50000 100000")
    }
    expect(read("pids.max")).toBe("20")
    expect(await runtime.runPromise(cgroup.oomKilled)).toBe(false)
  })

  it("an agent past its memory is killed by the kernel; one outside the cgroup is untouched", async () => {
    if (!cgroups.available) return expectNoLimits()
    const { cgroup } = await makeCgroup("hog")
    const [inside, outside] = await Promise.all([run(hog, cgroup).ended, run(hog).ended])
    expect(inside.signal).toBe("SIGKILL")
    expect(inside.output).not.toContain("survived")
    expect(await runtime.runPromise(cgroup.oomKilled)).toBe(true)
    expect(outside).toMatchObject({ code: 0, signal: null })
    expect(outside.output).toContain("survived")
  })

  it("a fork loop stops at the process limit; the test's own process goes on", async () => {
    if (!cgroups.available) return expectNoLimits()
    const { cgroup } = await makeCgroup("forks")
    const { ended } = run(["/bin/sh", "-c", "i=0; while [ $i -lt 100 ]; do sleep 30 >/dev/null 2>&1 & i=$((i+1)); done; echo all started"], cgroup)
    const { output } = await ended
    expect(output).not.toContain("all started")
    expect(pidsIn(cgroup).size).toBeGreaterThan(0)
    expect(pidsIn(cgroup).size).toBeLessThanOrEqual(20)
    expect(Number(readFileSync(controlFile(cgroup, "pids.current"), "utf8"))).toBeLessThanOrEqual(20)
    expect(readFileSync(controlFile(cgroup, "pids.events"), "utf8")).toMatch(/^max [1-9]/m)
    // Outside the cgroup the limit is no concern.
    expect(spawnSync("/bin/sh", ["-c", "for i in $(seq 30); do true & done; wait; echo ok"]).stdout.toString()).toBe("ok\n")
  })

  it("one agent's processes do not count against another's limit", async () => {
    if (!cgroups.available) return expectNoLimits()
    const { cgroup: first } = await makeCgroup("first")
    const { cgroup: second } = await makeCgroup("second")
    const fifteen = ["/bin/sh", "-c", "for i in $(seq 15); do sleep 30 & done; wait"]
    run(fifteen, first)
    await until("the first agent's 16 processes", () => pidsIn(first).size === 16)
    run(fifteen, second)
    await until("the second agent's 16 processes", () => pidsIn(second).size === 16)
    expect(readFileSync(controlFile(second, "pids.events"), "utf8")).toMatch(/^max 0/m)
  })

  it("closing the scope kills what is left in the cgroup and removes it", async () => {
    if (!cgroups.available) return expectNoLimits()
    const { cgroup, scope } = await makeCgroup("leftovers")
    const { ended } = run(["/bin/sh", "-c", "sleep 60 & sleep 60 & sleep 60"], cgroup)
    await until("three sleeps and their shell", () => pidsIn(cgroup).size === 4)
    const dirs = cgroup.procsFiles.map(dirname)
    await closeScope(scope)
    expect((await ended).signal).toBe("SIGKILL")
    for (const dir of dirs) expect(existsSync(dir)).toBe(false)
    expect(await runtime.runPromise(cgroup.oomKilled)).toBe(false)
  })

  it("closing the layer removes the gateway's parent cgroups with what is in them", async () => {
    if (!cgroups.available) return expectNoLimits()
    const own = ManagedRuntime.make(layer)
    try {
      const service = await own.runPromise(AgentCgroups)
      // An agent whose scope the gateway never closed: the layer's end still takes it away.
      const scope = await Effect.runPromise(Scope.make())
      scopes.push(scope)
      const left = await own.runPromise(Scope.extend(service.make("forgotten"), scope))
      const { ended } = run(["/bin/sleep", "60"], left)
      await until("the sleep in its cgroup", () => pidsIn(left).size === 1)
      const parents = left.procsFiles.map((f) => dirname(dirname(f)))
      // A different parent from the shared layer's: two gateways in one process do not meet.
      const shared = await makeCgroup("shared")
      expect(parents).not.toContain(dirname(dirname(shared.cgroup.procsFiles[0]!)))
      await own.dispose()
      expect((await ended).signal).toBe("SIGKILL")
      for (const parent of parents) expect(existsSync(parent)).toBe(false)
      expect(existsSync(shared.cgroup.procsFiles[0]!)).toBe(true)
    } finally {
      await own.dispose()
    }
  })

  it("a gateway that starts removes the cgroups a killed one left, and stops their orphaned agents", async () => {
    if (!cgroups.available) return expectNoLimits()
    // A pid that no longer runs: a gateway killed before its layer closed.
    const gone = spawnSync("/bin/true").pid
    const { cgroup: probe } = await makeCgroup("probe")
    const leftovers = probe.procsFiles.map((f) => join(dirname(dirname(dirname(f))), `clawdforge-${gone}-1`))
    const orphans = leftovers.map((dir) => join(dir, "agent-orphan-1"))
    for (const dir of orphans) mkdirSync(dir, { recursive: true })
    const { ended } = run(["/bin/sleep", "60"], { procsFiles: orphans.map((d) => join(d, "cgroup.procs")), oomKilled: Effect.succeed(false), memoryMb: 0 })
    await until("the orphan in its cgroup", () => readFileSync(join(orphans[0]!, "cgroup.procs"), "utf8").trim() !== "")
    const next = ManagedRuntime.make(layer)
    try {
      await next.runPromise(AgentCgroups)
      expect((await ended).signal).toBe("SIGKILL")
      for (const dir of leftovers) expect(existsSync(dir)).toBe(false)
    } finally {
      await next.dispose()
      for (const dir of [...orphans, ...leftovers]) if (existsSync(dir)) rmdirSync(dir)
    }
  })
})
