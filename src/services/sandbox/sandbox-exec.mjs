/**
 * The exec server: the one long-lived process of a session's sandbox. The gateway starts it once
 * (inside bubblewrap, as the agent's user) and runs every command of the session through it, so
 * what a command leaves running detached (acpx's queue owner and its agent) lives on in the
 * sandbox's PID namespace instead of dying with a bwrap of its own.
 *
 * Plain Node, no dependencies: it runs wherever the sandbox can see Node itself.
 *
 * Newline-delimited JSON on stdin (requests) and stdout (frames):
 *   {op:"spawn", id, argv, cwd, env}   env is exact (this process's own env is already clean)
 *   {op:"stdin", id, data}             base64
 *   {op:"stdin-end", id}
 *   {op:"kill", id, signal}            to the command's process group
 *   {op:"pause"|"resume", id, stream}  the gateway holds too much of that pipe unread / can take more
 * frames:
 *   {ready: pid}                       once, when requests are being read
 *   {id, spawned: pid} | {id, error}
 *   {id, stdout: base64} | {id, stderr: base64}
 *   {id, exit: code, signal}           after the command's output
 *
 * Commands run detached (a process group each) so a kill reaches everything they started in it.
 * When stdin ends (the gateway went away) or a SIGTERM arrives, every command's group is
 * signalled and the server exits. Detached grandchildren (a session of their own, like acpx's
 * queue owner) are not its business: they stay until the sandbox ends.
 */
import { spawn } from "node:child_process"
import { createInterface } from "node:readline"

/** After a command exits, how long a pipe still held open by something it left behind is read. */
const outputGraceMs = 1000
/** On shutdown, how long commands get after SIGTERM before SIGKILL. */
const stopGraceMs = 1000

/** Running commands by request id: `{ child, pausedByGateway: { stdout, stderr } }`. */
const running = new Map()
/**
 * Process groups of commands that exited while something of theirs still ran, by request id:
 * a kill or the shutdown still reaches them.
 */
const leftoverGroups = new Map()
/** Our stdout is full: every command's output waits until it drains. */
let stdoutFull = false

const send = (frame) => {
  if (process.stdout.write(JSON.stringify(frame) + "\n") || stdoutFull) return
  stdoutFull = true
  for (const entry of running.values()) applyFlow(entry)
  process.stdout.once("drain", () => {
    stdoutFull = false
    for (const entry of running.values()) applyFlow(entry)
  })
}

/** A command's pipe is read unless our stdout is full or the gateway asked it to wait. */
const applyFlow = (entry) => {
  for (const name of ["stdout", "stderr"]) {
    if (stdoutFull || entry.pausedByGateway[name]) entry.child[name].pause()
    else entry.child[name].resume()
  }
}

const signalGroup = (pid, signal) => {
  try {
    process.kill(-pid, signal)
    return true
  } catch {
    return false
  }
}

const groupAlive = (pid) => signalGroup(pid, 0)

const start = ({ id, argv, cwd, env }) => {
  // Groups that have ended since are forgotten: their ids may be reused.
  for (const [key, pid] of leftoverGroups) if (!groupAlive(pid)) leftoverGroups.delete(key)
  if (!Array.isArray(argv) || argv.length === 0 || argv.some((arg) => typeof arg !== "string")) {
    return send({ id, error: "argv must be a non-empty array of strings" })
  }
  let child
  try {
    child = spawn(argv[0], argv.slice(1), {
      cwd: cwd ?? undefined,
      env: env ?? {},
      stdio: ["pipe", "pipe", "pipe"],
      detached: true
    })
  } catch (error) {
    return send({ id, error: String(error?.message ?? error) })
  }
  const entry = { child, pausedByGateway: { stdout: false, stderr: false } }
  let spawned = false
  child.once("error", (error) => {
    if (!spawned) send({ id, error: error.message })
  })
  // A command that does not read its stdin must not take the server down with EPIPE.
  child.stdin.on("error", () => {})
  child.once("spawn", () => {
    spawned = true
    running.set(id, entry)
    send({ id, spawned: child.pid })
    applyFlow(entry)
  })
  for (const name of ["stdout", "stderr"]) {
    child[name].on("data", (chunk) => send({ id, [name]: chunk.toString("base64") }))
  }

  // The exit frame comes after all of the command's output: once both pipes have ended, or, when
  // something it left behind holds them open, once they have flowed for a grace period after it.
  let ended = 0
  let exited
  let finished = false
  const finish = () => {
    if (finished || exited === undefined) return
    finished = true
    running.delete(id)
    child.stdout.destroy()
    child.stderr.destroy()
    if (groupAlive(child.pid)) leftoverGroups.set(id, child.pid)
    send({ id, exit: exited.code, signal: exited.signal })
  }
  for (const stream of [child.stdout, child.stderr]) {
    stream.once("close", () => {
      ended += 1
      if (ended === 2) finish()
    })
  }
  child.once("exit", (code, signal) => {
    exited = { code, signal }
    if (ended === 2) return finish()
    const wait = () => {
      if (finished) return
      // Output waiting on backpressure is not an abandoned pipe: wait on.
      if (child.stdout.isPaused() || child.stderr.isPaused()) setTimeout(wait, outputGraceMs)
      else finish()
    }
    setTimeout(wait, outputGraceMs)
  })
}

const setPaused = (id, stream, paused) => {
  const entry = running.get(id)
  if (entry === undefined || !(stream in entry.pausedByGateway)) return
  entry.pausedByGateway[stream] = paused
  applyFlow(entry)
}

const handlers = {
  spawn: start,
  stdin: ({ id, data }) => running.get(id)?.child.stdin.write(Buffer.from(data, "base64")),
  "stdin-end": ({ id }) => running.get(id)?.child.stdin.end(),
  kill: ({ id, signal }) => {
    const pid = running.get(id)?.child.pid ?? leftoverGroups.get(id)
    if (pid === undefined) return
    if (!signalGroup(pid, signal ?? "SIGTERM")) running.get(id)?.child.kill(signal ?? "SIGTERM")
  },
  pause: ({ id, stream }) => setPaused(id, stream, true),
  resume: ({ id, stream }) => setPaused(id, stream, false)
}

let stopping = false
/** Every command's group gets SIGTERM, then SIGKILL past the grace period; then the server exits. */
const stop = () => {
  if (stopping) return
  stopping = true
  const groups = [...[...running.values()].map((entry) => entry.child.pid), ...leftoverGroups.values()]
  const alive = () => groups.filter(groupAlive)
  for (const pid of groups) signalGroup(pid, "SIGTERM")
  const deadline = Date.now() + stopGraceMs
  const poll = () => {
    const left = alive()
    if (left.length > 0 && Date.now() < deadline) return setTimeout(poll, 25)
    for (const pid of left) signalGroup(pid, "SIGKILL")
    process.exit(0)
  }
  poll()
}

const requests = createInterface({ input: process.stdin, crlfDelay: Infinity })
requests.on("line", (line) => {
  if (line.trim() === "") return
  let request
  try {
    request = JSON.parse(line)
  } catch {
    return process.stderr.write(`sandbox-exec: not JSON: ${line.slice(0, 200)}\n`)
  }
  const handler = handlers[request?.op]
  if (handler === undefined) return process.stderr.write(`sandbox-exec: unknown op ${JSON.stringify(request?.op)}\n`)
  handler(request)
})
requests.once("close", stop)
process.once("SIGTERM", stop)
// The gateway gone mid-write: nothing to tell anyone, stop.
process.stdout.on("error", stop)
send({ ready: process.pid })
