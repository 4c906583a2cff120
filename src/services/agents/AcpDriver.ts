import type { ContentBlock, SessionConfigOption, SessionModeState } from "@agentclientprotocol/sdk"
import { Duration, Effect, Fiber, Option } from "effect"
import { basename, isAbsolute, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { AgentFailed } from "../../domain/Errors.js"
import { version } from "../../version.js"
import { spanWhenTraced } from "../observability/Spans.js"
import type { AcpMessage, AgentSettings } from "../../domain/Session.js"
import { filesNote, parseJsonLine } from "./AcpMessages.js"
import type { AgentDriver, AgentHandle, PromptInput, SandboxedLaunch } from "./AgentDriver.js"
import { AcpRequestError, makeAcpConnection, PROTOCOL_VERSION } from "./AcpConnection.js"
import { spawnAgentProcess } from "./AgentProcess.js"
import { answerPermission } from "./Permissions.js"
import { UsageMeter } from "./UsageMeter.js"
import { noSettings, planSettings, settingsOf, type SettingsState, withConfigOptions, withCurrentMode } from "./AgentSettings.js"

/** What `session/new`, `session/load` and `session/resume` may say of the session's settings. */
interface OpenedSettings {
  readonly configOptions?: ReadonlyArray<SessionConfigOption> | null
  readonly modes?: SessionModeState | null
}

const startTimeout = Duration.seconds(60)
const killGrace = Duration.seconds(3)
/** ACP's "authentication required" JSON-RPC error. */
const authRequiredCode = -32000
/** How long an agent may take to answer `session/close` before it is stopped anyway. */
const closeTimeout = Duration.seconds(2)

/** The messages of the turn in progress, in order, as they cross the wire. */
interface TurnRecorder {
  readonly events: Array<AcpMessage>
  readonly onMessage: ((message: AcpMessage) => void) | undefined
}

/** The turn's prompt: files named first (and linked as resources), the user's text last. */
export const promptBlocks = (input: PromptInput, cwd: string): Array<ContentBlock> => {
  if (input.files.length === 0) return [{ type: "text", text: input.text }]
  const paths = input.files.map((file) => isAbsolute(file) ? file : resolve(cwd, file))
  return [
    { type: "text", text: filesNote(input.files) },
    ...paths.map((path): ContentBlock => ({ type: "resource_link", uri: pathToFileURL(path).href, name: basename(path) })),
    { type: "text", text: input.text }
  ]
}

/** Starts the agent of one session: spawn, `initialize`, then `session/new` or a resume. */
const start = Effect.fn("AcpDriver.start")(function*(launch: SandboxedLaunch) {
  const prefix = `agent "${launch.agentName}": `
  const failed = (
    message: string,
    extra?: { error?: AgentFailed["error"]; stderr?: string; events?: ReadonlyArray<AcpMessage> }
  ) => new AgentFailed({ message: message.startsWith(prefix) ? message : prefix + message, ...extra })

  let turn: TurnRecorder | undefined
  const record = (message: AcpMessage) => {
    if (turn !== undefined) {
      turn.events.push(message)
      turn.onMessage?.(message)
    }
  }

  // The session's settings, kept current from the agent's updates.
  let settings: SettingsState = noSettings
  const usage = new UsageMeter()
  const noteUpdate = (message: AcpMessage) => {
    const update = (message["params"] as { update?: any } | undefined)?.update
    if (update?.sessionUpdate === "usage_update") usage.observe(update)
    else if (update?.sessionUpdate === "config_option_update" && Array.isArray(update.configOptions)) {
      settings = withConfigOptions(settings, update.configOptions)
    } else if (update?.sessionUpdate === "current_mode_update" && typeof update.currentModeId === "string") {
      settings = withCurrentMode(settings, update.currentModeId)
    }
  }

  let connectionClosed = false
  const connection = makeAcpConnection((message) => {
    record(message as AcpMessage)
    agentProcess.writeLine(JSON.stringify(message))
  }, {
    requestPermission: (request) =>
      launch.requests === undefined
        ? answerPermission(launch.permissionMode, request)
        : launch.requests.permission(request),
    // Outside ask mode nobody is there to fill in a form.
    createElicitation: (request) =>
      launch.requests === undefined ? { action: "decline" } : launch.requests.elicitation(request)
  })

  const plan = yield* launch.plan(launch.agent.command)
  const agentProcess = yield* spawnAgentProcess(plan.argv, {
    cwd: plan.cwd,
    env: plan.env,
    onLine: (line) => {
      const message = parseJsonLine(line)
      if (message === undefined || connectionClosed) return
      record(message)
      if (message["method"] === "session/update") noteUpdate(message)
      connection.receive(message)
    },
    // Ending the connection rejects every call still waiting on the agent.
    onClose: () => {
      connectionClosed = true
      connection.close()
    }
  }).pipe(Effect.mapError((error) => failed(`could not start: ${error.message}`)))

  const call = <A>(label: string, run: () => Promise<A>) =>
    Effect.tryPromise({ try: run, catch: (cause) => cause }).pipe(
      Effect.catchAll((cause) =>
        Effect.gen(function*() {
          const reason = describe(cause)
          const error = cause instanceof AcpRequestError && cause.code === authRequiredCode
            ? "agent_auth_required" as const
            : "agent_failed" as const
          // A closed connection means the agent is going: wait for it, so the error carries
          // all of its stderr and its exit code, and the process is gone when the caller hears.
          const exit = connectionClosed
            ? yield* Effect.option(Effect.timeout(agentProcess.exited, killGrace))
            : Option.none()
          const exited = Option.match(exit, { onNone: () => "", onSome: (code) => ` (exit code ${code})` })
          // The kernel's reason (its memory limit) says more than the exit code.
          const note = Option.isSome(exit) ? yield* plan.deathNote : undefined
          const why = note === undefined ? `${reason}${exited}` : `${note}${exited}`
          return yield* failed(`${label} failed: ${why}`, { error, stderr: agentProcess.stderr() })
        })
      )
    )

  const initialized = yield* call("initialize", () =>
    connection.initialize({
      protocolVersion: PROTOCOL_VERSION,
      clientCapabilities: { fs: { readTextFile: false, writeTextFile: false }, terminal: false },
      clientInfo: { name: "clawdforge", version }
    })).pipe(
      Effect.timeoutFail({ duration: startTimeout, onTimeout: () => failed("initialize timed out", { stderr: agentProcess.stderr() }) })
    )

  const capabilities = initialized.agentCapabilities ?? {}
  const canResume = capabilities.sessionCapabilities?.resume != null
  const canLoad = capabilities.loadSession === true
  const canClose = capabilities.sessionCapabilities?.close != null
  const opening = (answer: OpenedSettings | null | undefined) =>
    Effect.sync(() => settings = settingsOf(answer?.configOptions, answer?.modes))
  const newSession = (origin: AgentHandle["origin"]) =>
    call("session/new", () => connection.newSession({ cwd: launch.cwd, mcpServers: [] })).pipe(
      Effect.tap(opening),
      Effect.map((created) => ({ sessionId: created.sessionId, origin }))
    )
  const load = (sessionId: string) =>
    canLoad
      ? call("session/load", () => connection.loadSession({ sessionId, cwd: launch.cwd, mcpServers: [] })).pipe(
        Effect.tap((answer) => opening(answer as OpenedSettings | null)),
        Effect.as({ sessionId, origin: "loaded" as AgentHandle["origin"] }),
        // The agent lost it (or cannot load): carry on in a fresh session, and say so.
        Effect.orElse(() => newSession("new_after_failed_load"))
      )
      : newSession("new_after_failed_load")
  // Resuming prefers `session/resume` (no history replayed), then `session/load`, then a new session.
  const resume = (sessionId: string) =>
    canResume
      ? call("session/resume", () => connection.resumeSession({ sessionId, cwd: launch.cwd, mcpServers: [] })).pipe(
        Effect.tap(opening),
        Effect.as({ sessionId, origin: "resumed" as AgentHandle["origin"] }),
        Effect.orElse(() => load(sessionId))
      )
      : load(sessionId)
  const opened = yield* Option.match(launch.resume, {
    onNone: () => newSession("new"),
    onSome: resume
  }).pipe(
    Effect.timeoutFail({ duration: startTimeout, onTimeout: () => failed("session setup timed out", { stderr: agentProcess.stderr() }) })
  )

  // An agent that advertises `session/close` hears of the end before its process is stopped
  // (finalizers run in reverse: this one before the process's own).
  if (canClose) {
    yield* Effect.addFinalizer(() =>
      connectionClosed
        ? Effect.void
        : call("session/close", () => connection.closeSession({ sessionId: opened.sessionId })).pipe(
          Effect.timeout(closeTimeout),
          Effect.ignore,
          // Finalizers are uninterruptible: on a fiber of its own the timeout can interrupt the wait.
          Effect.interruptible,
          Effect.forkDaemon,
          Effect.flatMap(Fiber.join)
        )
    )
  }

  // On every turn's path: no `Effect.fn` (see `spanWhenTraced`).
  const prompt = Effect.fnUntraced(function*(input: PromptInput) {
    const recorder: TurnRecorder = { events: [], onMessage: input.onMessage }
    turn = recorder
    usage.start()
    const response = yield* call("session/prompt", () =>
      connection.prompt({ sessionId: opened.sessionId, prompt: promptBlocks(input, launch.cwd) })).pipe(
        Effect.mapError((error) =>
          failed(error.message, { error: error.error, stderr: agentProcess.stderr(), events: recorder.events })
        ),
        Effect.ensuring(Effect.sync(() => turn = turn === recorder ? undefined : turn))
      )
    return { stopReason: response.stopReason, usage: usage.end(response), events: recorder.events }
  })

  /** Applies the changes one ACP call at a time, once all of them are known to be offered. */
  const configure = Effect.fn("AcpDriver.configure")(function*(changes: AgentSettings) {
    const steps = yield* planSettings(settings, changes)
    for (const step of steps) {
      if (step.method === "session/set_mode") {
        yield* call(step.method, () => connection.setMode({ sessionId: opened.sessionId, modeId: step.modeId }))
        settings = withCurrentMode(settings, step.modeId)
      } else {
        const params = typeof step.value === "boolean"
          ? { sessionId: opened.sessionId, configId: step.configId, type: "boolean" as const, value: step.value }
          : { sessionId: opened.sessionId, configId: step.configId, value: step.value }
        const answer = yield* call(step.method, () => connection.setConfigOption(params))
        if (Array.isArray(answer?.configOptions)) settings = withConfigOptions(settings, answer.configOptions)
      }
    }
  })

  const handle: AgentHandle = {
    agentSessionId: opened.sessionId,
    origin: opened.origin,
    capabilities: {
      load_session: canLoad,
      resume: canResume,
      close: canClose,
      list: capabilities.sessionCapabilities?.list != null,
      prompt: {
        image: capabilities.promptCapabilities?.image === true,
        audio: capabilities.promptCapabilities?.audio === true,
        embedded_context: capabilities.promptCapabilities?.embeddedContext === true
      },
      auth_methods: (initialized.authMethods ?? []).map((method) => ({ id: method.id, name: method.name }))
    },
    prompt: (input) => prompt(input).pipe(spanWhenTraced("AcpDriver.prompt")),
    settings: () => settings,
    configure,
    cancel: Effect.sync(() => connection.cancel(opened.sessionId)),
    isAlive: Effect.sync(() => !connectionClosed && agentProcess.isRunning()),
    pid: agentProcess.pid
  }
  return handle
})

/**
 * The native driver: spawns the agent command and speaks ACP over its stdio through the
 * ACP SDK. The SDK's transport is ours, so every JSON-RPC message of a turn is recorded
 * exactly as it crosses the wire.
 */
export class AcpDriver extends Effect.Service<AcpDriver>()("clawdforge/AcpDriver", {
  succeed: { start } as const satisfies AgentDriver
}) {}

/** An error as one line; an agent's JSON-RPC error keeps its `data`, which says what went wrong. */
const describe = (cause: unknown): string => {
  if (cause instanceof AcpRequestError && cause.data !== undefined && cause.data !== null) {
    const data = JSON.stringify(cause.data)
    return `${cause.message}: ${data.length > 2000 ? `${data.slice(0, 2000)}…` : data}`
  }
  if (cause instanceof Error) return cause.message
  if (typeof cause === "object" && cause !== null && "message" in cause) return String(cause.message)
  return String(cause)
}
