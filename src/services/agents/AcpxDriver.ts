import { Command } from "@effect/platform"
import { Deferred, Duration, Effect, Either, ExecutionStrategy, Exit, Fiber, Option, Schedule, Scope, Stream } from "effect"
import { createRequire } from "node:module"
import { AgentFailed } from "../../domain/Errors.js"
import type { AcpMessage, PermissionMode } from "../../domain/Session.js"
import { extractStopReason, formatPromptWithFiles, messageMethod, parseJsonLine, parseNdjson } from "./AcpMessages.js"
import type { AgentDriver, AgentHandle, PromptInput, SandboxedLaunch, TurnOutcome } from "./AgentDriver.js"
import { noSettings, planSettings } from "./AgentSettings.js"
import { UsageMeter } from "./UsageMeter.js"
import { AppConfig } from "../config/AppConfig.js"
import { execServerPath, startSandboxExecutor } from "../sandbox/SandboxExecutor.js"

/**
 * The acpx CLI of the pinned npm package; never `npx`, which could fetch another version.
 * Resolved through the package, not a relative path, so it holds from src/, dist/ and the bundle.
 */
export const acpxBin = createRequire(import.meta.url).resolve("acpx")

const openTimeout = Duration.seconds(60)
// `sessions close` retires the queue owner and its agent: about 2.5 s when they are warm.
const closeTimeout = Duration.seconds(30)
const cancelTimeout = Duration.seconds(10)
const killGrace = Duration.seconds(3)
const stderrTailBytes = 8192

/** acpx's exit codes (its `--help` and field notes). */
const exitMeaning: Record<number, string> = {
  1: "error",
  2: "usage error",
  3: "timeout",
  4: "no session",
  5: "permission denied"
}

const permissionFlag: Record<PermissionMode, string> = {
  "approve-all": "--approve-all",
  "approve-reads": "--approve-reads",
  "deny-all": "--deny-all",
  // Sessions refuse `ask` on this driver (acpx answers permissions itself); this is never used.
  "ask": "--deny-all"
}

/**
 * An argv as one `--agent` string. acpx splits it like a POSIX shell (quotes, backslash
 * escapes), so anything beyond plain word characters goes in double quotes, `\` and `"` escaped.
 */
export const agentCommandLine = (argv: ReadonlyArray<string>): string =>
  argv.map((arg) => /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `"${arg.replace(/[\\"]/g, "\\$&")}"`).join(" ")

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null

/** An acpx JSON-RPC error line (`{"id":null,"error":{..., "data":{"acpxCode"}}}`) described. */
const describeError = (message: AcpMessage): { readonly text: string; readonly acpxCode: string | undefined } => {
  const error = isRecord(message["error"]) ? message["error"] : {}
  const data = isRecord(error["data"]) ? error["data"] : {}
  const acpxCode = typeof data["acpxCode"] === "string" ? data["acpxCode"] : undefined
  const text = typeof error["message"] === "string" ? error["message"] : JSON.stringify(error)
  return { text: acpxCode === undefined ? text : `${acpxCode}: ${text}`, acpxCode }
}

const describeExit = (code: number) => `acpx exited with code ${code}${code in exitMeaning ? ` (${exitMeaning[code]})` : ""}`

/** Why a one-shot acpx command failed: its error line, else its exit code. */
const runError = (run: { readonly code: number; readonly messages: ReadonlyArray<AcpMessage> }) => {
  const error = run.messages.find((m) => m["error"] !== undefined)
  return error === undefined ? describeExit(run.code) : describeError(error).text
}

/** acpx has no session by that name (never opened, or closed already). */
const isNoSession = (messages: ReadonlyArray<AcpMessage>) =>
  messages.some((m) => {
    if (m["error"] === undefined) return false
    const { acpxCode, text } = describeError(m)
    return acpxCode === "NO_SESSION" || text.includes("No named session")
  })

/**
 * The acpx driver: every clawdforge session is one acpx named session (the name is the
 * session id), and every turn one `acpx prompt` process whose `--format json` output is
 * the turn's ACP messages. acpx's queue owner keeps the agent warm between turns.
 */
