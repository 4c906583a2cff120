/**
 * `npm run bench` (`node --import tsx bench/run.ts`): what the gateway costs over talking to the
 * agent directly, on one machine, in one run, with the scripted agent answering at once.
 *
 * - turn round trip p50/p99: `POST /sessions/{id}/turn` on loopback with keep-alive, against the
 *   same prompts sent straight to the agent over one ACP connection (the floor), and against
 *   `acpx prompt -s NAME` on a warm acpx session (what a user would otherwise run);
 * - session create: `POST /sessions` against spawn + initialize + session/new done directly;
 * - turns per second with 1, 10 and 50 concurrent sessions, gateway against direct;
 * - gateway RSS per live session over 50 live sessions (agents excluded);
 * - `POST /run` against spawning the same claude stand-in directly;
 * - ledger: `GET /sessions` and one sweeper pass with 100,000+ rows.
 *
 * The gateway runs as a child process (`node --import tsx src/main.ts`, as `npm start` does), so
 * client and server do not share an event loop. Only the sweeper pass runs in-process (it has no
 * HTTP surface), on the gateway's own ledger file. Prints a table, writes `bench/results.json`.
 *
 * Environment: BENCH_CPU_PROF=<dir> writes a `--cpu-prof` profile of the main gateway there.
 */
import { ClientSideConnection, ndJsonStream, PROTOCOL_VERSION } from "@agentclientprotocol/sdk"
import { SqlClient } from "@effect/sql"
import { ConfigProvider, Effect, Layer, Logger, LogLevel, ManagedRuntime } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import http from "node:http"
import os from "node:os"
import { join, resolve } from "node:path"
import { performance } from "node:perf_hooks"
import { Readable, Writable } from "node:stream"
import { AgentPool } from "../src/services/sessions/AgentPool.js"
import { ClaudeRunner } from "../src/services/agents/ClaudeRunner.js"
import { layerServices } from "../src/Gateway.js"
import { sweepOnce } from "../src/services/sessions/Sweeper.js"
import { freePort } from "../test/support/freePort.js"

const root = resolve(import.meta.dirname, "..")
const scriptedAgent = join(root, "src/services/agents/demo-agent.mjs")
const fakeClaude = join(root, "test/fixtures/fake-claude.mjs")
const acpxBin = join(root, "node_modules/.bin/acpx")
const work = mkdtempSync(join(os.tmpdir(), "clawdforge-bench-"))

const token = `bench-${randomBytes(12).toString("hex")}`
const otherToken = `other-${randomBytes(12).toString("hex")}`
const appTokens = `bench=${token},other=${otherToken}`

const sizes = {
  turnWarmup: 300,
  turns: 2000,
  turnsInfo: 1000,
  createWarmup: 3,
  creates: 15,
  throughputWarmupMs: 500,
  throughputMs: 2500,
  acpxTurns: 10,
  runWarmup: 3,
  runs: 20,
  memorySessions: 50,
  ledgerFresh: 100_000,
  ledgerIdle: 2_000,
  ledgerExpired: 2_000,
  ledgerRecentlyClosed: 5_000,
  listWarmup: 10,
  lists: 100
}

// ---------------------------------------------------------------------------------------------
// Small helpers

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))
const now = () => performance.now()
const round = (x: number, digits = 3) => Number(x.toFixed(digits))

const percentile = (samples: ReadonlyArray<number>, p: number) => {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}
const summary = (samples: ReadonlyArray<number>) => ({
  n: samples.length,
  p50: round(percentile(samples, 50)),
  p99: round(percentile(samples, 99)),
  mean: round(samples.reduce((a, b) => a + b, 0) / samples.length),
  min: round(Math.min(...samples)),
  max: round(Math.max(...samples))
})

const mapLimit = async <A, B>(items: ReadonlyArray<A>, limit: number, f: (a: A, i: number) => Promise<B>) => {
  const out: Array<B> = new Array(items.length)
  let next = 0
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await f(items[i]!, i)
    }
  }))
  return out
}

const section = (title: string) => console.error(`[bench] ${title}`)

// ---------------------------------------------------------------------------------------------
// Process bookkeeping: every process this run starts (directly or through the gateway) is
// tracked by pid and ended at the end, whatever happens.

const children = new Set<ChildProcess>()
const track = (child: ChildProcess) => {
  children.add(child)
  child.once("exit", () => children.delete(child))
  return child
}
/** Agents the gateways started: their pids, to make sure none outlives the run. */
const gatewayAgents = new Set<number>()

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const pids = () => readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number)

const childPidsOf = (parent: number) =>
  pids().filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
      return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === parent
    } catch {
      return false
    }
  })

