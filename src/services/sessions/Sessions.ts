import type { CreateElicitationRequest, RequestPermissionRequest } from "@agentclientprotocol/sdk"
import { Clock, Deferred, Duration, Effect, ExecutionStrategy, Exit, Fiber, FiberMap, Layer, Metric, Option, Queue, Runtime, Schedule, Schema, Scope } from "effect"
import { randomBytes } from "node:crypto"
import type { AgentDefinition } from "../../domain/Agent.js"
import {
  AgentFailed,
  type AppSessionLimit,
  BadRequest,
  type InvalidConfig,
  PermissionNotFound,
  PoolFull,
  SessionClosed,
  SessionNotFound,
  ShuttingDown,
  TurnNotFound,
  TurnTimeout
} from "../../domain/Errors.js"
import { type AppName, SessionId } from "../../domain/Ids.js"
import {
  type AgentSettings,
  type CreateSessionRequest,
  type PermissionMode,
  Session,
  type TurnReply,
  type TurnRequest
} from "../../domain/Session.js"
import type { PermissionAnswer, PermissionRequest } from "../../domain/Permission.js"
import type { AcpMessage } from "../../domain/Session.js"
import type { AgentHandle, AgentLaunch, AgentRequests, TurnOutcome } from "../agents/AgentDriver.js"
import { noSettings, type SettingsState } from "../agents/AgentSettings.js"
import { noUsage } from "../agents/UsageMeter.js"
import { answerPermission as policyAnswer } from "../agents/Permissions.js"
import { describeAnswer, type HeldAnswer, optionsOf, PermissionDesk } from "./PermissionDesk.js"
import { AgentPool } from "./AgentPool.js"
import { AgentRegistry } from "../agents/AgentRegistry.js"
import { AppConfig } from "../config/AppConfig.js"
import { interruptedFailure, Ledger, nowSeconds, type StoredTurnEnd } from "../ledger/Ledger.js"
import { type TurnDetail, TurnSummary } from "../../domain/Turn.js"
import { endOfExit, LiveTurn, storedFeed, type TurnFeed } from "./TurnFeed.js"
import { turnDuration, turnsTotal } from "../observability/Metrics.js"
import { spanWhenTraced } from "../observability/Spans.js"
import { Workspaces } from "./Workspaces.js"
import { Webhooks } from "../tenancy/Webhooks.js"
import { AppLimits } from "../tenancy/AppLimits.js"
import { AppSecrets } from "../tenancy/AppSecrets.js"

/** How long a cancelled turn may take to stop before its agent is killed. */
const cancelGrace = Duration.seconds(2)
/** On shutdown, how long running turns may go on before they are cancelled. */
const shutdownGrace = Duration.seconds(3)

/** Why an agent could not be started for a session. */
export type StartError = AgentFailed | PoolFull | AppSessionLimit

export type TurnError = StartError | TurnTimeout | SessionClosed

/** One turn waiting in a session's mailbox. */
interface Job {
  readonly request: TurnRequest
  /** Accepted: its index taken and its row stored (`queued`). */
  readonly live: LiveTurn
  readonly reply: Deferred.Deferred<TurnReply, TurnError>
}

export type SettingsError = InvalidConfig | StartError | SessionClosed

/** A change of settings waiting in a session's mailbox: it is applied between turns, in order. */
interface SettingsJob {
  readonly settings: AgentSettings
  readonly done: Deferred.Deferred<void, SettingsError>
}

type MailboxItem = Job | SettingsJob
const isSettingsJob = (item: MailboxItem): item is SettingsJob => "settings" in item

/** A turn accepted into a session's mailbox. */
export interface AcceptedTurn {
  readonly turnIndex: number
  /** Its messages as they happen (and the ones before), for its streams. */
  readonly feed: TurnFeed
  /** Waits for its reply. */
  readonly reply: Effect.Effect<TurnReply, TurnError>
}

/** What an actor's fiber and its callers share. */
interface ActorState {
  /** The agent the session runs now (it changes when the agent is restarted). */
  current: AgentHandle | undefined
  /** Whether a turn is running. */
  running: boolean
  /** Set when a turn found the session closed in the ledger by another process (the admin CLI). */
  closedInLedger: boolean
  /** Its accepted turns until their end is stored, by index. */
  readonly turns: Map<number, LiveTurn>
  /** The turn running now. */
  turn: LiveTurn | undefined
  /** Requests of the agent held for the caller (ask mode). */
  readonly desk: PermissionDesk
  /** The settings as the ledger has them: stored again when the agent's differ. */
  savedSettings: SettingsState
}

/** A live session: a fiber that owns the agent and works through its mailbox in order. */
interface Actor {
  /** The session as it was opened: whose it is and where it works. */
  readonly session: Session
  readonly state: ActorState
  readonly mailbox: Queue.Queue<MailboxItem>
  /** Done once the actor has stopped (and answered what was left in its mailbox). */
  readonly stopped: Deferred.Deferred<never, SessionClosed>
  /** Accepting is one at a time, so that mailbox order is index order. */
  readonly accepting: Effect.Semaphore
  /** Cancels the running turn, if any; true when there was one. */
  readonly cancel: Effect.Effect<boolean>
  readonly isRunning: Effect.Effect<boolean>
}

