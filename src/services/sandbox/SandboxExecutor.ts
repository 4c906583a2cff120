import { Command, CommandExecutor } from "@effect/platform"
import { BadArgument, type PlatformError, SystemError } from "@effect/platform/Error"
import { Chunk, Deferred, Duration, Effect, Exit, Inspectable, Mailbox, Option, Scope, Sink, Stream } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { stopProcessGroup } from "../agents/AgentProcess.js"

/** The exec server a session's sandbox runs: started as `[...wrapping, process.execPath, execServerPath]`. */
export const execServerPath = fileURLToPath(new URL("./sandbox-exec.mjs", import.meta.url))

/** How long the server may take to stop after SIGTERM before it is killed. */
/** Node's start-up plus bwrap's, on a busy machine. */
const readyTimeout = Duration.seconds(30)
const stderrTailBytes = 8192
/**
 * A command's output the gateway holds that nobody has read yet: past the high mark the server
 * stops reading that pipe (the command then blocks on it, as with a pipe of its own), below the
 * low mark it reads again.
 */
const highWaterBytes = 1024 * 1024
const lowWaterBytes = 256 * 1024

type OutputName = "stdout" | "stderr"

/** A frame of the server (sandbox-exec.mjs), one JSON line. */
interface Frame {
  readonly id?: number
  readonly ready?: number
  readonly spawned?: number
  readonly error?: string
  readonly stdout?: string
  readonly stderr?: string
  readonly exit?: number | null
  readonly signal?: string | null
}

/** One pipe of a running command, as the gateway holds it. */
interface Output {
  readonly mailbox: Mailbox.Mailbox<Uint8Array, PlatformError>
  /** "inherit": there is no terminal to share in a sandbox, the output is dropped. */
  readonly dropped: boolean
  buffered: number
  paused: boolean
}

/** A command sent to the server, until its exit frame. */
interface RunningCommand {
  readonly spawned: Deferred.Deferred<number, PlatformError>
  readonly exit: Deferred.Deferred<readonly [code: number | null, signal: string | null], PlatformError>
  readonly stdout: Output
  readonly stderr: Output
}

const makeOutput = (dropped: boolean) =>
  Effect.map(Mailbox.make<Uint8Array, PlatformError>(), (mailbox): Output => ({ mailbox, dropped, buffered: 0, paused: false }))

const commandError = (method: string, description: string) =>
  new SystemError({ reason: "Unknown", module: "Command", method, description })

const ProcessProto = {
  [CommandExecutor.ProcessTypeId]: CommandExecutor.ProcessTypeId,
  ...Inspectable.BaseProto,
  toJSON(this: CommandExecutor.Process) {
    return { _id: "@effect/platform/CommandExecutor/Process", pid: this.pid, sandboxed: true }
  }
}

/** The argv of a command as Node's spawn would run it (`shell` included). */
const argvOf = (command: Command.StandardCommand): ReadonlyArray<string> =>
  command.shell === false
    ? [command.command, ...command.args]
    : [typeof command.shell === "string" ? command.shell : "/bin/sh", "-c", [command.command, ...command.args].join(" ")]

/**
 * Starts a sandbox's exec server (`launch.argv`, which ends in `process.execPath, execServerPath`)
 * with exactly `launch.env` in a process group of its own, and answers a `CommandExecutor` whose
 * commands run inside it, so what they leave running detached lives on in the sandbox.
 *
 * - A command's environment: with `extendEnv` (Command's default) the server's own environment,
 *   `launch.env`, with the command's over it; with `extendEnv: false` only the command's.
 *   Nothing of the gateway's own environment ever reaches a command. (bwrap is started with the
 *   clean environment itself, no `--clearenv`/`--setenv`: what the server has is `launch.env`.)
 * - No working directory: the server's (`launch.cwd`). `uid`/`gid` are the sandbox's business and
 *   ignored; `"inherit"` output is dropped and `"inherit"` input is an empty stdin.
 * - Piped commands (`Command.pipeTo`) are refused: run each in turn.
 * - A `Process`'s `pid` is the command's pid inside the sandbox (its own PID namespace under bwrap).
 * - Closing the scope stops the server (stdin ended and SIGTERM to its group, SIGKILL after 3 s);
 *   every command still running then fails its `exitCode` and its output streams.
 */
