/**
 * Process bookkeeping: every process the bench starts (directly, or through a gateway) is tracked
 * by pid and ended by `cleanup`, whatever happens; what had to be killed is reported.
 */
import type { ChildProcess } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import os from "node:os"
import { join } from "node:path"

/** The bench's scratch folder (ledgers, workspaces, logs), removed at the end unless BENCH_KEEP is set. */
export const work = mkdtempSync(join(os.tmpdir(), "clawdforge-bench-"))

const children = new Set<ChildProcess>()

export const track = (child: ChildProcess) => {
  children.add(child)
  child.once("exit", () => children.delete(child))
  return child
}

/** Agents the gateways started (their children): none may outlive the run. */
const gatewayAgents = new Set<number>()

/** What the bench had to kill at the end because it did not stop on its own. */
export const leftovers: Array<string> = []

export const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const pids = () => readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number)

/** The fields of /proc/<pid>/stat after the command name (which may contain spaces). */
const statFields = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")
}

export const childPidsOf = (parent: number) =>
  pids().filter((pid) => {
    try {
      return Number(statFields(pid)[1]) === parent
    } catch {
      return false
    }
  })

/** Remembers the current children of a gateway, so that cleanup can check they died with it. */
export const noteAgentsOf = (gatewayPid: number) => {
  for (const pid of childPidsOf(gatewayPid)) gatewayAgents.add(pid)
}

export const waitForAgentsToDie = async (ms: number) => {
  const deadline = Date.now() + ms
  while ([...gatewayAgents].some(isAlive) && Date.now() < deadline) await sleep(50)
}

/** Processes whose environment says HOME=<home> (acpx's queue owner and its agent). */
export const pidsWithHome = (home: string) =>
  pids().filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").includes(`HOME=${home}`)
    } catch {
      return false
    }
  })

/**
 * CPU time (utime + stime, all threads, children excluded) a process has used so far, in ms.
 * The kernel counts it in ticks of 10 ms (USER_HZ 100).
 */
export const cpuMsOf = (pid: number) => {
  const fields = statFields(pid)
  return (Number(fields[11]) + Number(fields[12])) * 10
}

export const vmRssKb = (pid: number) => {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"))
  return Number(line?.replace(/[^0-9]/g, "") ?? NaN)
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

export const hasExited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null

export const waitExit = (child: ChildProcess, ms: number) =>
  hasExited(child)
    ? Promise.resolve(true)
    : new Promise<boolean>((done) => {
      const timer = setTimeout(() => done(false), ms)
      child.once("exit", () => {
        clearTimeout(timer)
        done(true)
      })
    })

/** SIGTERM, then SIGKILL after `ms`; false when it had to be killed. */
export const stopProcess = async (child: ChildProcess, ms: number) => {
  if (hasExited(child)) return true
  child.kill("SIGTERM")
  if (await waitExit(child, ms)) return true
  child.kill("SIGKILL")
  await waitExit(child, 1000)
  return false
}

const removals: Array<string> = []

/** A folder outside the scratch folder to remove at the end. */
export const removeOnCleanup = (path: string) => void removals.push(path)

let cleanedUp = false

/** Ends every tracked process and every gateway agent still alive, and removes what the bench wrote. */
export const cleanup = async () => {
  if (cleanedUp) return
  cleanedUp = true
  for (const child of children) if (!hasExited(child)) child.kill("SIGTERM")
  await Promise.all([...children].map((child) => waitExit(child, 5000)))
  for (const child of children) {
    leftovers.push(`process ${child.pid} ignored SIGTERM`)
    child.kill("SIGKILL")
  }
  await waitForAgentsToDie(3000)
  for (const pid of gatewayAgents) {
    if (isAlive(pid)) {
      leftovers.push(`gateway agent ${pid}`)
      process.kill(pid, "SIGKILL")
    }
  }
  for (const path of removals) rmSync(path, { recursive: true, force: true })
  if (process.env.BENCH_KEEP === undefined) rmSync(work, { recursive: true, force: true })
  else console.error(`[bench] kept ${work}`)
}
