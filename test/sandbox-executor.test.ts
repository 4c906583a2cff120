/**
 * The sandbox's exec server and the CommandExecutor over it: real `node -e` commands through a real
 * server process, then the same under a real bubblewrap with a PID namespace of its own, and the
 * acpx CLI of the pinned package through it.
 */
import { Command, CommandExecutor } from "@effect/platform"
import { afterEach, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope, Stream } from "effect"
import { spawn } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { acpxBin, agentCommandLine } from "../src/services/agents/AcpxDriver.js"
import { scriptedAgentPath } from "../src/services/agents/AgentRegistry.js"
import { execServerPath, startSandboxExecutor } from "../src/services/sandbox/SandboxExecutor.js"
import { bwrapAvailable } from "./support/Bubblewrap.js"


/** Every grandchild a test starts names this in its argv: afterEach kills whatever is left. */
const marker = `sandbox-executor-test-${process.pid}`
const dirs: Array<string> = []

const hostPidsNaming = (text: string) =>
  readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(text)
    } catch {
      return false
    }
  }).map(Number)

afterEach(() => {
  for (const pid of hostPidsNaming(marker)) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // gone already
    }
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "clawdforge-sandbox-exec-"))
  dirs.push(dir)
  return realpathSync(dir)
}

/** What the server starts with: nothing of the test process's own environment. */
const serverEnv = { PATH: process.env["PATH"]!, SERVER_MARK: "server" }
const plainServer = () => startSandboxExecutor({ argv: [process.execPath, execServerPath], env: serverEnv, cwd: tempDir() })
const bwrapServer = () =>
  startSandboxExecutor({
    argv: [
      "bwrap", "--unshare-all", "--share-net", "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc",
      "--dev", "/dev", "--tmpfs", "/tmp", process.execPath, execServerPath
    ],
    env: serverEnv,
    cwd: "/"
  })

const node = (script: string, ...args: Array<string>) => Command.make(process.execPath, "-e", script, ...args)

/** Runs a command to its end: stdout, stderr, exit code. */
const run = (executor: CommandExecutor.CommandExecutor, command: Command.Command) =>
  Effect.scoped(Effect.gen(function*() {
    const child = yield* executor.start(command)
    const [stdout, stderr, code] = yield* Effect.all([
      child.stdout.pipe(Stream.decodeText(), Stream.mkString),
      child.stderr.pipe(Stream.decodeText(), Stream.mkString),
      child.exitCode
    ], { concurrency: "unbounded" })
    return { stdout, stderr, code }
  }))

/** A command that starts `node -e <keep alive> <marker>` and prints its pid; `detached`: a session of its own. */
const startGrandchild = (tag: string, detached: boolean) =>
  node(
    `const c = require("node:child_process").spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)", ${
      JSON.stringify(`${marker}-${tag}`)
    }], { detached: ${detached}, stdio: "ignore" }); c.unref(); console.log(c.pid)`
  )

const alive = (executor: CommandExecutor.CommandExecutor, pid: string) =>
  run(executor, node(`try { process.kill(${pid}, 0); console.log("alive") } catch { console.log("gone") }`)).pipe(
    Effect.map((r) => r.stdout.trim())
  )

const waitUntilGone = (tag: string) =>
  Effect.promise(async () => {
    const deadline = Date.now() + 10_000
    while (hostPidsNaming(`${marker}-${tag}`).length > 0) {
      if (Date.now() > deadline) return false
      await new Promise((r) => setTimeout(r, 50))
    }
    return true
  })