/** The turn counter of one app and outcome, tagged once: tagging builds a new metric key. */
const turnCounters = new Map<string, Metric.Metric.Counter<number>>()
const turnCounter = (app: string, outcome: string) => {
  const key = `${app}\u0000${outcome}`
  let counter = turnCounters.get(key)
  if (counter === undefined) {
    counter = turnsTotal.pipe(Metric.tagged("app", app), Metric.tagged("outcome", outcome))
    turnCounters.set(key, counter)
  }
  return counter
}

/** Counts the turn by outcome. */
const recordTurnMetrics = (app: string, exit: Exit.Exit<TurnReply, TurnError>) =>
  Metric.increment(
    turnCounter(app, Exit.isSuccess(exit) ? "ok" : exit.cause._tag === "Fail" ? exit.cause.error.error : "interrupted")
  )

export const newSessionId = () => SessionId.make(randomBytes(18).toString("base64url"))
const isSessionId = Schema.is(SessionId)

/** The text of a turn: its `agent_message_chunk` texts joined. */
const agentText = (events: ReadonlyArray<AcpMessage>) => {
  let text = ""
  for (const event of events) {
    if (event["method"] !== "session/update") continue
    const update = (event["params"] as any)?.update
    if (update?.sessionUpdate === "agent_message_chunk" && typeof update.content?.text === "string") {
      text += update.content.text
    }
  }
  return text
}

/** How a turn's end is stored, from how it ended. */
const storedEnd = (
  exit: Exit.Exit<TurnReply, TurnError>,
  live: LiveTurn,
  draining: boolean,
  /** The Effect clock's now (timestamps follow it, as the rest of the ledger's do). */
  nowMs: number
): StoredTurnEnd => {
  const durationMs = live.startedAt === undefined ? null : Date.now() - live.startedAt
  const startedAt = durationMs === null ? null : Math.floor((nowMs - durationMs) / 1000)
  const endedAt = Math.floor(nowMs / 1000)
  if (Exit.isSuccess(exit)) {
    const { events, stop_reason, usage } = exit.value
    return {
      status: stop_reason === "cancelled" ? "cancelled" : "completed",
      usage,
      startedAt,
      endedAt,
      durationMs,
      stopReason: stop_reason,
      error: null,
      events,
      eventsJson: live.eventsJson(events)
    }
  }
  const error = exit.cause._tag === "Fail" ? exit.cause.error : closedError("")
  const closed = error._tag === "SessionClosed"
  const events = error._tag === "AgentFailed" && error.events !== undefined
    ? error.events as ReadonlyArray<AcpMessage>
    : live.messages
  return {
    status: closed ? (draining ? "interrupted" : "cancelled") : "failed",
    usage: noUsage,
    startedAt,
    endedAt,
    durationMs,
    stopReason: null,
    error: closed && draining
      ? interruptedFailure
      : { error: error.error, message: closed ? "The session was closed before the turn ended" : error.message },
    events,
    eventsJson: live.eventsJson(events)
  }
}

const closedError = (id: string) => new SessionClosed({ message: `Session ${id} is closed` })
const notFound = (id: string) => new SessionNotFound({ message: `No session ${id.slice(0, 64)}` })