/** Processes whose environment says HOME=<home> (acpx's queue owner and its agent). */
const pidsWithHome = (home: string) =>
  pids().filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").includes(`HOME=${home}`)
    } catch {
      return false
    }
  })

/** CPU time (user + system, all threads) a process has used so far, in ms (10 ms ticks). */
const cpuMsOf = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return (Number(fields[11]) + Number(fields[12])) * (1000 / 100)
}

const vmRssKb = (pid: number) => {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"))
  return Number(line?.replace(/[^0-9]/g, "") ?? NaN)
}

const waitExit = (child: ChildProcess, ms: number) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve(true)
    : new Promise<boolean>((done) => {
      const timer = setTimeout(() => done(false), ms)
      child.once("exit", () => {
        clearTimeout(timer)
        done(true)
      })
    })

let cleanedUp = false
const leftovers: Array<string> = []
const cleanup = async () => {
  if (cleanedUp) return
  cleanedUp = true
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM")
  }
  await Promise.all([...children].map((child) => waitExit(child, 5000)))
  for (const child of children) child.kill("SIGKILL")
  for (const pid of gatewayAgents) {
    if (isAlive(pid)) {
      leftovers.push(`gateway agent ${pid}`)
      process.kill(pid, "SIGKILL")
    }
  }
  if (process.env.BENCH_KEEP === undefined) rmSync(work, { recursive: true, force: true })
  else console.error(`[bench] kept ${work}`)
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => void cleanup().finally(() => process.exit(130)))
}

// ---------------------------------------------------------------------------------------------
// The direct path: the agent over one ACP connection, no gateway.

interface DirectAgent {
  readonly child: ChildProcess
  readonly connection: ClientSideConnection
  readonly sessionId: string
}

const directDir = (() => {
  let n = 0
  return () => {
    const dir = join(work, "direct", String(n++))
    mkdirSync(dir, { recursive: true })
    return dir
  }
})()

/** spawn + initialize + session/new, as the gateway's driver does. */
const startDirect = async (cwd: string): Promise<DirectAgent> => {
  const child = track(spawn(process.execPath, [scriptedAgent], { cwd, stdio: ["pipe", "pipe", "ignore"] }))
  const stream = ndJsonStream(
    Writable.toWeb(child.stdin!) as WritableStream<Uint8Array>,
    Readable.toWeb(child.stdout!) as unknown as ReadableStream<Uint8Array>
  )
  const connection = new ClientSideConnection(() => ({
    requestPermission: async () => ({ outcome: { outcome: "cancelled" as const } }),
    sessionUpdate: async () => {}
  }), stream)
  await connection.initialize({
    protocolVersion: PROTOCOL_VERSION,
    clientCapabilities: { fs: { readTextFile: false, writeTextFile: false }, terminal: false },
    clientInfo: { name: "clawdforge-bench", version: "0" }
  })
  const { sessionId } = await connection.newSession({ cwd, mcpServers: [] })
  return { child, connection, sessionId }
}

const stopDirect = async (agent: DirectAgent) => {
  agent.child.kill("SIGTERM")
  if (!(await waitExit(agent.child, 3000))) agent.child.kill("SIGKILL")
}

const directTurn = (agent: DirectAgent) =>
  agent.connection.prompt({ sessionId: agent.sessionId, prompt: [{ type: "text", text: "bench" }] })

// ---------------------------------------------------------------------------------------------
// The gateway: `node --import tsx src/main.ts` as a child process, HTTP over keep-alive.

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: Infinity })

interface Reply {
  readonly status: number
  readonly body: any
}

/**
 * One request. A kept-alive socket the server closed while idle fails at once when reused
 * (ECONNRESET, nothing sent): such a request is sent again on a fresh socket, as Node's docs advise.
 */
const httpCall = (port: number, method: string, path: string, body?: unknown, bearer = token): Promise<Reply> =>
  httpOnce(port, method, path, body, bearer).catch((error) => {
    if (error?.reusedSocket === true && error?.code === "ECONNRESET") return httpOnce(port, method, path, body, bearer)
    throw error
  })

const httpOnce = (port: number, method: string, path: string, body: unknown, bearer: string) =>
  new Promise<Reply>((done, fail) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const headers: Record<string, string | number> = { authorization: `Bearer ${bearer}` }
    if (payload !== undefined) {
      headers["content-type"] = "application/json"
      headers["content-length"] = Buffer.byteLength(payload)
    }
    const req = http.request({ host: "127.0.0.1", port, method, path, agent: keepAlive, headers }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (chunk: Buffer) => chunks.push(chunk))
      res.on("error", fail)
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8")
        try {
          done({ status: res.statusCode ?? 0, body: text.length > 0 ? JSON.parse(text) : undefined })
        } catch (error) {
          fail(error)
        }
      })
    })
    req.on("error", (error) => fail(Object.assign(error, { reusedSocket: req.reusedSocket })))
    req.end(payload)
  })