export class AcpxDriver extends Effect.Service<AcpxDriver>()("clawdforge/AcpxDriver", {
  effect: Effect.gen(function*() {
    const config = yield* AppConfig
    // The queue owner exits after this long idle: a session idle that long is swept anyway,
    // and after a gateway crash no owner outlives it.
    const ttlSecs = String(Math.ceil(Duration.toSeconds(config.sessionTtl)))

    const start = Effect.fn("AcpxDriver.start")(function*(launch: SandboxedLaunch) {
      const name = launch.sessionId
      const failed = (message: string, extra?: { stderr?: string; events?: ReadonlyArray<AcpMessage> }) =>
        new AgentFailed({ message: `agent "${launch.agentName}": ${message}`, ...extra })

      // Every acpx command of the session runs in its one sandbox, through a small exec server that
      // lives as long as the session: acpx's detached queue owner (and the agent it starts) stays there
      // between turns, and goes with it. acpx keeps its state under HOME, the app's own.
      const plan = yield* launch.plan([process.execPath, execServerPath], [acpxBin, ...launch.agent.command])
      const executor = yield* startSandboxExecutor(plan).pipe(
        Effect.mapError((error) => failed(`could not start its sandbox: ${error.message}`))
      )
      const globalArgs = [
        "--format",
        "json",
        "--cwd",
        launch.cwd,
        "--agent",
        agentCommandLine(launch.agent.command),
        "--ttl",
        ttlSecs,
        permissionFlag[launch.permissionMode],
        // Nobody is there to ask: anything the mode does not approve is denied, not failed.
        "--non-interactive-permissions",
        "deny"
      ]
      // The queue owner that acpx spawns inherits this environment, and the agent inherits it from there.
      const acpx = (...args: ReadonlyArray<string>) =>
        Command.make(process.execPath, acpxBin, ...globalArgs, ...args).pipe(
          Command.env(plan.env),
          Command.workingDirectory(launch.cwd)
        )

      /** One short acpx command run to its end: exit code, JSON lines, stderr. */
      const runOnce = (label: string, ...args: ReadonlyArray<string>) =>
        Effect.gen(function*() {
          const child = yield* executor.start(acpx(...args))
          const [stdout, stderr, code] = yield* Effect.all([
            child.stdout.pipe(Stream.decodeText(), Stream.mkString),
            child.stderr.pipe(Stream.decodeText(), Stream.mkString),
            child.exitCode
          ], { concurrency: "unbounded" })
          return { code, messages: parseNdjson(stdout), stderr }
        }).pipe(
          Effect.scoped,
          Effect.mapError((error) => failed(`acpx ${label} could not run: ${error.message}`)),
          Effect.withSpan(`AcpxDriver.${label}`)
        )

      let alive = true
      // Turn processes live here, so the handle's end kills any that still run.
      const turns = yield* Scope.make()

      /**
       * `sessions close`: acpx retires the queue owner and the agent (it would keep them for
       * `--ttl`). Retried, as acpx's owner checks can time out on a busy machine; as a last
       * resort the owner `status` reports is stopped by hand, so no agent outlives the session.
       */
      const closeNamed = Effect.gen(function*() {
        const closed = yield* runOnce("sessions close", "sessions", "close", name).pipe(
          Effect.filterOrFail(
            (run) => run.code === 0 || isNoSession(run.messages),
            (run) => failed(`acpx sessions close failed: ${runError(run)}`, { stderr: run.stderr })
          ),
          Effect.retry({ times: 2, schedule: Schedule.spaced("250 millis") }),
          Effect.timeout(closeTimeout),
          Effect.either
        )
        if (Either.isRight(closed)) return
        yield* Effect.logWarning(`acpx session ${name} did not close; stopping its queue owner`, closed.left)
        const status = yield* runOnce("status", "status", "-s", name).pipe(Effect.timeout(cancelTimeout), Effect.option)
        const owner = Option.flatMapNullable(status, (run) =>
          run.messages.find((m) => m["action"] === "status_snapshot" && m["status"] === "alive")?.["pid"])
        // The pid is the sandbox's own: only a process inside it may signal it.
        if (Option.isSome(owner) && typeof owner.value === "number") {
          yield* executor.exitCode(Command.make("kill", "-TERM", String(owner.value))).pipe(Effect.ignore)
        }
      }).pipe(Effect.ignore)

      // Registered before the session is opened: whatever happens next, it gets closed.
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          alive = false
          yield* Scope.close(turns, Exit.void)
          yield* closeNamed
        })
      )

      /** `sessions new|ensure`: the ACP session id acpx recorded for the name. */
      const open = (verb: "new" | "ensure", resume: Option.Option<string>) =>
        runOnce(`sessions ${verb}`, "sessions", verb, "--name", name, ...Option.match(resume, {
          onNone: () => [],
          onSome: (id) => ["--resume-session", id]
        })).pipe(
          Effect.flatMap(({ code, messages, stderr }) => {
            const ensured = messages.find((m) => m["action"] === "session_ensured")
            const sessionId = ensured?.["acpxSessionId"]
            if (code === 0 && typeof sessionId === "string") return Effect.succeed(sessionId)
            return Effect.fail(failed(`acpx sessions ${verb} failed: ${runError({ code, messages })}`, {
              stderr: stderr.slice(-stderrTailBytes)
            }))
          }),
          Effect.timeoutFail({ duration: openTimeout, onTimeout: () => failed(`acpx sessions ${verb} timed out`) })
        )

      const opened = yield* Option.match(launch.resume, {
        onNone: () => open("new", Option.none()).pipe(Effect.map((id) => ({ id, origin: "new" as const }))),
        onSome: (resume) =>
          open("ensure", Option.some(resume)).pipe(
            Effect.map((id) => ({ id, origin: "loaded" as const })),
            // The agent lost the session (or cannot load one): carry on fresh, and say so.
            Effect.orElse(() =>
              open("new", Option.none()).pipe(Effect.map((id) => ({ id, origin: "new_after_failed_load" as const })))
            )
          )
      })

      const usage = new UsageMeter()
      const prompt = Effect.fn("AcpxDriver.prompt")(function*(input: PromptInput) {
        usage.start()
        const events: Array<AcpMessage> = []
        const done = yield* Deferred.make<TurnOutcome, AgentFailed>()
        let stderr = ""
        let started = false
        let promptId: unknown
        // Why the turn failed, when acpx or the agent said so before exiting.
        let failure: { readonly text: string; readonly acpxCode: string | undefined } | undefined
        let finished = false
        // Requests from the agent still waiting for acpx's answer, keyed by id: an error with
        // one of these ids is acpx's answer, not the agent failing the prompt.
        const pending = new Set<string>()

        const onLine = (line: string) => {
          const message = parseJsonLine(line)
          if (message === undefined || finished) return
          const method = messageMethod(message)
          if (method === "session/update") usage.observe((message["params"] as { update?: any } | undefined)?.update ?? {})
          if (!started) {
            // initialize / session/new / session/load of a cold agent: not part of the turn.
            if (method === "session/prompt") {
              started = true
              promptId = message["id"]
            } else {
              if (message["error"] !== undefined && message["id"] === null) failure ??= describeError(message)
              return
            }
          }
          events.push(message)
          input.onMessage?.(message)
          const key = JSON.stringify(message["id"] ?? null)
          if (method !== undefined) {
            if (method !== "session/prompt" && message["id"] !== undefined) pending.add(key)
            return
          }
          const stopReason = extractStopReason([message])
          if (stopReason !== undefined) {
            // The turn is over: acpx lingers about 1 s before it exits, nobody waits for that.
            finished = true
            Deferred.unsafeDone(done, Exit.succeed({ stopReason, usage: usage.end(message["result"]), events: events.slice() }))
          } else if (message["error"] !== undefined) {
            if (message["id"] === null) {
              failure ??= describeError(message)
            } else if (!pending.delete(key) && message["id"] === promptId) {
              const error = describeError(message)
              failure ??= { ...error, text: `session/prompt failed: ${error.text}` }
            }
          } else {
            pending.delete(key)
          }
        }

        const turnScope = yield* Scope.fork(turns, ExecutionStrategy.sequential)
        const child = yield* acpx("prompt", "-s", name, "--file", "-").pipe(
          // The prompt goes through stdin: no argv limits, and a text starting with "-" stays text.
          Command.feed(formatPromptWithFiles(input.text, input.files)),
          executor.start,
          Scope.extend(turnScope),
          Effect.tapError(() => Scope.close(turnScope, Exit.void)),
          Effect.mapError((error) => failed(`acpx prompt could not start: ${error.message}`))
        )
        // `Command` sends SIGTERM on release; escalate if it is ignored.
        yield* Scope.addFinalizer(
          turnScope,
          Effect.ignore(Effect.catchAll(Effect.timeout(child.kill("SIGTERM"), killGrace), () => child.kill("SIGKILL")))
        )
        yield* child.stderr.pipe(
          Stream.decodeText(),
          Stream.runForEach((chunk) => Effect.sync(() => stderr = (stderr + chunk).slice(-stderrTailBytes))),
          Effect.ignore,
          Effect.forkIn(turnScope)
        )
        // No result line by the time acpx exits: the turn failed; say why, with all of stderr.
        const ended = Effect.gen(function*() {
          if (yield* Deferred.isDone(done)) return
          const code = yield* child.exitCode.pipe(Effect.timeout(killGrace), Effect.option)
          const exitCode = Option.getOrUndefined(code)
          // The named session is gone: the next turn gets a fresh handle, which ensures it again.
          if (failure?.acpxCode === "NO_SESSION" || exitCode === 4) alive = false
          const reason = failure?.text ??
            `${exitCode === undefined ? "acpx stopped" : describeExit(exitCode)} before the prompt result`
          yield* Deferred.fail(done, failed(reason, { stderr, events: events.slice() }))
        })
        const reading = yield* child.stdout.pipe(
          Stream.decodeText(),
          Stream.splitLines,
          Stream.runForEach((line) => Effect.sync(() => onLine(line))),
          Effect.ignore,
          Effect.zipRight(ended),
          Effect.forkIn(turnScope)
        )
        // Killed before the turn ended (the handle's scope closed): the turn fails, never hangs.
        yield* Scope.addFinalizer(
          turnScope,
          Effect.suspend(() => Deferred.fail(done, failed("acpx was stopped mid-turn", { stderr, events: events.slice() })))
        )
        // Once acpx has had its say and exited by itself, its scope is released; the handle's
        // scope kills it otherwise.
        yield* Fiber.await(reading).pipe(
          Effect.zipRight(Effect.ignore(child.exitCode)),
          Effect.zipRight(Scope.close(turnScope, Exit.void)),
          Effect.forkIn(turns)
        )
        return yield* Deferred.await(done).pipe(Effect.onInterrupt(() => Scope.close(turnScope, Exit.void)))
      })

      const handle: AgentHandle = {
        agentSessionId: opened.id,
        origin: opened.origin,
        // acpx speaks to the agent itself: its `initialize` answer never reaches the gateway.
        capabilities: undefined,
        prompt,
        // acpx sets the agent up itself: it offers the gateway no settings to change.
        settings: () => noSettings,
        configure: (changes) => Effect.asVoid(planSettings(noSettings, changes)),
        // acpx's own verb: it forwards `session/cancel` through the queue owner.
        cancel: runOnce("cancel", "cancel", "-s", name).pipe(Effect.timeout(cancelTimeout), Effect.ignore),
        // The queue owner respawns a crashed agent by itself; only a lost named session is fatal.
        isAlive: Effect.sync(() => alive),
        // The agent runs under acpx's detached queue owner, not as our child.
        pid: undefined
      }
      return handle
    })

    return { start } as const satisfies AgentDriver
  }),
  dependencies: [AppConfig.Default]
}) {}