describe("commands through the sandbox's exec server", () => {
  it.scopedLive("stdout, stderr and exit codes; stdin fed or written; cwd; exact environments", () =>
    Effect.gen(function*() {
      process.env["CLAWDFORGE_TEST_SECRET"] = "the gateway's own"
      const executor = yield* plainServer()

      expect(yield* run(executor, node(`process.stdout.write("out"); process.stderr.write("err"); process.exit(3)`)))
        .toEqual({ stdout: "out", stderr: "err", code: 3 })

      const echo = `process.stdin.pipe(process.stdout)`
      expect((yield* run(executor, node(echo).pipe(Command.feed("fed text -- with a dash")))).stdout)
        .toBe("fed text -- with a dash")
      // Written through the stdin sink, in pieces: the sink's end is the command's stdin end.
      const written = yield* Effect.scoped(Effect.gen(function*() {
        const child = yield* executor.start(node(echo))
        yield* Stream.make("one ", "two ", "three").pipe(Stream.encodeText, Stream.run(child.stdin))
        return yield* child.stdout.pipe(Stream.decodeText(), Stream.mkString)
      }))
      expect(written).toBe("one two three")

      const dir = tempDir()
      expect((yield* run(executor, node(`console.log(process.cwd())`).pipe(Command.workingDirectory(dir)))).stdout.trim())
        .toBe(dir)

      const env = `console.log(JSON.stringify(Object.keys(process.env).sort().map((k) => k + "=" + process.env[k])))`
      // extendEnv (Command's default): the server's environment with the command's over it.
      expect(JSON.parse((yield* run(executor, node(env).pipe(Command.env({ A: "1", SERVER_MARK: "command" })))).stdout))
        .toEqual(["A=1", `PATH=${serverEnv.PATH}`, "SERVER_MARK=command"])
      // extendEnv false: the command's own and nothing else.
      expect(JSON.parse((yield* run(executor, node(env).pipe(Command.env({ A: "1" }, { extendEnv: false })))).stdout))
        .toEqual(["A=1"])
      delete process.env["CLAWDFORGE_TEST_SECRET"]

      // The executor's own conveniences work as on any executor.
      expect(yield* executor.lines(node(`console.log("a\\nb")`))).toEqual(["a", "b"])
      expect(yield* executor.exitCode(node(`process.exit(7)`))).toBe(7)
    }))

  it.scopedLive("kill, spawn failures, piped commands refused, many commands at once", () =>
    Effect.gen(function*() {
      const executor = yield* plainServer()

      yield* Effect.scoped(Effect.gen(function*() {
        const child = yield* executor.start(node(`console.log("up"); setInterval(() => {}, 1000)`))
        expect(child.pid).toBeGreaterThan(0)
        yield* child.stdout.pipe(Stream.decodeText(), Stream.take(1), Stream.runDrain)
        expect(yield* child.isRunning).toBe(true)
        yield* child.kill()
        expect(yield* child.isRunning).toBe(false)
        expect((yield* Effect.flip(child.exitCode)).message).toContain("SIGTERM")
      }))
      yield* Effect.scoped(Effect.gen(function*() {
        const stubborn = yield* executor.start(
          node(`process.on("SIGTERM", () => {}); console.log("up"); setInterval(() => {}, 1000)`)
        )
        yield* stubborn.stdout.pipe(Stream.take(1), Stream.runDrain)
        yield* stubborn.kill("SIGKILL")
        expect((yield* Effect.flip(stubborn.exitCode)).message).toContain("SIGKILL")
      }))

      const missing = yield* Effect.flip(executor.exitCode(Command.make("/no/such/program")))
      expect(missing.message).toContain("ENOENT")
      const badCwd = yield* Effect.flip(executor.exitCode(node("").pipe(Command.workingDirectory("/no/such/dir"))))
      expect(badCwd.message).toContain("ENOENT")
      const piped = yield* Effect.flip(executor.exitCode(node("").pipe(Command.pipeTo(node("")))))
      expect(piped._tag).toBe("BadArgument")
      expect(piped.message).toContain("piped commands")

      const many = yield* Effect.all(
        Array.from({ length: 24 }, (_, i) =>
          run(executor, node(`setTimeout(() => { console.log(${i}); console.error("e${i}"); process.exit(${i % 4}) }, 50)`))),
        { concurrency: "unbounded" }
      )
      expect(many).toEqual(Array.from({ length: 24 }, (_, i) => ({ stdout: `${i}\n`, stderr: `e${i}\n`, code: i % 4 })))
    }))

  it.scopedLive("a server that cannot start fails the start with its own words", () =>
    Effect.gen(function*() {
      const refused = yield* Effect.flip(startSandboxExecutor({
        argv: [process.execPath, "-e", `console.error("bwrap: cannot sandbox here"); process.exit(1)`],
        env: serverEnv,
        cwd: tempDir()
      }))
      expect(refused.message).toContain("exit code 1")
      expect(refused.message).toContain("bwrap: cannot sandbox here")
      const missing = yield* Effect.flip(startSandboxExecutor({ argv: ["/no/such/bwrap"], env: serverEnv, cwd: tempDir() }))
      expect(missing.message).toContain("ENOENT")
    }))

  it.scopedLive("output nobody reads holds the command back instead of piling up; read, it all arrives", () =>
    Effect.gen(function*() {
      const executor = yield* plainServer()
      const total = 16 * 1024 * 1024
      const child = yield* executor.start(
        node(`const b = Buffer.alloc(65536, 97); let n = 0
          const more = () => { while (n < ${total}) { n += b.length; if (!process.stdout.write(b)) return process.stdout.once("drain", more) } }
          more()`)
      )
      yield* Effect.sleep("1500 millis")
      // Paused past the gateway's high-water mark: it cannot finish writing, so it cannot exit.
      expect(yield* child.isRunning).toBe(true)
      const read = yield* child.stdout.pipe(Stream.runFold(0, (n, bytes) => n + bytes.length))
      expect(read).toBe(total)
      expect(yield* child.exitCode).toBe(0)
    }))

  it.scopedLive("the server's own stdout full: a chatty command is paused, the server's memory stays small", () =>
    Effect.gen(function*() {
      const server = spawn(process.execPath, [execServerPath], { env: serverEnv, stdio: ["pipe", "pipe", "inherit"] })
      yield* Effect.addFinalizer(() => Effect.sync(() => void server.kill("SIGKILL")))
      server.stdout.pause()
      const spin = `const b = Buffer.alloc(65536, 97); const more = () => { while (process.stdout.write(b)); process.stdout.once("drain", more) }; more()`
      server.stdin.write(JSON.stringify({ op: "spawn", id: 1, argv: [process.execPath, "-e", spin, marker], env: {} }) + "\n")
      yield* Effect.sleep("2 seconds")
      const rssMb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, "utf8"))![1]) / 1024
      expect(rssMb).toBeLessThan(120)
      // Read again, the frames flow.
      const frames = yield* Effect.async<number>((resume) => {
        let lines = 0
        server.stdout.on("data", (chunk: Buffer) => {
          lines += chunk.toString().split("\n").length - 1
          if (lines > 200) resume(Effect.succeed(lines))
        })
        server.stdout.resume()
      })
      expect(frames).toBeGreaterThan(200)
      server.stdin.end()
      yield* Effect.async<void>((resume) => {
        server.once("exit", () => resume(Effect.void))
      })
    }))

  it.scopedLive("what a command leaves in its group runs on until the scope closes; running commands then fail", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const executor = yield* plainServer().pipe(Scope.extend(scope))
      const started = yield* run(executor, startGrandchild("group", false))
      expect(started.code).toBe(0)
      const pid = started.stdout.trim()
      yield* Effect.sleep("300 millis")
      expect(yield* alive(executor, pid)).toBe("alive")
      expect(hostPidsNaming(`${marker}-group`)).toEqual([Number(pid)])

      // Started in the test's scope: the executor's scope closes under it.
      const running = yield* executor.start(node(`setInterval(() => {}, 1000)`))
      const exitCode = yield* Effect.fork(running.exitCode)
      yield* Scope.close(scope, Exit.void)
      expect((yield* Effect.flip(Effect.flatten(exitCode.await))).message).toMatch(/exec server stopped|SIGTERM/)
      expect(yield* running.isRunning).toBe(false)
      expect(yield* waitUntilGone("group")).toBe(true)
      const late = yield* Effect.flip(executor.exitCode(node("")))
      expect(late.message).toContain("exec server stopped")
    }))

  it.scopedLive("a detached grandchild (a session of its own) is not the server's: without a sandbox it outlives it", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const executor = yield* plainServer().pipe(Scope.extend(scope))
      const pid = (yield* run(executor, startGrandchild("outside", true))).stdout.trim()
      yield* Scope.close(scope, Exit.void)
      yield* Effect.sleep("300 millis")
      // Only a PID namespace ends it (next test); afterEach kills this one.
      expect(hostPidsNaming(`${marker}-outside`)).toEqual([Number(pid)])
    }))

  it.scopedLive("the real acpx CLI runs through it", () =>
    Effect.gen(function*() {
      const executor = yield* plainServer()
      const version = yield* run(executor, Command.make(process.execPath, acpxBin, "--version"))
      expect(version.code).toBe(0)
      expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/)
    }))
})