const expectOk = (reply: Reply, what: string) => {
  if (reply.status !== 200) throw new Error(`${what}: HTTP ${reply.status} ${JSON.stringify(reply.body)}`)
  return reply.body
}

// Forces a GC and dumps process.memoryUsage() on SIGUSR2: a bench-side preload, src/ untouched.
const gcHook = "data:text/javascript," + encodeURIComponent(
  `import { writeFileSync } from "node:fs";
   process.on("SIGUSR2", () => {
     globalThis.gc?.(); globalThis.gc?.();
     if (process.env.BENCH_MEM_FILE) writeFileSync(process.env.BENCH_MEM_FILE, JSON.stringify(process.memoryUsage()));
   });`
)

interface Gateway {
  readonly child: ChildProcess
  readonly pid: number
  readonly port: number
  readonly dir: string
  readonly db: string
  readonly workspaces: string
  readonly memFile: string
  readonly call: (method: string, path: string, body?: unknown, bearer?: string) => Promise<Reply>
}

const startGateway = async (name: string, env: Record<string, string>, nodeArgs: Array<string> = []) => {
  const dir = join(work, name)
  mkdirSync(dir, { recursive: true })
  const port = await freePort()
  const db = join(dir, "ledger.db")
  const workspaces = join(dir, "workspaces")
  const memFile = join(dir, "memory.json")
  // Logs go to a file, as they would under a supervisor: the cost of writing them is counted.
  const log = openSync(join(dir, "gateway.log"), "w")
  const child = track(spawn(process.execPath, [...nodeArgs, "--expose-gc", "--import", "tsx", "--import", gcHook, "src/main.ts"], {
    cwd: root,
    env: {
      ...process.env,
      CLAWDFORGE_HOST: "127.0.0.1",
      CLAWDFORGE_PORT: String(port),
      CLAWDFORGE_DB: db,
      CLAWDFORGE_WORKSPACE_ROOT: workspaces,
      CLAWDFORGE_APP_TOKENS: appTokens,
      CLAWDFORGE_MAX_LIVE_SESSIONS: "60",
      CLAWDFORGE_SWEEP_INTERVAL_SECS: "3600",
      CLAWDFORGE_CLAUDE_BIN: fakeClaude,
      BENCH_MEM_FILE: memFile,
      ...env
    },
    stdio: ["ignore", log, log]
  }))
  closeSync(log)
  const deadline = Date.now() + 30_000
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`gateway ${name} exited early:\n${readFileSync(join(dir, "gateway.log"), "utf8")}`)
    }
    try {
      if ((await httpCall(port, "GET", "/healthz")).status === 200) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`gateway ${name} did not become healthy`)
    await sleep(50)
  }
  const gateway: Gateway = {
    child,
    pid: child.pid!,
    port,
    dir,
    db,
    workspaces,
    memFile,
    call: (method, path, body, bearer) => httpCall(port, method, path, body, bearer)
  }
  return gateway
}

const noteAgents = (gateway: Gateway) => {
  for (const pid of childPidsOf(gateway.pid)) gatewayAgents.add(pid)
}

const stopGateway = async (gateway: Gateway) => {
  noteAgents(gateway)
  gateway.child.kill("SIGTERM")
  if (!(await waitExit(gateway.child, 15_000))) {
    leftovers.push(`gateway ${gateway.pid} ignored SIGTERM`)
    gateway.child.kill("SIGKILL")
  }
  // Its agents die with their sessions' scopes; give them a moment, then check.
  const deadline = Date.now() + 5000
  while ([...gatewayAgents].some(isAlive) && Date.now() < deadline) await sleep(50)
}

const createSession = async (gateway: Gateway) =>
  expectOk(await gateway.call("POST", "/sessions", { agent: "echo" }), "create").session_id as string

const closeSession = async (gateway: Gateway, id: string) => {
  expectOk(await gateway.call("DELETE", `/sessions/${id}`), "close")
}

const gatewayTurn = async (gateway: Gateway, id: string) =>
  expectOk(await gateway.call("POST", `/sessions/${id}/turn`, { prompt: "bench" }), "turn")

