import { Deferred, Duration, Effect, Fiber } from "effect"
import { type ChildProcess, spawn } from "node:child_process"

/** How long an agent may take to stop after SIGTERM before it is killed. */
const killGrace = Duration.seconds(3)
const stderrTailBytes = 8192

/** An agent process spoken to over newline-delimited stdio, owned by the scope it was spawned in. */
export interface AgentProcess {
  readonly pid: number | undefined
  /** Writes one line to the agent's stdin. */
  readonly writeLine: (line: string) => void
  /** The last 8 KiB the agent wrote to stderr. */
  readonly stderr: () => string
  /** The exit code (or null after a signal), once the process has exited. */
  readonly exited: Effect.Effect<number | null>
  readonly isRunning: () => boolean
}

/**
 * Spawns `command` with exactly `env` in a process group of its own (an agent may start children of its own), with
 * `onLine` called for every line it prints on stdout and `onClose` once stdout ends or the
 * process exits. Closing the scope sends SIGTERM to the group, and SIGKILL if it is still
 * running after a grace period.
 *
 * This, not `@effect/platform`'s `Command`, because a turn's messages cross these pipes: plain
 * Node streams read and write them without a stream pipeline of fibers per chunk, which on a
 * turn's path cost more than everything else the gateway does with the message.
 */
export const spawnAgentProcess = (
  command: ReadonlyArray<string>,
  options: {
    readonly cwd: string
    readonly env: Readonly<Record<string, string>>
    readonly onLine: (line: string) => void
    readonly onClose: () => void
  }
) =>
  Effect.gen(function*() {
    const exit = yield* Deferred.make<number | null>()
    const [bin, ...args] = command
    const child = yield* Effect.acquireRelease(
      Effect.async<ChildProcess, Error>((resume) => {
        const child = spawn(bin!, args, {
          cwd: options.cwd,
          // Exactly what the launch plan says: nothing of the gateway's own environment.
          env: options.env,
          stdio: ["pipe", "pipe", "pipe"],
          detached: true
        })
        child.once("error", (error) => resume(Effect.fail(error)))
        child.once("spawn", () => resume(Effect.succeed(child)))
        child.once("exit", (code) => Deferred.unsafeDone(exit, Effect.succeed(code)))
      }),
      (child) => stopProcessGroup(child, exit)
    )

    let stderr = ""
    child.stderr!.setEncoding("utf8")
    child.stderr!.on("data", (chunk: string) => stderr = (stderr + chunk).slice(-stderrTailBytes))

    let rest = ""
    child.stdout!.setEncoding("utf8")
    child.stdout!.on("data", (chunk: string) => {
      const lines = (rest + chunk).split("\n")
      rest = lines.pop()!
      for (const line of lines) options.onLine(line)
    })
    child.stdout!.once("close", options.onClose)
    // Its stdout may outlive it (held by a child of its own): the exit ends the connection too.
    child.once("exit", options.onClose)
    // A write to an agent that is gone fails here, not as an uncaught error.
    child.stdin!.on("error", () => {})

    const agent: AgentProcess = {
      pid: child.pid,
      writeLine: (line) => void child.stdin!.write(line + "\n"),
      stderr: () => stderr,
      exited: Deferred.await(exit),
      isRunning: () => child.exitCode === null && child.signalCode === null
    }
    return agent
  })

const signal = (child: ChildProcess, name: NodeJS.Signals) => {
  try {
    process.kill(-child.pid!, name)
  } catch {
    child.kill(name)
  }
}

/**
 * SIGTERM to the process group of `child` (spawned detached), SIGKILL past the grace period; done once
 * it has exited (`exit` says so). Also how the sandbox's exec server is stopped.
 */
export const stopProcessGroup = (child: ChildProcess, exit: Deferred.Deferred<number | null>) =>
  Effect.gen(function*() {
    // Gone already: still end what it may have left behind in its group.
    if (yield* Deferred.isDone(exit)) return signal(child, "SIGTERM")
    signal(child, "SIGTERM")
    const exited = yield* Effect.timeoutOption(Deferred.await(exit), killGrace)
    if (exited._tag === "None") {
      signal(child, "SIGKILL")
      yield* Deferred.await(exit)
    }
  }).pipe(
    // Finalizers are uninterruptible: on a fiber of its own the timeout can interrupt the wait.
    Effect.interruptible,
    Effect.forkDaemon,
    Effect.flatMap(Fiber.join)
  )
