/**
 * The two HTTP gateways the bench times with the same client: clawdforge as `npm start` runs it
 * (its `node dist/...` command from package.json, on the snapshot `prepareGateway` took), and the bare pass-through gateway (`node bench/bare-gateway.mjs`). Each is
 * its own child process, so client and server do not share an event loop.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from "node:fs"
import { join, resolve } from "node:path"
import { freePort } from "../../test/support/freePort.js"
import { callJson, expectOk, isHealthy, type Reply, streamSse } from "./http.js"
import { gatewayArgs } from "./build.js"
import { bareGatewayMain, demoAgent, fakeClaude, root } from "./paths.js"
import { hasExited, leftovers, noteAgentsOf, sleep, stopProcess, track, vmRssKb, waitForAgentsToDie, work } from "./processes.js"
import { now } from "./stats.js"

export const token = `bench-${randomBytes(12).toString("hex")}`
export const otherToken = `other-${randomBytes(12).toString("hex")}`
export const appTokens = `bench=${token},other=${otherToken}`

export interface Gateway {
  readonly name: string
  readonly child: ChildProcess
  readonly pid: number
  readonly port: number
  /** Its data folder (ledger, workspaces, log). */
  readonly dir: string
  /** From spawn to the first `/healthz` 200, in ms. */
  readonly startMs: number
  readonly call: (method: string, path: string, body?: unknown, bearer?: string) => Promise<Reply>
}

export interface ClawdforgeGateway extends Gateway {
  readonly db: string
  readonly workspaces: string
}

export interface StartOptions {
  /** Extra environment, e.g. `CLAWDFORGE_LOG_LEVEL`. */
  readonly env?: Record<string, string>
  /** Node flags before the script, e.g. `--cpu-prof` (see `cpuProfileArgs`). */
  readonly nodeArgs?: ReadonlyArray<string>
  /** Preload the GC hook, for `memorySnapshot`. */
  readonly gcHook?: boolean
}

// Forces a GC and writes process.memoryUsage() on SIGUSR2: a bench-side preload, src/ untouched.
const gcHook = "data:text/javascript," + encodeURIComponent(
  `import { writeFileSync } from "node:fs";
   process.on("SIGUSR2", () => {
     globalThis.gc?.(); globalThis.gc?.();
     if (process.env.BENCH_MEM_FILE) writeFileSync(process.env.BENCH_MEM_FILE, JSON.stringify(process.memoryUsage()));
   });`
)
const gcHookArgs = ["--expose-gc", "--import", gcHook]

let names = 0