/** Settles, forces a GC through the preload, and reads VmRSS and the heap figures. */
const memorySnapshot = async (gateway: Gateway) => {
  await sleep(1000)
  const rssSettledKb = vmRssKb(gateway.pid)
  rmSync(gateway.memFile, { force: true })
  process.kill(gateway.pid, "SIGUSR2")
  const deadline = Date.now() + 5000
  while (!existsSync(gateway.memFile) && Date.now() < deadline) await sleep(20)
  await sleep(50)
  const usage = JSON.parse(readFileSync(gateway.memFile, "utf8")) as NodeJS.MemoryUsage
  return { rssSettledKb, rssAfterGcKb: vmRssKb(gateway.pid), heapUsedKb: Math.round(usage.heapUsed / 1024) }
}

// ---------------------------------------------------------------------------------------------
// Measurements

/**
 * Sequential round trips after a warm-up; with the CPU time this process (the client) and,
 * when given, another process (the gateway) spent per round trip, in ms.
 */
const timeTurns = async (turn: () => Promise<unknown>, warmup: number, count: number, serverPid?: number) => {
  for (let i = 0; i < warmup; i++) await turn()
  const samples: Array<number> = []
  const client0 = process.cpuUsage()
  const server0 = serverPid === undefined ? 0 : cpuMsOf(serverPid)
  for (let i = 0; i < count; i++) {
    const t0 = now()
    await turn()
    samples.push(now() - t0)
  }
  const client = process.cpuUsage(client0)
  return {
    ...summary(samples),
    clientCpuMs: round((client.user + client.system) / 1000 / count),
    ...(serverPid === undefined ? {} : { serverCpuMs: round((cpuMsOf(serverPid) - server0) / count) })
  }
}

/** Aggregate turns per second: one loop per session, counted in a window after a warm-up. */
const throughput = async (loops: ReadonlyArray<() => Promise<unknown>>, serverPid?: number) => {
  const start = now()
  const from = start + sizes.throughputWarmupMs
  const until = from + sizes.throughputMs
  let counted = 0
  let server0 = 0
  let server1 = 0
  const window = [
    sleep(sizes.throughputWarmupMs).then(() => server0 = serverPid === undefined ? 0 : cpuMsOf(serverPid)),
    sleep(sizes.throughputWarmupMs + sizes.throughputMs).then(() => server1 = serverPid === undefined ? 0 : cpuMsOf(serverPid))
  ]
  await Promise.all([...window, ...loops.map(async (turn) => {
    while (now() < until) {
      await turn()
      const t = now()
      if (t >= from && t <= until) counted++
    }
  })])
  return {
    turnsPerSecond: round(counted / (sizes.throughputMs / 1000), 0),
    // The gateway's CPU per turn in the window (the process, all its threads).
    serverCpuMsPerTurn: serverPid === undefined ? undefined : round((server1 - server0) / counted)
  }
}

const directLatency = async () => {
  const agent = await startDirect(directDir())
  try {
    return await timeTurns(() => directTurn(agent), sizes.turnWarmup, sizes.turns)
  } finally {
    await stopDirect(agent)
  }
}

const gatewayLatency = async (gateway: Gateway, turns: number) => {
  const id = await createSession(gateway)
  noteAgents(gateway)
  try {
    return await timeTurns(() => gatewayTurn(gateway, id), sizes.turnWarmup, turns, gateway.pid)
  } finally {
    await closeSession(gateway, id)
  }
}

const directCreate = async () => {
  const samples: Array<number> = []
  for (let i = 0; i < sizes.createWarmup + sizes.creates; i++) {
    const cwd = directDir()
    const t0 = now()
    const agent = await startDirect(cwd)
    const elapsed = now() - t0
    if (i >= sizes.createWarmup) samples.push(elapsed)
    await stopDirect(agent)
  }
  return summary(samples)
}

const gatewayCreate = async (gateway: Gateway) => {
  const samples: Array<number> = []
  for (let i = 0; i < sizes.createWarmup + sizes.creates; i++) {
    const t0 = now()
    const id = await createSession(gateway)
    const elapsed = now() - t0
    if (i >= sizes.createWarmup) samples.push(elapsed)
    noteAgents(gateway)
    await closeSession(gateway, id)
  }
  return summary(samples)
}

const directThroughput = async (n: number) => {
  const agents = await mapLimit(Array.from({ length: n }), 10, () => startDirect(directDir()))
  try {
    return (await throughput(agents.map((agent) => () => directTurn(agent)))).turnsPerSecond
  } finally {
    await Promise.all(agents.map(stopDirect))
  }
}

const gatewaySessions = async (gateway: Gateway, n: number) => {
  const ids = await mapLimit(Array.from({ length: n }), 5, () => createSession(gateway))
  noteAgents(gateway)
  return ids
}