describe.skipIf(!bwrapAvailable)("under a real bubblewrap", () => {
  it.scopedLive("a detached grandchild lives on in the sandbox and is gone once the scope closes; acpx runs", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const executor = yield* bwrapServer().pipe(Scope.extend(scope))

      // Its own PID namespace: bwrap is PID 1, and only the sandbox's processes are there.
      const ps = yield* run(executor, node(
        `const fs = require("node:fs"); console.log(JSON.stringify(fs.readdirSync("/proc").filter((e) => /^\\d+$/.test(e)).map((p) => fs.readFileSync("/proc/" + p + "/comm", "utf8").trim())))`
      ))
      const names: Array<string> = JSON.parse(ps.stdout)
      expect(names[0]).toBe("bwrap")
      expect(names.length).toBeLessThanOrEqual(4)

      const started = yield* run(executor, startGrandchild("sandboxed", true))
      expect(started.code).toBe(0)
      const pid = started.stdout.trim()
      yield* Effect.sleep("300 millis")
      expect(yield* alive(executor, pid)).toBe("alive")
      expect(hostPidsNaming(`${marker}-sandboxed`)).toHaveLength(1)

      const version = yield* run(executor, Command.make(process.execPath, acpxBin, "--version"))
      expect(version.code).toBe(0)
      expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/)

      // Its environment is the server's, under bwrap as without it.
      const env = yield* run(executor, node(`console.log(process.env.SERVER_MARK, process.env.CLAWDFORGE_DB)`))
      expect(env.stdout.trim()).toBe("server undefined")

      yield* Scope.close(scope, Exit.void)
      expect(yield* waitUntilGone("sandboxed")).toBe(true)
    }))

  it.scopedLive("acpx's queue owner, started by one acpx command, serves the next: a session's life in one sandbox", () =>
    Effect.gen(function*() {
      const executor = yield* bwrapServer()
      const acpx = (...args: Array<string>) =>
        Command.make(
          process.execPath, acpxBin, "--format", "json", "--cwd", "/tmp", "--agent",
          agentCommandLine([process.execPath, scriptedAgentPath, marker]), "--approve-all", ...args
        ).pipe(Command.env({ HOME: "/tmp" }), Command.workingDirectory("/tmp"))
      // The queue owner (`acpx __queue-owner`) and the agent it starts (named by the marker).
      const sessionProcesses = run(executor, Command.make("ps", "-eo", "args=")).pipe(
        Effect.map((r) => r.stdout.split("\n").filter((line) => line.includes(marker) || line.includes("__queue-owner")))
      )

      expect((yield* run(executor, acpx("sessions", "new", "--name", "s1"))).code).toBe(0)
      const cold = yield* run(executor, acpx("prompt", "-s", "s1", "--file", "-").pipe(Command.feed("hello")))
      expect(cold.code).toBe(0)
      expect(cold.stdout).toContain(`"method":"initialize"`)
      expect(cold.stdout).toContain(`"stopReason":"end_turn"`)
      // The CLI is gone; the queue owner and the agent it started live on in the sandbox.
      expect((yield* sessionProcesses).length).toBe(2)
      const warm = yield* run(executor, acpx("prompt", "-s", "s1", "--file", "-").pipe(Command.feed("again")))
      expect(warm.code).toBe(0)
      expect(warm.stdout).not.toContain(`"method":"initialize"`)
      expect(warm.stdout).toContain(`"stopReason":"end_turn"`)
      expect((yield* run(executor, acpx("sessions", "close", "s1"))).code).toBe(0)
      expect(yield* sessionProcesses).toEqual([])
    }), 60_000)
})