export const startSandboxExecutor = (launch: {
  readonly argv: ReadonlyArray<string>
  readonly env: Readonly<Record<string, string>>
  readonly cwd: string
}): Effect.Effect<CommandExecutor.CommandExecutor, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const [bin, ...args] = launch.argv
    if (bin === undefined) return yield* Effect.fail(new Error("the sandbox's exec server has an empty argv"))
    const serverExit = yield* Deferred.make<number | null>()
    const ready = yield* Deferred.make<void, Error>()
    const commands = new Map<number, RunningCommand>()
    let nextId = 1
    let stderrTail = ""
    /** Why the server can take no more commands, once it cannot. */
    let gone: string | undefined

    const server = yield* Effect.acquireRelease(
      Effect.async<ChildProcess, Error>((resume) => {
        const child = spawn(bin, args, {
          cwd: launch.cwd,
          env: { ...launch.env },
          stdio: ["pipe", "pipe", "pipe"],
          detached: true
        })
        child.once("error", (error) => resume(Effect.fail(error)))
        child.once("spawn", () => resume(Effect.succeed(child)))
        child.once("exit", (code) => Deferred.unsafeDone(serverExit, Exit.succeed(code)))
      }),
      // Its stdin ended first: the server stops its commands' groups itself, then its own goes.
      (server) => Effect.zipRight(Effect.sync(() => server.stdin!.end()), stopProcessGroup(server, serverExit))
    )

    server.stderr!.setEncoding("utf8")
    server.stderr!.on("data", (chunk: string) => stderrTail = (stderrTail + chunk).slice(-stderrTailBytes))
    // A server that is gone fails its commands below, not as an uncaught EPIPE.
    server.stdin!.on("error", () => {})

    const send = (request: Record<string, unknown>): boolean =>
      gone === undefined && server.stdin!.write(JSON.stringify(request) + "\n")
    /** Waits while the server's stdin is full, so a large feed does not pile up in the gateway. */
    const sendPaced = (request: Record<string, unknown>) =>
      Effect.async<void>((resume) => {
        if (send(request) || gone !== undefined) return resume(Effect.void)
        const drained = () => {
          server.stdin!.off("close", drained)
          server.stdin!.off("drain", drained)
          resume(Effect.void)
        }
        server.stdin!.once("drain", drained).once("close", drained)
      })

    const dispatch = (frame: Frame) => {
      if (frame.ready !== undefined) return Deferred.unsafeDone(ready, Exit.void)
      const command = frame.id === undefined ? undefined : commands.get(frame.id)
      if (command === undefined) return
      if (frame.spawned !== undefined) return Deferred.unsafeDone(command.spawned, Exit.succeed(frame.spawned))
      if (frame.error !== undefined) {
        commands.delete(frame.id!)
        return Deferred.unsafeDone(command.spawned, Exit.fail(commandError("spawn", frame.error)))
      }
      for (const name of ["stdout", "stderr"] as const) {
        const data = frame[name]
        if (data === undefined) continue
        const output = command[name]
        if (output.dropped) return
        const bytes = Buffer.from(data, "base64")
        output.mailbox.unsafeOffer(bytes)
        output.buffered += bytes.length
        if (!output.paused && output.buffered > highWaterBytes) {
          output.paused = true
          send({ op: "pause", id: frame.id, stream: name })
        }
        return
      }
      if (frame.exit !== undefined) {
        commands.delete(frame.id!)
        command.stdout.mailbox.unsafeDone(Exit.void)
        command.stderr.mailbox.unsafeDone(Exit.void)
        Deferred.unsafeDone(command.exit, Exit.succeed([frame.exit, frame.signal ?? null] as const))
      }
    }

    let rest = ""
    server.stdout!.setEncoding("utf8")
    server.stdout!.on("data", (chunk: string) => {
      const lines = (rest + chunk).split("\n")
      rest = lines.pop()!
      for (const line of lines) {
        if (line === "") continue
        let frame: Frame
        try {
          frame = JSON.parse(line)
        } catch {
          // Only the server writes here; should anything else, it is kept for the error it leads to.
          stderrTail = (stderrTail + `not a frame: ${line.slice(0, 200)}\n`).slice(-stderrTailBytes)
          continue
        }
        dispatch(frame)
      }
    })

    /** The server is gone once its frames (and its last words) are all read: every command still waiting fails. */
    const serverGone = () => {
      if (gone !== undefined) return
      const how = server.signalCode !== null
        ? ` (signal ${server.signalCode})`
        : server.exitCode !== null
        ? ` (exit code ${server.exitCode})`
        : ""
      gone = `the sandbox's exec server stopped${how}${stderrTail.trim() === "" ? "" : `: ${stderrTail.trim()}`}`
      const error = commandError("exitCode", gone)
      Deferred.unsafeDone(ready, Exit.fail(new Error(gone)))
      for (const command of commands.values()) {
        Deferred.unsafeDone(command.spawned, Exit.fail(error))
        Deferred.unsafeDone(command.exit, Exit.fail(error))
        command.stdout.mailbox.unsafeDone(Exit.fail(error))
        command.stderr.mailbox.unsafeDone(Exit.fail(error))
      }
      commands.clear()
    }
    server.once("close", serverGone)
    // Its pipes held open by something it left behind: its exit is the end too, after a grace.
    server.once("exit", () => setTimeout(serverGone, 1000).unref())

    yield* Deferred.await(ready).pipe(
      Effect.timeoutFail({
        duration: readyTimeout,
        onTimeout: () => new Error(`the sandbox's exec server was not ready within ${Duration.format(readyTimeout)}`)
      })
    )

    /** A pipe of the command as a stream; reading it lets the server read that pipe again. */
    const outputStream = (id: number, name: OutputName, output: Output) =>
      Mailbox.toStream(output.mailbox).pipe(
        Stream.mapChunks((chunk) => {
          output.buffered -= Chunk.reduce(chunk, 0, (n, bytes) => n + bytes.length)
          if (output.paused && output.buffered < lowWaterBytes) {
            output.paused = false
            send({ op: "resume", id, stream: name })
          }
          return chunk
        })
      )

    const runCommand = (command: Command.StandardCommand) =>
      Effect.gen(function*() {
        if (gone !== undefined) return yield* Effect.fail(commandError("spawn", gone))
        const id = nextId++
        const running: RunningCommand = {
          spawned: yield* Deferred.make<number, PlatformError>(),
          exit: yield* Deferred.make<readonly [number | null, string | null], PlatformError>(),
          stdout: yield* makeOutput(command.stdout === "inherit"),
          stderr: yield* makeOutput(command.stderr === "inherit")
        }
        commands.set(id, running)
        const commandEnv = Object.fromEntries(command.env)
        send({
          op: "spawn",
          id,
          argv: argvOf(command),
          cwd: Option.getOrNull(command.cwd),
          env: command.extendEnv ? { ...launch.env, ...commandEnv } : commandEnv
        })
        const pid = yield* Deferred.await(running.spawned)
        if (command.stdin === "inherit") send({ op: "stdin-end", id })
        return { id, pid, running }
      })

    const start = (command: Command.Command): Effect.Effect<CommandExecutor.Process, PlatformError, Scope.Scope> => {
      const flattened = Command.flatten(command)
      if (flattened.length > 1) {
        return Effect.fail(
          new BadArgument({
            module: "Command",
            method: "start",
            description: "piped commands cannot run in a sandbox: run each command in turn"
          })
        )
      }
      const standard = flattened[0]
      return Effect.acquireRelease(
        runCommand(standard),
        ({ id, running }) =>
          Effect.gen(function*() {
            // As Node's executor does: a command still running is stopped, one that failed has
            // whatever it left in its group stopped.
            const exited = yield* Deferred.isDone(running.exit)
            if (exited) {
              const exit = yield* Effect.exit(Deferred.await(running.exit))
              if (Exit.isSuccess(exit) && exit.value[0] !== 0) send({ op: "kill", id, signal: "SIGTERM" })
              return
            }
            send({ op: "kill", id, signal: "SIGTERM" })
            yield* Effect.ignore(Deferred.await(running.exit))
          })
      ).pipe(
        Effect.map(({ id, pid, running }): CommandExecutor.Process => {
          const exitCode = Effect.flatMap(Deferred.await(running.exit), ([code, signal]) =>
            code !== null
              ? Effect.succeed(CommandExecutor.ExitCode(code))
              : Effect.fail(commandError("exitCode", `Process interrupted due to receipt of signal: ${signal}`)))
          const kill = (signal: CommandExecutor.Signal = "SIGTERM") =>
            Effect.suspend(() => {
              send({ op: "kill", id, signal })
              // A server that went away took the command with it: killed all the same.
              return Effect.ignore(Deferred.await(running.exit))
            })
          const stdin = Sink.forEachChunk((chunk: Chunk.Chunk<Uint8Array>) =>
            gone !== undefined
              ? Effect.fail(commandError("stdin", gone))
              : sendPaced({ op: "stdin", id, data: Buffer.concat(Chunk.toArray(chunk)).toString("base64") })
          ).pipe(Sink.mapEffect(() => Effect.sync(() => void send({ op: "stdin-end", id }))))
          let stdout = outputStream(id, "stdout", running.stdout)
          if (typeof standard.stdout !== "string") stdout = Stream.transduce(stdout, standard.stdout)
          return Object.assign(Object.create(ProcessProto), {
            pid: CommandExecutor.ProcessId(pid),
            exitCode,
            isRunning: Effect.negate(Deferred.isDone(running.exit)),
            kill,
            stdin,
            stdout,
            stderr: outputStream(id, "stderr", running.stderr)
          })
        }),
        typeof standard.stdin === "string"
          ? (self) => self
          : Effect.tap((child) => Effect.forkDaemon(Stream.run(standard.stdin as Stream.Stream<Uint8Array>, child.stdin)))
      )
    }

    return CommandExecutor.makeExecutor(start)
  })
