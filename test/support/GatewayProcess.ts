import { type ChildProcess, spawn } from "node:child_process"
import { join, resolve } from "node:path"
import { afterAll } from "vitest"
import { freePort } from "./freePort.js"
import { ledgerIn } from "./Ledgers.js"
import { tempDir } from "./TempDirs.js"
import { appName, appToken, otherApp, otherToken } from "./TestGateway.js"

const root = resolve(import.meta.dirname, "../..")

// Every process a test starts here is stopped when its file ends, even when the test timed out:
// SIGTERM first, so a gateway closes its sessions and agents as it would in production; SIGKILL
// for whatever is still running 5 s later. The file's temp folders go after this (TempDirs.ts).
const started = new Set<ChildProcess>()
afterAll(async () => {
  const running = [...started].filter((child) => child.exitCode === null && child.signalCode === null)
  await Promise.all(running.map((child) =>
    new Promise<void>((done) => {
      const kill = setTimeout(() => child.kill("SIGKILL"), 5_000)
      child.once("exit", () => {
        clearTimeout(kill)
        done()
      })
      child.kill("SIGTERM")
    })
  ))
  started.clear()
})
// `node dist/app/main.js`, as `npm start` runs it (the global setup builds it): one process, so
// signals reach the gateway itself.
const gatewayArgs = ["dist/app/main.js"]

export { freePort }

export interface GatewayProcess {
  readonly child: ChildProcess
  readonly url: string
  readonly output: () => string
  readonly exited: Promise<number | null>
  /** SIGTERM, then wait for the exit code. */
  readonly stop: (signal?: NodeJS.Signals) => Promise<number | null>
}

/** The fresh data folder a gateway process keeps its ledger and workspaces in (removed at the end of the test file). */
export const dataDir = () => tempDir("clawdforge-gw-")

/** Runs the compiled gateway as `npm start` does, and waits until `/healthz` answers; its ledger is `ledgerIn(data)`. */
export const startGateway = async (env: Record<string, string>, data = dataDir()): Promise<GatewayProcess> => {
  const port = await freePort()
  const child = spawn(process.execPath, gatewayArgs, {
    cwd: root,
    env: {
      ...process.env,
      CLAWDFORGE_PORT: String(port),
      CLAWDFORGE_DB: await ledgerIn(data),
      CLAWDFORGE_WORKSPACE_ROOT: join(data, "workspaces"),
      CLAWDFORGE_APP_TOKENS: `${appName}=${appToken},${otherApp}=${otherToken}`,
      // A temp folder of its own, removed with the test file's: what the gateway keeps there (the
      // egress proxy's sockets) goes too when a test SIGKILLs it.
      TMPDIR: tempDir("clawdforge-gw-tmp-"),
      // The scripted agent's log and pids must be the host's: the sandbox has tests of its own.
      CLAWDFORGE_SANDBOX: "off",
      ...env
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  started.add(child)
  let output = ""
  child.stdout!.on("data", (chunk) => output += chunk)
  child.stderr!.on("data", (chunk) => output += chunk)
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)))
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 20_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`gateway exited early (${child.exitCode}):\n${output}`)
    try {
      if ((await fetch(`${url}/healthz`)).ok) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL")
      throw new Error(`gateway did not become healthy:\n${output}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    child,
    url,
    output: () => output,
    exited,
    stop: (signal = "SIGTERM") => {
      if (child.exitCode === null) child.kill(signal)
      return exited
    }
  }
}

export interface ProcessResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `node <args>` in the project and collects what it prints until it exits. */
export const runToExit = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  new Promise<ProcessResult>((done) => {
    const child = spawn(process.execPath, args, { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] })
    started.add(child)
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => stdout += chunk)
    child.stderr.on("data", (chunk) => stderr += chunk)
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000)
    child.once("exit", (code) => {
      clearTimeout(timer)
      done({ code, stdout, stderr })
    })
  })

/** Runs the compiled gateway until it exits (for start-up failures). */
export const runGatewayToExit = (env: Record<string, string>) =>
  runToExit(gatewayArgs, { CLAWDFORGE_DB: ":memory:", CLAWDFORGE_PORT: "0", ...env })

export const api = async (
  gateway: GatewayProcess,
  method: string,
  path: string,
  body?: unknown,
  token = appToken
) => {
  const response = await fetch(`${gateway.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  return { status: response.status, body: await response.json() as any }
}