export class Sessions extends Effect.Service<Sessions>()("clawdforge/Sessions", {
  scoped: Effect.gen(function*() {
    const config = yield* AppConfig
    const ledger = yield* Ledger
    const pool = yield* AgentPool
    const registry = yield* AgentRegistry
    const workspaces = yield* Workspaces
    const webhooks = yield* Webhooks
    const limits = yield* AppLimits
    const secrets = yield* AppSecrets
    const fibers = yield* FiberMap.make<SessionId>()
    // Audit events told of by a driver's callback, written from outside any fiber.
    const runForkAudit = Runtime.runFork(yield* Effect.runtime<never>())
    // Set synchronously before an actor starts, so two turns never start two actors.
    const actors = new Map<SessionId, Deferred.Deferred<Actor, StartError>>()
    // The running actors: a turn for one of them needs no ledger read (the actor knows its owner).
    const liveActors = new Map<SessionId, Actor>()
    // Set when the gateway starts to stop: new sessions and turns are refused from then on.
    let draining = false
    const shuttingDown = new ShuttingDown({ message: "The gateway is shutting down" })
    // Sessions whose actor this gateway stops to hand them to another (a cluster's shard moving).
    const handingOver = new Set<SessionId>()
    const handedOver = new AgentFailed({
      message: "The gateway node running this turn handed its session to another node; the turn is interrupted " +
        "(it is not run again)"
    })
    /** A turn's session stopped by the gateway itself (not closed): its turns are `interrupted`. */
    const stoppedByGateway = (id: SessionId) => draining || handingOver.has(id)
    /** What the caller of a turn ended that way hears: a handed-over session is not closed. */
    const answerOf = (id: SessionId, exit: Exit.Exit<TurnReply, TurnError>): Exit.Exit<TurnReply, TurnError> =>
      handingOver.has(id) && Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error._tag === "SessionClosed"
        ? Exit.fail(handedOver)
        : exit

    const untilIdle = (live: ReadonlyArray<Actor>) =>
      Effect.exists(live, (actor) => actor.isRunning).pipe(
        Effect.repeat({ until: (busy) => !busy, schedule: Schedule.spaced("50 millis") })
      )
    /**
     * Graceful stop: let running turns end, cancel those that do not, and give them a moment
     * to answer. Runs before the HTTP server closes (see `SessionsDrain`) and again, as a
     * no-op by then, before the FiberMap interrupts every actor.
     */
    const drain = Effect.gen(function*() {
      draining = true
      const live = [...liveActors.values()]
      yield* Effect.timeoutOption(untilIdle(live), shutdownGrace)
      yield* Effect.forEach(live, (actor) => actor.cancel, { discard: true })
      yield* Effect.timeoutOption(untilIdle(live), cancelGrace)
    }).pipe(
      // It runs in finalizers, where the fiber is uninterruptible (and may be interrupted
      // already): run it on a fiber of its own so its timeouts can interrupt what they time.
      Effect.interruptible,
      Effect.forkDaemon,
      Effect.flatMap(Fiber.join),
      Effect.withSpan("Sessions.drain")
    )
    yield* Effect.addFinalizer(() => drain)

    // Turns that a gateway which died left queued or running: their outcome is unknown, and
    // they say so (the sessions' next turns take the indexes after them).
    // In a cluster the other nodes' turns are running: there, one node does it for sessions no node
    // holds (src/cluster), and a session resumed on a node does it for itself (`actorFor`).
    const interrupted = config.cluster ? 0 : yield* ledger.interruptUnfinished(yield* nowSeconds)
    if (interrupted > 0) yield* Effect.logWarning(`${interrupted} turn(s) left unfinished by the last run are interrupted`)

    /** The session `find` finds by a well-formed id, or 404. */
    const orNotFound = (id: string, find: (id: SessionId) => Effect.Effect<Option.Option<Session>>) =>
      isSessionId(id)
        ? Effect.flatMap(find(id), Option.match({
          onNone: () => Effect.fail(notFound(id)),
          onSome: Effect.succeed
        }))
        : Effect.fail(notFound(id))

    /** The caller's session, or 404: another app's session does not exist for this caller. */
    const owned = (app: AppName, id: string) => orNotFound(id, (sessionId) => ledger.getSession(app, sessionId))

    const launchOf = (
      session: Session,
      definition: AgentDefinition,
      resume: Option.Option<string>,
      desk: PermissionDesk
    ): AgentLaunch => ({
      app: session.app_name,
      sessionId: session.session_id,
      agentName: session.agent,
      agent: definition,
      cwd: session.cwd,
      permissionMode: session.permission_mode,
      resume,
      requests: session.permission_mode === "ask" ? desk : policyRequests(session.session_id, session.permission_mode)
    })

    /** The launch with the app's own network rule (its `network` limit), read when the agent starts. */
    const launchFor = (
      session: Session,
      definition: AgentDefinition,
      resume: Option.Option<string>,
      desk: PermissionDesk
    ) =>
      Effect.map(limits.networkFor(session.app_name), (network): AgentLaunch => ({
        ...launchOf(session, definition, resume, desk),
        network: Option.getOrUndefined(network)
      }))

    /** The registry's entry with the app's own agent environment (`clawdforge apps env`) over its env. */
    const withAppEnv = (session: Session, definition: AgentDefinition) =>
      secrets.envFor(session.app_name).pipe(
        Effect.map((env): AgentDefinition =>
          Object.keys(env).length === 0 ? definition : { ...definition, env: { ...definition.env, ...env } }
        ),
        // The message names the variable, never a value.
        Effect.mapError((error) => new AgentFailed({ message: error.message }))
      )

    /** What the agent asks of an ask-mode session as the audit trail keeps it. */
    const requestDetail = (request: PermissionRequest) => ({
      request_id: request.request_id,
      kind: request.kind,
      turn_index: request.turn_index,
      tool_call: request.tool_call === null ? null : toolCallSummary(request.tool_call),
      options: request.options
    })
    /** A tool call as the audit trail keeps it: what it is, not its input. */
    const toolCallSummary = (toolCall: { readonly [key: string]: unknown }) => ({
      id: toolCall["toolCallId"] ?? null,
      title: toolCall["title"] ?? null,
      kind: toolCall["kind"] ?? null
    })
    const audit = (id: SessionId, events: ReadonlyArray<readonly ["permission_request" | "permission_answer", unknown]>) =>
      void runForkAudit(Effect.forEach(events, ([event, detail]) => ledger.recordEvent(id, event, detail), { discard: true }))
    const answerDetail = (requestId: string | null, answer: HeldAnswer | (Omit<HeldAnswer, "by"> & { by: "policy" })) => ({
      request_id: requestId,
      by: answer.by,
      outcome: answer.outcome,
      option_id: answer.optionId
    })

    /**
     * Outside ask mode the permission mode answers at once (elicitations are declined): every
     * request still leaves two audit events, what was asked and what the policy answered.
     */
    const policyRequests = (id: SessionId, mode: Exclude<PermissionMode, "ask">): AgentRequests => ({
      permission: (request: RequestPermissionRequest) => {
        const answer = policyAnswer(mode, request)
        audit(id, [
          ["permission_request", { kind: "permission", tool_call: toolCallSummary(request.toolCall), options: optionsOf(request) }],
          ["permission_answer", answerDetail(null, { by: "policy", ...describeAnswer(answer) })]
        ])
        return answer
      },
      elicitation: (request: CreateElicitationRequest) => {
        audit(id, [
          ["permission_request", { kind: "elicitation", message: request.message }],
          ["permission_answer", answerDetail(null, { by: "policy", outcome: "decline", optionId: null })]
        ])
        return { action: "decline" }
      }
    })

    /** The desk of an ask-mode session: requests audited (and sent to the app's webhook) as they come. */
    const makeDesk = (session: Session, currentTurn: () => LiveTurn | undefined) =>
      new PermissionDesk({
        timeoutMs: Duration.toMillis(config.permissionTimeout),
        currentTurn,
        onHeld: (request) => {
          audit(session.session_id, [["permission_request", requestDetail(request)]])
          void runForkAudit(webhooks.permissionRequested(session.app_name, session.session_id, request))
        },
        onAnswered: (request, answer) =>
          audit(session.session_id, [["permission_answer", answerDetail(request.request_id, answer)]])
      })

    /** Audits a (re)started agent, and keeps its own session id for the next `session/load`. */
    const noteAgentStart = (id: SessionId, handle: AgentHandle, previous: Option.Option<string>) =>
      Effect.gen(function*() {
        yield* ledger.recordEvent(id, "agent_start", { origin: handle.origin, pid: handle.pid })
        if (Option.getOrUndefined(previous) !== handle.agentSessionId) {
          yield* ledger.setAgentSessionId(id, handle.agentSessionId)
        }
      })

    /**
     * Stores how the turn ended (one statement), then lets its streams and its caller know: the
     * actor forgets it once the ledger has it.
     */
    const endTurn = (session: Session, state: ActorState, job: Job, exit: Exit.Exit<TurnReply, TurnError>) =>
      Clock.currentTimeMillis.pipe(
        Effect.map((nowMs) => storedEnd(exit, job.live, stoppedByGateway(session.session_id), nowMs)),
        Effect.tap((end) => ledger.endTurn(session.session_id, job.live.turnIndex, end)),
        // What it cost counts against the app's daily budget from now on.
        Effect.tap((end) => limits.addUsage(session.app_name, end.usage)),
        Effect.flatMap((end) => webhooks.turnEnded(session.app_name, session.session_id, job.live.turnIndex, end)),
        Effect.ensuring(Effect.sync(() => {
          state.turns.delete(job.live.turnIndex)
          job.live.finish(endOfExit(exit))
        }))
      )

    /** A turn that will never run (its session stopped): stored as such and answered 410. */
    const abandon = (session: Session, state: ActorState) => (job: MailboxItem) =>
      Effect.suspend(() => {
        if (isSettingsJob(job)) return Deferred.fail(job.done, closedError(session.session_id))
        if (job.live.end !== undefined) return Effect.void
        const exit = Exit.fail(closedError(session.session_id))
        return endTurn(session, state, job, exit).pipe(
          Effect.catchAllCause(() => Effect.void),
          Effect.zipRight(Deferred.done(job.reply, answerOf(session.session_id, exit)))
        )
      })

    /** Runs a session: holds its pool slot and agent, takes turns from the mailbox one by one. */
    const actorLoop = (
      session: Session,
      definition: AgentDefinition,
      slot: Scope.CloseableScope,
      first: { readonly handle: AgentHandle; readonly scope: Scope.CloseableScope },
      mailbox: Queue.Queue<MailboxItem>,
      state: ActorState
    ) =>
      Effect.gen(function*() {
        const id = session.session_id
        let agent = first

        // The agent died between turns (or timed out): start it again and resume its session.
        const ensureAgent = Effect.gen(function*() {
          if (yield* agent.handle.isAlive) return agent.handle
          yield* Scope.close(agent.scope, Exit.void)
          const scope = yield* Scope.fork(slot, ExecutionStrategy.sequential)
          const previous = Option.some(agent.handle.agentSessionId)
          const handle = yield* withAppEnv(session, definition).pipe(
            Effect.flatMap((agent) => Effect.flatMap(launchFor(session, agent, previous, state.desk), pool.start)),
            Scope.extend(scope),
            Effect.tapError(() => Scope.close(scope, Exit.void))
          )
          agent = { handle, scope }
          state.current = handle
          yield* noteAgentStart(id, handle, previous)
          return handle
        })

        const timeout = new TurnTimeout({
          message: `The turn ran past ${Duration.format(config.turnTimeout)} and was cancelled`,
          timeout_secs: Duration.toSeconds(config.turnTimeout)
        })
        const runFork = Runtime.runFork(yield* Effect.runtime<never>())
        let turnsStarted = 0

        /** Past the deadline: cancel the turn; if the agent ignores that, stop it (the next turn restarts it). */
        const expire = (handle: AgentHandle, turn: number) =>
          handle.cancel.pipe(
            Effect.zipRight(Effect.sync(() => state.desk.cancelAll())),
            Effect.zipRight(Effect.sleep(cancelGrace)),
            Effect.zipRight(Effect.suspend(() =>
              state.running && turnsStarted === turn ? Scope.close(agent.scope, Exit.void) : Effect.void
            )),
            Effect.forkIn(slot)
          )

        /**
         * One prompt under the turn timeout. The deadline is one timer, not a race of fibers (a
         * race forks and joins two fibers on every turn): past it the turn is cancelled, and
         * whatever the prompt ends with, the turn answers 504.
         */
        const runTurn = (handle: AgentHandle, job: Job) =>
          Effect.suspend(() => {
            const turn = ++turnsStarted
            let expired = false
            const timer = setTimeout(() => {
              expired = true
              runFork(expire(handle, turn))
            }, Duration.toMillis(config.turnTimeout))
            return handle.prompt({ text: job.request.prompt, files: job.request.files ?? [], onMessage: job.live.push })
              .pipe(
                Effect.ensuring(Effect.sync(() => clearTimeout(timer))),
                Effect.catchAll((error) => Effect.fail(expired ? timeout : error)),
                Effect.filterOrFail(() => !expired, () => timeout)
              )
          })

        /** A change of settings, between turns: applied by the agent, then stored. */
        const configure = (job: SettingsJob) =>
          Effect.uninterruptibleMask((restore) =>
            restore(Effect.flatMap(ensureAgent, (handle) => handle.configure(job.settings))).pipe(
              Effect.zipRight(saveSettings),
              Effect.exit,
              Effect.map((exit) => Exit.isInterrupted(exit) ? Exit.fail(closedError(id)) : exit),
              Effect.flatMap((exit) => Deferred.done(job.done, exit))
            )
          )

        /** Stores the agent's settings when they changed (the agent may change them in a turn). */
        const saveSettings = Effect.suspend(() => {
          const settings = agent.handle.settings()
          if (settings === state.savedSettings) return Effect.void
          state.savedSettings = settings
          return ledger.setSettings(id, settings)
        })

        /** One job: the turn may be interrupted (a close), its commit and its answer may not. */
        const work = (job: Job) =>
          Effect.uninterruptibleMask((restore) =>
            Effect.gen(function*() {
              const handle = yield* restore(ensureAgent)
              const startedAt = Date.now()
              job.live.startedAt = startedAt
              state.running = true
              state.turn = job.live
              const outcome: TurnOutcome = yield* restore(runTurn(handle, job)).pipe(
                Effect.ensuring(Effect.sync(() => {
                  state.running = false
                  state.turn = undefined
                  // The agent asks nothing of a turn that is over.
                  state.desk.cancelAll()
                }))
              )
              yield* Metric.update(turnDuration, (Date.now() - startedAt) / 1000)
              const reply: TurnReply = {
                ok: true,
                session_id: id,
                turn_index: job.live.turnIndex,
                stop_reason: outcome.stopReason,
                usage: outcome.usage,
                events: outcome.events
              }
              return reply
            }).pipe(
              Effect.tapError((error) =>
                Effect.gen(function*() {
                  yield* ledger.recordEvent(id, "turn_failed", {
                    turn_index: job.live.turnIndex,
                    error: error.error,
                    message: error.message
                  })
                  if (!(yield* agent.handle.isAlive)) {
                    yield* ledger.recordEvent(id, "agent_exit", { pid: agent.handle.pid })
                  }
                })
              ),
              Effect.exit,
              // Interrupted: the session was closed under the turn.
              Effect.map((exit) => Exit.isInterrupted(exit) ? Exit.fail(closedError(id)) : exit),
              // Commit the turn's end before anyone hears of it.
              Effect.tap((exit) => endTurn(session, state, job, exit)),
              Effect.tap(() => saveSettings),
              Effect.tap((exit) => recordTurnMetrics(session.app_name, exit)),
              Effect.flatMap((exit) => Deferred.done(job.reply, answerOf(id, exit)))
            )
          )

        return yield* Queue.take(mailbox).pipe(
          Effect.flatMap((item) => isSettingsJob(item) ? configure(item) : work(item)),
          Effect.forever
        )
      })

    /**
     * Starts a session's actor: takes a pool slot, starts the agent (or resumes its ACP
     * session), then forks the actor into the FiberMap, which owns it from then on.
     */
    const startActor = (session: Session, definition: AgentDefinition, resume: Option.Option<string>) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const id = session.session_id
          const ready = yield* Deferred.make<Actor, StartError>()
          actors.set(id, ready)
          const forget = Effect.sync(() => actors.get(id) === ready && actors.delete(id))
          const slot = yield* Scope.make()
          const agentScope = yield* Scope.fork(slot, ExecutionStrategy.sequential)
          // The desk reads the running turn from the actor's state, made once the agent is up.
          const desk = makeDesk(session, () => state.turn)
          // The app's live-session slot and the pool's, both held until the actor stops.
          const started = yield* restore(
            limits.reserveSession(session.app_name, session.session_id).pipe(
              Effect.zipRight(pool.reserve),
              Scope.extend(slot),
              Effect.zipRight(withAppEnv(session, definition)),
              Effect.flatMap((agent) =>
                Effect.flatMap(launchFor(session, agent, resume, desk), pool.start).pipe(Scope.extend(agentScope))
              )
            )
          ).pipe(Effect.exit)
          if (Exit.isFailure(started)) {
            yield* Scope.close(slot, Exit.void)
            yield* forget
            yield* Deferred.failCause(ready, started.cause)
            return yield* Effect.failCause(started.cause)
          }
          const handle = started.value
          const mailbox = yield* Queue.unbounded<MailboxItem>()
          const stopped = yield* Deferred.make<never, SessionClosed>()
          const state: ActorState = {
            current: handle,
            running: false,
            closedInLedger: false,
            turns: new Map(),
            turn: undefined,
            desk,
            // Stored at the end of its first turn (a resumed agent may report other settings).
            savedSettings: noSettings
          }
          const actor: Actor = {
            session,
            state,
            mailbox,
            stopped,
            accepting: Effect.unsafeMakeSemaphore(1),
            // ACP: once the turn is cancelled, every request still waiting is answered `cancelled`.
            cancel: Effect.suspend(() =>
              state.running && state.current !== undefined
                ? Effect.as(Effect.zipRight(state.current.cancel, Effect.sync(() => desk.cancelAll())), true)
                : Effect.succeed(false)
            ),
            isRunning: Effect.sync(() => state.running)
          }
          yield* FiberMap.run(
            fibers,
            id,
            actorLoop(session, definition, slot, { handle, scope: agentScope }, mailbox, state).pipe(
              Effect.ensuring(
                Effect.all([
                  Deferred.fail(stopped, closedError(id)),
                  Effect.sync(() => desk.cancelAll()),
                  // Turns still in the mailbox will never run: answer them.
                  Effect.flatMap(Queue.takeAll(mailbox), (jobs) => Effect.forEach(jobs, abandon(session, state), { discard: true })),
                  forget,
                  Effect.sync(() => liveActors.get(id) === actor && liveActors.delete(id)),
                  Scope.close(slot, Exit.void)
                ], { discard: true })
              )
            )
          )
          liveActors.set(id, actor)
          yield* Deferred.succeed(ready, actor)
          return { actor, handle }
        })
      )

    /** The live actor of an open session, resuming the session if the gateway lost it. */
    const actorFor = (session: Session) =>
      Effect.gen(function*() {
        const existing = actors.get(session.session_id)
        if (existing !== undefined) return yield* Deferred.await(existing)
        const definition = yield* registry.lookup(session.agent).pipe(
          Effect.mapError((error) => new AgentFailed({ message: error.message }))
        )
        const resume = yield* ledger.agentSessionId(session.session_id)
        // A cluster node resuming a session another node held (one that died): what that node
        // left queued or running will not end there.
        if (config.cluster) yield* ledger.interruptUnfinished(yield* nowSeconds, session.session_id)
        const { actor, handle } = yield* startActor(session, definition, resume)
        yield* noteAgentStart(session.session_id, handle, resume)
        return actor
      })

    /** Opens a session (under `sessionId` when a cluster node chose it: the node that owns it). */
    const create = Effect.fn("Sessions.create")(function*(app: AppName, request: CreateSessionRequest, sessionId?: SessionId) {
      if (draining) return yield* shuttingDown
      const definition = yield* registry.lookup(request.agent)
      yield* limits.checkBudget(app)
      const permissionMode = request.permission_mode ?? config.defaultPermissionMode
      // The app's ceiling (its `permission_modes`), checked before anything is made for the session.
      yield* limits.checkPermissionMode(app, request.permission_mode)
      if (permissionMode === "ask" && definition.driver === "acpx") {
        return yield* new BadRequest({
          message: `permission_mode "ask" needs an agent on the acp driver; "${request.agent}" runs through acpx, ` +
            "which answers permissions itself"
        })
      }
      const id = sessionId ?? newSessionId()
      const cwd = yield* workspaces.prepare(app, id, request.cwd)
      const opened = new Session({
        session_id: id,
        app_name: app,
        agent: request.agent,
        meta: request.meta ?? {},
        cwd,
        permission_mode: permissionMode,
        created_at: yield* nowSeconds,
        last_turn_at: null,
        closed_at: null,
        turn_count: 0,
        status: "open",
        ...noSettings
      })
      const { actor, handle } = yield* startActor(opened, definition, Option.none()).pipe(
        Effect.tapError(() => workspaces.remove(app, id))
      )
      // The settings asked for, applied before anyone knows the session: a value the agent does
      // not offer leaves nothing behind (no agent, no workspace, no ledger row).
      const discard = Effect.zipRight(FiberMap.remove(fibers, id), workspaces.remove(app, id))
      if (request.model !== undefined || request.mode !== undefined || request.config !== undefined) {
        yield* handle.configure({ model: request.model, mode: request.mode, config: request.config }).pipe(
          Effect.onError(() => discard)
        )
      }
      const { model, mode, config_options } = actor.state.savedSettings = handle.settings()
      const session = new Session({ ...opened, model, mode, config_options })
      yield* ledger.createSession(session, handle.agentSessionId).pipe(Effect.onError(() => discard))
      return session
    })

    const get = Effect.fn("Sessions.get")(function*(app: AppName, id: string) {
      return yield* owned(app, id)
    })

    const list = Effect.fn("Sessions.list")(
      function*(app: AppName, options: { readonly status?: "open" | "closed" | undefined; readonly limit?: number | undefined }) {
        return yield* ledger.listSessions(app, { status: options.status, limit: options.limit ?? 100 })
      }
    )

    /**
     * Accepts the turn (its row stored with the next index, one statement) and puts it in the
     * actor's mailbox. Accepting is one at a time per session, so mailbox order is index order.
     */
    const enqueue = (actor: Actor, request: TurnRequest) =>
      Effect.gen(function*() {
        const id = actor.session.session_id
        const files = request.files === undefined || request.files.length === 0
          ? []
          : yield* workspaces.resolveFiles(actor.session.cwd, request.files)
        return yield* actor.accepting.withPermits(1)(Effect.gen(function*() {
          if (yield* Deferred.isDone(actor.stopped)) return yield* closedError(id)
          const turnIndex = yield* ledger.acceptTurn(id, {
            prompt: request.prompt,
            files: request.files ?? [],
            at: yield* nowSeconds
          })
          if (Option.isNone(turnIndex)) {
            // Closed in the ledger behind the gateway's back (the admin CLI): later turns are
            // refused at once, and the next sweep stops the agent.
            actor.state.closedInLedger = true
            return yield* closedError(id)
          }
          const live = new LiveTurn(turnIndex.value)
          actor.state.turns.set(live.turnIndex, live)
          const reply = yield* Deferred.make<TurnReply, TurnError>()
          const job: Job = { request: { ...request, files }, live, reply }
          yield* Queue.offer(actor.mailbox, job)
          // The actor may have stopped (and emptied its mailbox) before this turn arrived.
          if (yield* Deferred.isDone(actor.stopped)) yield* abandon(actor.session, actor.state)(job)
          const accepted: AcceptedTurn = { turnIndex: live.turnIndex, feed: live, reply: Deferred.await(reply) }
          return accepted
        }))
      })

    /**
     * Accepts a turn into the session's mailbox (after the 404/410/400 checks): its index is
     * taken and its row stored before this answers. A live actor answers for its session (whose
     * it is, that it is open) without a ledger read.
     */
    // On the turn's path: no `Effect.fn` (see `spanWhenTraced`).
    const submit = Effect.fnUntraced(
      function*(app: AppName, id: string, request: TurnRequest) {
        if (draining) return yield* shuttingDown
        const live = liveActors.get(id as SessionId)
        if (live !== undefined && live.session.app_name === app) {
          if (live.state.closedInLedger) return yield* closedError(live.session.session_id)
          yield* limits.admitTurn(app)
          return yield* enqueue(live, request)
        }
        const session = yield* owned(app, id)
        if (session.closed_at !== null) return yield* closedError(session.session_id)
        yield* limits.admitTurn(app)
        return yield* enqueue(yield* actorFor(session), request)
      }
    )

    /** Runs one turn: waits behind earlier turns of the session, then for the agent. */
    const turn = (app: AppName, id: string, request: TurnRequest) =>
      Effect.flatMap(submit(app, id, request), (accepted) => accepted.reply).pipe(spanWhenTraced("Sessions.turn"))

    /** The caller's session for a read: a live actor knows its owner, else the ledger answers. */
    const ownedForRead = (app: AppName, id: string) => {
      const live = liveActors.get(id as SessionId)
      return live !== undefined && live.session.app_name === app ? Effect.succeed(live.session) : owned(app, id)
    }

    /** The caller's turn while a live actor holds it (queued or running). */
    const liveTurn = (app: AppName, id: string, turnIndex: number) => {
      const live = liveActors.get(id as SessionId)
      return live !== undefined && live.session.app_name === app ? live.state.turns.get(turnIndex) : undefined
    }

    /** A stored turn as it is now: one the actor has started reads `running`. */
    const withLiveStatus = (turn: TurnSummary, live: LiveTurn | undefined): TurnSummary =>
      live === undefined || live.startedAt === undefined || turn.status !== "queued"
        ? turn
        : new TurnSummary({ ...turn, status: "running", started_at: Math.floor(live.startedAt / 1000) }, true)

    const turnNotFound = (id: string, turnIndex: number) =>
      new TurnNotFound({ message: `Session ${id.slice(0, 64)} has no turn ${turnIndex}` })

    /** The stored turn, or 404 for the session or the turn. */
    const storedTurn = (app: AppName, id: string, turnIndex: number) =>
      Effect.flatMap(ledger.getTurn(app, id, turnIndex), Option.match({
        onSome: Effect.succeed,
        onNone: () => Effect.zipRight(ownedForRead(app, id), Effect.fail(turnNotFound(id, turnIndex)))
      }))

    const listTurns = Effect.fn("Sessions.listTurns")(
      function*(app: AppName, id: string, options: { readonly after?: number | undefined; readonly limit?: number | undefined }) {
        const session = yield* ownedForRead(app, id)
        const turns = yield* ledger.listTurns(session.session_id, { after: options.after ?? 0, limit: options.limit ?? 100 })
        return turns.map((turn) => withLiveStatus(turn, liveTurn(app, id, turn.turn_index)))
      }
    )

    /** One turn with its messages: the stored ones, or what the agent said so far while it runs. */
    const getTurn = Effect.fn("Sessions.getTurn")(function*(app: AppName, id: string, turnIndex: number) {
      let stored = yield* storedTurn(app, id, turnIndex)
      const live = liveTurn(app, id, turnIndex)
      // Over since the read: read its end.
      if (live === undefined && stored.turn.status === "queued") stored = yield* storedTurn(app, id, turnIndex)
      const turn = withLiveStatus(stored.turn, live)
      const events = live !== undefined && stored.turn.status === "queued" ? live.messages.slice() : stored.events
      const detail: TurnDetail = { ok: true, ...turn, text: agentText(events), events }
      return detail
    })

    /** The turn's feed for its stream: live while the actor holds it, else as stored. */
    const followTurn = Effect.fn("Sessions.followTurn")(function*(app: AppName, id: string, turnIndex: number) {
      const live = liveTurn(app, id, turnIndex)
      if (live !== undefined) return live as TurnFeed
      const stored = yield* storedTurn(app, id, turnIndex)
      // Accepted just now, or over just now: look again.
      const again = liveTurn(app, id, turnIndex)
      if (again !== undefined) return again as TurnFeed
      if (stored.turn.status !== "queued") return storedFeed(stored.turn, stored.events)
      const last = yield* storedTurn(app, id, turnIndex)
      return storedFeed(last.turn, last.events)
    })

    /** Cancels the session's running turn; false when nothing was running. */
    const cancel = Effect.fn("Sessions.cancel")(function*(app: AppName, id: string) {
      const session = yield* owned(app, id)
      const ready = actors.get(session.session_id)
      if (ready === undefined || !(yield* Deferred.isDone(ready))) return false
      return yield* Deferred.await(ready).pipe(
        Effect.flatMap((actor) => actor.cancel),
        Effect.orElseSucceed(() => false)
      )
    })

    /**
     * Changes the session's settings between turns: the change waits in the mailbox behind the
     * turns before it, and answers the session as it is then.
     */
    const configure = Effect.fn("Sessions.configure")(function*(app: AppName, id: string, settings: AgentSettings) {
      if (draining) return yield* shuttingDown
      const session = yield* owned(app, id)
      if (session.closed_at !== null) return yield* closedError(session.session_id)
      const actor = yield* actorFor(session)
      const done = yield* Deferred.make<void, SettingsError>()
      yield* actor.accepting.withPermits(1)(Effect.gen(function*() {
        if (yield* Deferred.isDone(actor.stopped)) return yield* closedError(session.session_id)
        yield* Queue.offer(actor.mailbox, { settings, done })
      }))
      yield* Deferred.await(done)
      return yield* owned(app, id)
    })

    /** The live actor of the caller's session, if it has one (after the 404 check). */
    const liveActorOf = (app: AppName, id: string) =>
      Effect.map(ownedForRead(app, id), (session) => liveActors.get(session.session_id))

    /** The session's requests waiting for the caller (ask mode), oldest first. */
    const listPermissions = Effect.fn("Sessions.listPermissions")(function*(app: AppName, id: string) {
      const actor = yield* liveActorOf(app, id)
      return actor === undefined ? [] : actor.state.desk.list()
    })

    /** Answers a request waiting for the caller (or for an operator: `by: "admin"`). */
    const answerPermission = Effect.fn("Sessions.answerPermission")(
      function*(app: AppName, id: string, requestId: string, answer: PermissionAnswer, by: "caller" | "admin" = "caller") {
        const actor = yield* liveActorOf(app, id)
        if (actor === undefined) {
          return yield* new PermissionNotFound({ message: `No pending request ${requestId.slice(0, 64)}` })
        }
        return yield* actor.state.desk.answer(requestId, answer, by)
      }
    )

    /** Stops the session's actor (and so its agent); the ledger is the caller's business. */
    const stop = Effect.fn("Sessions.stop")(function*(id: SessionId) {
      yield* FiberMap.remove(fibers, id)
    })

    /**
     * Stops the session's actor here because another gateway takes the session over (a cluster's
     * shard moving): its running and queued turns are stored `interrupted`, and their callers
     * answered 502 `agent_failed`, not told that the session was closed.
     */
    const handOver = Effect.fn("Sessions.handOver")(function*(id: SessionId) {
      handingOver.add(id)
      yield* FiberMap.remove(fibers, id).pipe(Effect.ensuring(Effect.sync(() => handingOver.delete(id))))
    })

    const close = Effect.fn("Sessions.close")(function*(app: AppName, id: string) {
      const session = yield* owned(app, id)
      const closed = yield* ledger.closeSession(session.session_id, yield* nowSeconds)
      if (closed) yield* webhooks.sessionsClosed([session.session_id])
      yield* stop(session.session_id)
      return { alreadyClosed: !closed }
    })

    // ---- an operator's (`/admin/*`): what only this process knows, across apps -----------

    const admin = {
      /** Every live session's pending requests (ask mode), with the session they wait in. */
      pendingPermissions: Effect.sync(() =>
        [...liveActors.values()].flatMap((actor) =>
          actor.state.desk.list().map((request) => ({
            session_id: actor.session.session_id,
            app_name: actor.session.app_name,
            ...request
          }))
        )
      ),
      /** The sessions with a live agent now, by id. */
      liveSessions: Effect.sync(() =>
        new Map([...liveActors].map(([id, actor]) => [id, actor.session.app_name])) as ReadonlyMap<SessionId, AppName>
      ),
      /** The pool's use: live agents against its capacity. */
      pool: Effect.map(pool.live, (live) => ({ live, capacity: pool.capacity }))
    } as const

    return {
      admin,
      create,
      get,
      list,
      submit,
      turn,
      listTurns,
      getTurn,
      followTurn,
      cancel,
      configure,
      listPermissions,
      answerPermission,
      close,
      stop,
      handOver,
      drain,
      live: FiberMap.size(fibers),
      liveSessionIds: Effect.sync(() => [...actors.keys()])
    } as const
  }),
  dependencies: [
    AppConfig.Default,
    Ledger.Default,
    AgentPool.Default,
    AgentRegistry.Default,
    Workspaces.Default,
    Webhooks.Default,
    AppLimits.Default,
    AppSecrets.Default
  ]
}) {}

/**
 * Drains the sessions when its scope closes. Built on top of the HTTP server, it is released
 * before it: running turns end (or are cancelled) so the server's close does not wait on them.
 */
export const SessionsDrain = Layer.scopedDiscard(
  Effect.flatMap(Sessions, (sessions) => Effect.addFinalizer(() => sessions.drain))
)