const gatewayThroughput = async (gateway: Gateway, ids: ReadonlyArray<string>) => {
  try {
    return await throughput(ids.map((id) => () => gatewayTurn(gateway, id)), gateway.pid)
  } finally {
    await mapLimit(ids, 10, (id) => closeSession(gateway, id))
  }
}

const spawnFakeClaude = () =>
  new Promise<void>((done, fail) => {
    const child = track(spawn(fakeClaude, ["-p", "bench", "--output-format", "json"], { stdio: ["pipe", "pipe", "pipe"] }))
    let out = ""
    child.stdout!.on("data", (chunk) => out += chunk)
    child.stderr!.resume()
    child.stdin!.end()
    child.once("error", fail)
    child.once("close", (code) => {
      if (code !== 0) return fail(new Error(`fake claude exit ${code}`))
      JSON.parse(out)
      done()
    })
  })

const timeRuns = async (run: () => Promise<unknown>) => {
  const samples: Array<number> = []
  for (let i = 0; i < sizes.runWarmup + sizes.runs; i++) {
    const t0 = now()
    await run()
    if (i >= sizes.runWarmup) samples.push(now() - t0)
  }
  return summary(samples)
}

/** `acpx prompt -s NAME` on a warm acpx session: time to the result line, and to exit. */
const acpxPrompts = async () => {
  const home = join(work, "acpx-home")
  const cwd = join(work, "acpx-cwd")
  mkdirSync(home, { recursive: true })
  mkdirSync(cwd, { recursive: true })
  const agentCommand = `${process.execPath} ${scriptedAgent}`
  const acpx = (...args: Array<string>) =>
    new Promise<{ code: number | null; resultMs: number; exitMs: number; stdout: string }>((done, fail) => {
      const t0 = now()
      let resultMs = NaN
      let stdout = ""
      const child = track(spawn(acpxBin, ["--format", "json", "--agent", agentCommand, ...args], {
        cwd,
        env: { ...process.env, HOME: home },
        stdio: ["ignore", "pipe", "pipe"]
      }))
      child.stdout!.on("data", (chunk: Buffer) => {
        stdout += chunk
        if (Number.isNaN(resultMs) && /"result":\{"stopReason"/.test(stdout)) resultMs = now() - t0
      })
      child.stderr!.resume()
      child.once("error", fail)
      child.once("close", (code) => done({ code, resultMs, exitMs: now() - t0, stdout }))
    })
  const created = await acpx("sessions", "new", "--name", "bench")
  if (created.code !== 0) throw new Error(`acpx sessions new failed: ${created.stdout}`)
  const toResult: Array<number> = []
  const toExit: Array<number> = []
  try {
    for (let i = 0; i < 1 + sizes.acpxTurns; i++) {
      const turn = await acpx("prompt", "-s", "bench", "bench")
      if (turn.code !== 0 || Number.isNaN(turn.resultMs)) throw new Error(`acpx prompt failed: ${turn.stdout}`)
      if (i === 0) continue // the first prompt starts the agent: warm-up
      toResult.push(turn.resultMs)
      toExit.push(turn.exitMs)
    }
  } finally {
    await acpx("sessions", "close", "bench")
    const deadline = Date.now() + 5000
    while (pidsWithHome(home).length > 0 && Date.now() < deadline) await sleep(100)
    for (const pid of pidsWithHome(home)) {
      leftovers.push(`acpx process ${pid}`)
      process.kill(pid, "SIGKILL")
    }
  }
  return { toResult: summary(toResult), toExit: summary(toExit) }
}

/** Fills the gateway's ledger file with a large mix of rows, then lists and sweeps. */
const ledgerBench = async (gateway: Gateway) => {
  // The gateway's services in this process, on the gateway's own ledger file: the sweeper pass
  // has no HTTP surface. Its start-up pass runs now, before the stale rows exist.
  const runtime = ManagedRuntime.make(
    layerServices(AgentPool.Default, ClaudeRunner.Default).pipe(
      Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(
        new Map([
          ["CLAWDFORGE_DB", gateway.db],
          ["CLAWDFORGE_WORKSPACE_ROOT", gateway.workspaces],
          ["CLAWDFORGE_APP_TOKENS", appTokens],
          ["CLAWDFORGE_SWEEP_INTERVAL_SECS", "3600"]
        ])
      ))),
      Layer.provide(Logger.minimumLogLevel(LogLevel.None))
    )
  )
  try {
    await runtime.runPromise(Effect.void)
    await sleep(300)
    const nowS = Math.floor(Date.now() / 1000)
    const ttl = 3600
    const hardTtl = 604800
    let seq = 0
    const row = (app: string, created: number, lastTurn: number | null, closed: number | null) => {
      const id = `b${(seq++).toString(36).padStart(7, "0")}${randomBytes(9).toString("base64url")}`
      return {
        session_id: id,
        app_name: app,
        agent: "echo",
        meta: JSON.stringify({ ticket: `T-${seq}`, user: "bench" }),
        cwd: join(gateway.workspaces, app, id),
        permission_mode: "approve-reads",
        agent_session_id: `sa-${randomBytes(8).toString("hex")}`,
        created_at: created,
        last_turn_at: lastTurn,
        closed_at: closed,
        turn_count: lastTurn === null ? 0 : 3
      }
    }
    const rows: Array<ReturnType<typeof row>> = []
    // 80% of the fresh open rows belong to the app that lists.
    for (let i = 0; i < sizes.ledgerFresh; i++) {
      const created = nowS - Math.floor(Math.random() * 1800)
      rows.push(row(i % 5 === 4 ? "other" : "bench", created, i % 2 === 0 ? null : created + 60, null))
    }
    for (let i = 0; i < sizes.ledgerIdle; i++) {
      rows.push(row(i % 2 ? "other" : "bench", nowS - ttl - 7200, nowS - ttl - 60, null))
    }
    for (let i = 0; i < sizes.ledgerExpired; i++) {
      rows.push(row(i % 2 ? "other" : "bench", nowS - hardTtl - 90_000, nowS - hardTtl - 80_000, nowS - hardTtl - 3600))
    }
    for (let i = 0; i < sizes.ledgerRecentlyClosed; i++) {
      rows.push(row(i % 2 ? "other" : "bench", nowS - 7200, nowS - 5000, nowS - 1000))
    }
    const events = rows.flatMap((r) => {
      const create = { session_id: r.session_id, at: r.created_at, event: "create", detail: `{"agent":"echo"}` }
      if (r.last_turn_at === null) return [create]
      const turn = { session_id: r.session_id, at: r.last_turn_at, event: "turn", detail: `{"turn_index":3}` }
      return [create, turn, turn]
    })
    const t0 = now()
    await runtime.runPromise(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql.withTransaction(Effect.gen(function*() {
        for (let i = 0; i < rows.length; i += 1000) yield* sql`INSERT INTO sessions ${sql.insert(rows.slice(i, i + 1000))}`
        for (let i = 0; i < events.length; i += 2000) {
          yield* sql`INSERT INTO session_events ${sql.insert(events.slice(i, i + 2000))}`
        }
      }))
      yield* sql`PRAGMA wal_checkpoint(TRUNCATE)`
      yield* sql`ANALYZE`
    }))
    const insertMs = now() - t0
    const total = await runtime.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql<{ sessions: number; events: number }>`SELECT (SELECT count(*) FROM sessions) AS sessions,
        (SELECT count(*) FROM session_events) AS events`))

    // GET /sessions through the gateway process: the app owning ~80% of the rows, default limit.
    const list = async () => {
      const body = expectOk(await gateway.call("GET", "/sessions"), "list")
      if (body.count !== 100) throw new Error(`list returned ${body.count} sessions`)
    }
    const listOpen = async () => expectOk(await gateway.call("GET", "/sessions?status=open"), "list open")
    const listSummary = await timeTurns(list, sizes.listWarmup, sizes.lists)
    const listOpenSummary = await timeTurns(listOpen, sizes.listWarmup, sizes.lists)

    // One sweeper pass with work to do, then one with nothing left to do.
    let t = now()
    const counts = await runtime.runPromise(sweepOnce)
    const sweepMs = now() - t
    t = now()
    const idleCounts = await runtime.runPromise(sweepOnce)
    const idleSweepMs = now() - t
    return {
      rows: total[0]!,
      insertMs: round(insertMs, 0),
      list: listSummary,
      listOpen: listOpenSummary,
      sweep: { ms: round(sweepMs, 1), ...counts },
      sweepNothingToDo: { ms: round(idleSweepMs, 1), ...idleCounts }
    }
  } finally {
    await runtime.dispose()
  }
}