/** With BENCH_CPU_PROF set, the flags that write a gateway's `--cpu-prof` profile there on exit (in `sub` of it). */
export const cpuProfileArgs = (sub = ""): ReadonlyArray<string> => {
  const dir = process.env.BENCH_CPU_PROF
  return dir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${join(resolve(dir), sub)}`]
}

/** Spawns `node [flags] ...script` in a fresh data folder and polls `/healthz` every 5 ms until it is 200. */
const spawnHealthy = async (
  name: string,
  script: ReadonlyArray<string>,
  env: (dir: string, port: number) => Record<string, string>,
  options: StartOptions
) => {
  const dir = join(work, `${name}-${names++}`)
  mkdirSync(dir, { recursive: true })
  const port = await freePort()
  // Output goes to a file, as under a supervisor: writing the log lines is part of the cost.
  const logFile = join(dir, "output.log")
  const log = openSync(logFile, "w")
  const args = [...(options.gcHook === true ? gcHookArgs : []), ...(options.nodeArgs ?? []), ...script]
  const t0 = now()
  const child = track(spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, BENCH_MEM_FILE: join(dir, "memory.json"), ...env(dir, port), ...options.env },
    stdio: ["ignore", log, log]
  }))
  closeSync(log)
  const deadline = Date.now() + 30_000
  while (!(await isHealthy(port))) {
    if (hasExited(child)) throw new Error(`${name} exited early:\n${readFileSync(logFile, "utf8")}`)
    if (Date.now() > deadline) throw new Error(`${name} did not become healthy:\n${readFileSync(logFile, "utf8")}`)
    await sleep(5)
  }
  const startMs = now() - t0
  const call = (method: string, path: string, body?: unknown, bearer = token) => callJson(port, method, path, body, bearer)
  return { name, child, pid: child.pid!, port, dir, startMs, call }
}

/** clawdforge exactly as `npm start` runs it, with default logging unless `env` says otherwise. */
export const startClawdforge = async (options: StartOptions = {}): Promise<ClawdforgeGateway> => {
  const gateway = await spawnHealthy("clawdforge", gatewayArgs(), (dir, port) => ({
    CLAWDFORGE_HOST: "127.0.0.1",
    CLAWDFORGE_PORT: String(port),
    CLAWDFORGE_DB: join(dir, "ledger.db"),
    CLAWDFORGE_WORKSPACE_ROOT: join(dir, "workspaces"),
    CLAWDFORGE_APP_TOKENS: appTokens,
    CLAWDFORGE_MAX_LIVE_SESSIONS: "60",
    CLAWDFORGE_SWEEP_INTERVAL_SECS: "3600",
    CLAWDFORGE_CLAUDE_BIN: fakeClaude
  }), options)
  return { ...gateway, db: join(gateway.dir, "ledger.db"), workspaces: join(gateway.dir, "workspaces") }
}

/** The bare pass-through gateway, on plain node. */
export const startBare = (options: StartOptions = {}): Promise<Gateway> =>
  spawnHealthy("bare", [bareGatewayMain], (dir, port) => ({
    BARE_PORT: String(port),
    BARE_TOKEN: token,
    BARE_AGENT: demoAgent,
    BARE_WORKSPACES: join(dir, "workspaces")
  }), options)

/** SIGTERM (clawdforge drains its sessions), then checks that the agents it started died with it. */
export const stopGateway = async (gateway: Gateway) => {
  if (hasExited(gateway.child)) return
  noteAgentsOf(gateway.pid)
  if (!(await stopProcess(gateway.child, 15_000))) leftovers.push(`${gateway.name} ${gateway.pid} ignored SIGTERM`)
  await waitForAgentsToDie(5000)
}

export const createSession = async (gateway: Gateway) => {
  const id = expectOk(await gateway.call("POST", "/sessions", { agent: "echo" }), `${gateway.name} create`)
    .session_id as string
  noteAgentsOf(gateway.pid)
  return id
}

export const closeSession = async (gateway: Gateway, id: string) => {
  expectOk(await gateway.call("DELETE", `/sessions/${id}`), `${gateway.name} close`)
}

export const turn = async (gateway: Gateway, id: string, prompt = "bench") =>
  expectOk(await gateway.call("POST", `/sessions/${id}/turn`, { prompt }), `${gateway.name} turn`)

export const streamTurn = (gateway: Gateway, id: string, prompt: string) =>
  streamSse(gateway.port, `/sessions/${id}/turn/stream`, { prompt }, token)

/** Settles, forces a GC through the preload (start with `gcHook`), and reads VmRSS and the heap. */
export const memorySnapshot = async (gateway: Gateway) => {
  await sleep(1000)
  const rssSettledKb = vmRssKb(gateway.pid)
  const memFile = join(gateway.dir, "memory.json")
  rmSync(memFile, { force: true })
  process.kill(gateway.pid, "SIGUSR2")
  const deadline = Date.now() + 5000
  while (!existsSync(memFile) && Date.now() < deadline) await sleep(20)
  await sleep(50)
  const usage = JSON.parse(readFileSync(memFile, "utf8")) as NodeJS.MemoryUsage
  return { rssSettledKb, rssAfterGcKb: vmRssKb(gateway.pid), heapUsedKb: Math.round(usage.heapUsed / 1024) }
}
