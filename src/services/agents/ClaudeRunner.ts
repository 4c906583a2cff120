import { Command, CommandExecutor } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { Duration, Effect, Option, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { mkdir, rm } from "node:fs/promises"
import { join, resolve } from "node:path"
import type { AppName } from "../../domain/Ids.js"
import { RunFailed } from "../../domain/Errors.js"
import type { RunReply, RunRequest } from "../../domain/Run.js"
import { AppConfig } from "../config/AppConfig.js"
import { Sandbox } from "../sandbox/Sandbox.js"
import { claudeRunUsage, type RunRecord } from "../tenancy/Usage.js"

const defaultTimeout = Duration.minutes(10)
const stderrLimit = 64 * 1024

const fenced = /^\s*```[a-zA-Z0-9_-]*\s*\n([\s\S]*?)\n?```\s*$/

/** The agent's text as JSON when it is JSON (code fences tolerated), else the text itself. */
export const parseResultText = (text: string): unknown => {
  const body = fenced.exec(text)?.[1] ?? text
  try {
    return JSON.parse(body)
  } catch {
    return text
  }
}

/** The one JSON object `claude -p --output-format json` prints. */
interface ClaudeResult {
  readonly is_error?: boolean
  readonly result?: unknown
  readonly stop_reason?: string | null
  readonly subtype?: string
}

const parseClaudeOutput = (stdout: string): Option.Option<ClaudeResult> => {
  try {
    const value: unknown = JSON.parse(stdout.trim())
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? Option.some(value as ClaudeResult)
      : Option.none()
  } catch {
    return Option.none()
  }
}

const collect = (stream: Stream.Stream<Uint8Array, unknown>, limit: number) =>
  stream.pipe(
    Stream.decodeText(),
    Stream.runFold("", (acc, chunk) => acc.length >= limit ? acc : (acc + chunk).slice(0, limit)),
    Effect.orElseSucceed(() => "")
  )

/** `POST /run`: one `claude -p` job as a child process, in the v0.1 reply shape. */
export class ClaudeRunner extends Effect.Service<ClaudeRunner>()("clawdforge/ClaudeRunner", {
  effect: Effect.gen(function*() {
    const { claudeBin, workspaceRoot } = yield* AppConfig
    const executor = yield* CommandExecutor.CommandExecutor
    const sandbox = yield* Sandbox

    /**
     * A throwaway workspace of the app's for one job (`<root>/<app>/.run-<id>`), removed when it ends;
     * claude runs there in a sandbox of its own, as a session's agent would.
     */
    const runWorkspace = (app: AppName) =>
      Effect.acquireRelease(
        Effect.promise(async () => {
          const dir = join(resolve(workspaceRoot), app, `.run-${randomBytes(9).toString("base64url")}`)
          await mkdir(dir, { recursive: true })
          return dir
        }),
        (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
      )

    /**
     * Runs one job of `app`'s, with the app's agent environment `env`; `onRun` hears what it used (as
     * claude printed it) once it is over.
     */
    const run = Effect.fn("ClaudeRunner.run")(function*(
      app: AppName,
      request: RunRequest,
      options: {
        readonly env: Readonly<Record<string, string>>
        readonly onRun?: ((run: RunRecord) => Effect.Effect<void>) | undefined
      }
    ) {
      const onRun = options.onRun
      const args = ["-p", request.prompt, "--output-format", "json"]
      if (request.model !== undefined) args.push("--model", request.model)
      if (request.system_prompt !== undefined) args.push("--system-prompt", request.system_prompt)
      const timeout = request.timeout_secs === undefined ? defaultTimeout : Duration.seconds(request.timeout_secs)
      const startedAt = Date.now()
      const elapsed = () => Date.now() - startedAt
      const fail = (error: string, message: string, stderr: string, stopReason: string | null = "error") =>
        new RunFailed({ error, message, stderr, duration_ms: elapsed(), stop_reason: stopReason })

      const outcome = yield* Effect.scoped(
        Effect.gen(function*() {
          const cwd = yield* runWorkspace(app)
          const plan = yield* sandbox.launch({ app, name: `run-${randomBytes(6).toString("hex")}`, command: [claudeBin, ...args], cwd, env: options.env }).pipe(
            Effect.mapError((error) => fail("spawn_failed", error.message, ""))
          )
          const [bin, ...rest] = plan.argv
          const process = yield* executor.start(
            Command.make(bin!, ...rest).pipe(
              Command.env(plan.env, { extendEnv: false }),
              Command.workingDirectory(plan.cwd),
              Command.feed("")
            )
          )
          const [stdout, stderr, exitCode] = yield* Effect.all([
            collect(process.stdout, 16 * 1024 * 1024),
            collect(process.stderr, stderrLimit),
            process.exitCode
          ], { concurrency: "unbounded" })
          return { stdout, stderr, exitCode: exitCode as number }
        })
      ).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => fail("timeout", `claude did not finish within ${Duration.format(timeout)}`, "", "timeout")
        }),
        Effect.catchTag("SystemError", "BadArgument", (error) =>
          Effect.fail(fail("spawn_failed", `could not run claude: ${error.message}`, "")))
      )

      const parsed = parseClaudeOutput(outcome.stdout)
      const failed = outcome.exitCode !== 0 || Option.isNone(parsed) || parsed.value.is_error === true
      if (onRun !== undefined) {
        yield* onRun({
          at: Math.floor(Date.now() / 1000),
          status: failed ? "failed" : "completed",
          durationMs: elapsed(),
          usage: claudeRunUsage(Option.getOrUndefined(parsed))
        })
      }
      if (outcome.exitCode !== 0 || Option.isNone(parsed) || parsed.value.is_error === true) {
        const said = Option.flatMapNullable(parsed, (p) => typeof p.result === "string" ? p.result : undefined)
        const error = outcome.exitCode !== 0
          ? `claude exit ${outcome.exitCode}`
          : Option.isNone(parsed)
          ? "claude printed no JSON result"
          : "claude reported an error"
        return yield* fail(
          error,
          Option.match(said, { onNone: () => error, onSome: (text) => `${error}: ${text.slice(0, 500)}` }),
          outcome.stderr,
          Option.flatMapNullable(parsed, (p) => p.stop_reason).pipe(Option.getOrElse(() => "error"))
        )
      }
      const result = parsed.value.result
      const reply: RunReply = {
        ok: true,
        result: typeof result === "string" ? parseResultText(result) : result ?? null,
        duration_ms: elapsed(),
        stop_reason: parsed.value.stop_reason ?? null
      }
      return reply
    })

    return { run } as const
  }),
  dependencies: [AppConfig.Default, NodeContext.layer, Sandbox.Default]
}) {}