// ---------------------------------------------------------------------------------------------
// The run

const main = async () => {
  const started = Date.now()
  const cpus = os.cpus()
  const machine = {
    cpu: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    memory_gb: round(os.totalmem() / 2 ** 30, 1),
    loadavg_at_start: os.loadavg().map((x) => round(x, 2)),
    date: new Date().toISOString()
  }
  section(`gateway (logging off)${process.env.BENCH_CPU_PROF ? ", cpu profile on" : ""}`)
  const profArgs = process.env.BENCH_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []
  const gateway = await startGateway("gateway", { CLAWDFORGE_LOG_LEVEL: "OFF" }, profArgs)
  const results: Record<string, unknown> = {}
  try {
    // A light warm-up (code paths loaded, the SDK, the ledger), then memory on a clean heap.
    {
      const id = await createSession(gateway)
      for (let j = 0; j < 20; j++) await gatewayTurn(gateway, id)
      await closeSession(gateway, id)
    }

    section(`memory over ${sizes.memorySessions} live sessions, then throughput 50`)
    const before = await memorySnapshot(gateway)
    const ids = await gatewaySessions(gateway, sizes.memorySessions)
    await Promise.all(ids.map((id) => gatewayTurn(gateway, id)))
    const after = await memorySnapshot(gateway)
    const perSession = (key: keyof typeof before) => round((after[key] - before[key]) / sizes.memorySessions, 1)
    const memory = {
      sessions: sizes.memorySessions,
      before,
      after,
      perSessionKb: { rssSettled: perSession("rssSettledKb"), rssAfterGc: perSession("rssAfterGcKb"), heapUsed: perSession("heapUsedKb") }
    }
    const tput: Record<string, { direct: number; gateway: number; gatewayCpuMsPerTurn: number | undefined }> = {}
    const direct50 = await directThroughput(50)
    const gw50 = await gatewayThroughput(gateway, ids)
    tput[50] = { direct: direct50, gateway: gw50.turnsPerSecond, gatewayCpuMsPerTurn: gw50.serverCpuMsPerTurn }

    // The full warm-up for the latency figures.
    {
      const id = await createSession(gateway)
      for (let j = 0; j < 300; j++) await gatewayTurn(gateway, id)
      await closeSession(gateway, id)
    }

    section("turn latency")
    const turnDirect = await directLatency()
    const turnGateway = await gatewayLatency(gateway, sizes.turns)

    section("session create")
    const createDirect = await directCreate()
    const createGateway = await gatewayCreate(gateway)

    section("throughput 1, 10")
    for (const n of [1, 10]) {
      const direct = await directThroughput(n)
      const gw = await gatewayThroughput(gateway, await gatewaySessions(gateway, n))
      tput[n] = { direct, gateway: gw.turnsPerSecond, gatewayCpuMsPerTurn: gw.serverCpuMsPerTurn }
    }

    section("/run")
    const runDirect = await timeRuns(spawnFakeClaude)
    const runGateway = await timeRuns(async () => expectOk(await gateway.call("POST", "/run", { prompt: "bench" }), "run"))

    section("ledger (100k rows)")
    const ledger = await ledgerBench(gateway)

    await stopGateway(gateway)

    section("gateway (logging Info) turn latency")
    const infoGateway = await startGateway("gateway-info", { CLAWDFORGE_LOG_LEVEL: "INFO" })
    let turnInfo: Awaited<ReturnType<typeof gatewayLatency>>
    try {
      turnInfo = await gatewayLatency(infoGateway, sizes.turnsInfo)
    } finally {
      await stopGateway(infoGateway)
    }

    section("acpx prompt on a warm session")
    const acpx = await acpxPrompts()

    Object.assign(results, {
      turn: { direct: turnDirect, gateway: turnGateway, gatewayLogInfo: turnInfo, acpx },
      create: { direct: createDirect, gateway: createGateway },
      throughput: tput,
      memory,
      run: { direct: runDirect, gateway: runGateway },
      ledger
    })
  } finally {
    if (gateway.child.exitCode === null) await stopGateway(gateway)
  }

  const r = results as any
  const turnRatio = r.turn.gateway.p50 / r.turn.direct.p50
  const createRatio = r.create.gateway.p50 / r.create.direct.p50
  const targets = {
    turn_p50_under_2ms: r.turn.gateway.p50 < 2,
    turn_p50_within_3x_direct: turnRatio <= 3,
    create_within_1_1x_direct: createRatio <= 1.1,
    throughput_at_least_half_direct: Object.fromEntries(
      Object.entries(r.throughput as Record<string, { direct: number; gateway: number }>).map((
        [n, t]
      ) => [n, t.gateway >= t.direct / 2])
    ),
    memory_under_256kb_per_session: Math.max(r.memory.perSessionKb.rssAfterGc, r.memory.perSessionKb.heapUsed) < 256,
    sweeper_pass_under_50ms: r.ledger.sweep.ms < 50
  }

  // The table.
  const pf = (ok: boolean) => ok ? "pass" : "MISS"
  const ms = (x: number) => x.toFixed(x < 10 ? 2 : 1)
  const lines: Array<Array<string>> = [["metric", "gateway", "baseline", "ratio", "target", ""]]
  const add = (...cells: Array<string>) => lines.push(cells)
  add("turn p50 ms", ms(r.turn.gateway.p50), `${ms(r.turn.direct.p50)} direct`, `${turnRatio.toFixed(2)}x`,
    "<2 ms, <=3x direct", pf(targets.turn_p50_under_2ms && targets.turn_p50_within_3x_direct))
  add("turn p99 ms", ms(r.turn.gateway.p99), `${ms(r.turn.direct.p99)} direct`,
    `${(r.turn.gateway.p99 / r.turn.direct.p99).toFixed(2)}x`, "", "")
  add("CPU ms/turn", `${ms(r.turn.gateway.serverCpuMs)} gw`, `${ms(r.turn.direct.clientCpuMs)} client`,
    `+${ms(r.turn.gateway.clientCpuMs)} http cl`, "", "")
  add("turn p50 ms, log Info", ms(r.turn.gatewayLogInfo.p50), `${ms(r.turn.gateway.p50)} log off`,
    `${(r.turn.gatewayLogInfo.p50 / r.turn.gateway.p50).toFixed(2)}x`, "", "")
  add("acpx prompt p50 ms", "", `${ms(r.turn.acpx.toResult.p50)} result line`,
    `${ms(r.turn.acpx.toExit.p50)} exit`, "", "")
  add("create p50 ms", ms(r.create.gateway.p50), `${ms(r.create.direct.p50)} direct`, `${createRatio.toFixed(2)}x`,
    "<=1.1x direct", pf(targets.create_within_1_1x_direct))
  for (const n of ["1", "10", "50"]) {
    const t = r.throughput[n] as { direct: number; gateway: number; gatewayCpuMsPerTurn: number }
    add(`turns/s, ${n} session${n === "1" ? "" : "s"}`, String(t.gateway), `${t.direct} direct`,
      `${(t.gateway / t.direct).toFixed(2)}x, gw ${ms(t.gatewayCpuMsPerTurn)} ms cpu`,
      ">=0.5x direct", pf(t.gateway >= t.direct / 2))
  }
  add("KB/session (50), GC'd", `${r.memory.perSessionKb.rssAfterGc} RSS`,
    `${r.memory.before.rssAfterGcKb}->${r.memory.after.rssAfterGcKb} KB`,
    `${r.memory.perSessionKb.heapUsed} heap`, "<256 KB (max)", pf(targets.memory_under_256kb_per_session))
  add("  (settled, no GC)", String(r.memory.perSessionKb.rssSettled),
    `${r.memory.before.rssSettledKb}->${r.memory.after.rssSettledKb} KB`, "", "", "")
  add("/run p50 ms", ms(r.run.gateway.p50), `${ms(r.run.direct.p50)} spawn`,
    `+${ms(r.run.gateway.p50 - r.run.direct.p50)} ms`, "", "")
  add(`GET /sessions p50 ms`, ms(r.ledger.list.p50), `p99 ${ms(r.ledger.list.p99)}`,
    `${r.ledger.rows.sessions} rows`, "", "")
  add(`GET ?status=open p50 ms`, ms(r.ledger.listOpen.p50), `p99 ${ms(r.ledger.listOpen.p99)}`, "", "", "")
  add("sweeper pass ms", ms(r.ledger.sweep.ms), `${ms(r.ledger.sweepNothingToDo.ms)} idle pass`,
    `-${r.ledger.sweep.soft_closed}/${r.ledger.sweep.hard_deleted} rows`, "<50 ms", pf(targets.sweeper_pass_under_50ms))
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => (l[i] ?? "").length)))
  const table = lines.map((l) => l.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n")

  const header =
    `clawdforge bench: ${machine.cpu} x ${machine.cores} cores, node ${machine.node}, ${machine.date}, load ${machine.loadavg_at_start.join(" ")}`
  console.log(header)
  console.log(table)
  const output = { machine, sizes, results, targets, duration_s: round((Date.now() - started) / 1000, 1), table }
  writeFileSync(join(root, "bench/results.json"), JSON.stringify(output, null, 2) + "\n")
  console.log(`results: bench/results.json (${output.duration_s} s)`)
}

try {
  await main()
} catch (error) {
  console.error(error)
  process.exitCode = 1
} finally {
  await cleanup()
  if (leftovers.length > 0) {
    console.error(`[bench] had to kill: ${leftovers.join(", ")}`)
    process.exitCode = 1
  }
  keepAlive.destroy()
}
