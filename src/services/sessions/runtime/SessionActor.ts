import { Deferred, Duration, Effect, ExecutionStrategy, Exit, Metric, Option, Queue, Runtime, Scope } from "effect"
import { QueueFull, type SessionClosed, TurnTimeout } from "../../../domain/Errors.js"
import type { AgentSettings, Session, TurnReply, TurnRequest } from "../../../domain/Session.js"
import type { WorkspaceChange } from "../../../domain/WorkspaceChange.js"
import type { AgentHandle, TurnOutcome } from "../../agents/AgentDriver.js"
import { noSettings, type SettingsState } from "../../agents/AgentSettings.js"
import type { Ledger } from "../../ledger/Ledger.js"
import { nowSeconds } from "../../ledger/Ledger.js"
import { turnDuration } from "../../observability/Metrics.js"
import { handedOver, sessionClosed, type SettingsError, type StartError, type TurnError } from "../SessionErrors.js"
import type { PermissionDesk } from "./PermissionDesk.js"
import { recordTurnMetrics, type TurnCommit } from "./TurnCommit.js"
import { endOfExit, LiveTurn, type TurnFeed } from "./TurnFeed.js"

/** How long a cancelled turn may take to stop before its agent is killed. */
export const cancelGrace = Duration.seconds(2)

/** A turn accepted into a session's mailbox. */
export interface AcceptedTurn {
  readonly turnIndex: number
  /** Its messages as they happen (and the ones before), for its streams. */
  readonly feed: TurnFeed
  /** Waits for its reply. */
  readonly reply: Effect.Effect<TurnReply, TurnError>
}

/** One turn waiting in a session's mailbox. */
interface TurnJob {
  readonly request: TurnRequest
  /** Accepted: its index taken and its row stored (`queued`). */
  readonly live: LiveTurn
  readonly reply: Deferred.Deferred<TurnReply, TurnError>
}

/** A change of settings waiting in a session's mailbox: it is applied between turns, in order. */
interface SettingsJob {
  readonly settings: AgentSettings
  readonly done: Deferred.Deferred<void, SettingsError>
}

type MailboxItem = TurnJob | SettingsJob
const isSettingsJob = (item: MailboxItem): item is SettingsJob => "settings" in item

/** An agent started for a session, in a scope of its own (closing it stops the agent). */
export interface RunningAgent {
  readonly handle: AgentHandle
  readonly scope: Scope.CloseableScope
}

/** What an actor's fiber and its callers share. */
export interface ActorState {
  /** The agent the session runs now (it changes when the agent is restarted). */
  current: AgentHandle
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
  /** Whether its agent runs now (it holds a pool slot); false while the session hibernates. */
  live: boolean
  /** Items accepted into the mailbox and not yet done (a turn queued or running, a change of settings). */
  pending: number
  /** When the session was last used (a turn accepted or ended, its agent started), in epoch ms. */
  lastUsedAt: number
}

/** What one session's actor needs: its session, its agent, and where its work is written. */
export interface SessionActorOptions {
  readonly session: Session
  /** Holds the session's slots until the actor stops; its pool slot's scope is forked from it. */
  readonly slot: Scope.CloseableScope
  /**
   * Holds the agent's pool slot (forked from `slot`); each agent's scope is forked from it. Closed when
   * the session hibernates, made again (with a slot reserved by `reservePool`) when it wakes.
   */
  readonly poolSlot?: Scope.CloseableScope | undefined
  /** The agent started for it. */
  readonly agent: RunningAgent
  readonly desk: PermissionDesk
  /** A turn past it is cancelled and answers 504. */
  readonly turnTimeout: Duration.Duration
  readonly ledger: Pick<Ledger, "acceptTurn" | "recordEvent" | "setSettings">
  readonly commit: TurnCommit
  /** Starts the agent again after it died (in the scope given), resuming its ACP session `previous`. */
  readonly restart: (previous: Option.Option<string>) => Effect.Effect<AgentHandle, StartError, Scope.Scope>
  /** Whether the gateway itself stops the session now (a drain, a hand-over): its turns are `interrupted`. */
  readonly stoppedByGateway: () => boolean
  /** Whether the session is being handed to another node: its callers hear 502, not 410. */
  readonly handingOver: () => boolean
  /** Run once the actor has stopped, before its slots are freed. */
  readonly onStopped: Effect.Effect<void>
  /**
   * How many turns the session may hold accepted and not yet running (its app's
   * `max_queued_turns`, read at each turn: a change of the limit applies at once); null: no limit.
   */
  readonly maxQueuedTurns?: Effect.Effect<number | null> | undefined
  /** Takes a pool slot for an agent woken from hibernation (making room when the pool is full); none: no pool. */
  readonly reservePool?: Effect.Effect<void, StartError, Scope.Scope> | undefined
  /** What each turn did to the session's workspace (`WorkspaceChanges`); none: not seen. */
  readonly workspace?: TurnWorkspace | undefined
}

/** Snapshots of the session's workspace at a turn's start and end; neither ever fails a turn. */
export interface TurnWorkspace {
  /** The workspace's tree as a turn starts; undefined when it could not be seen. */
  readonly turnStarts: (session: Session) => Effect.Effect<string | undefined>
  /** What changed from `start` to now, noted as turn `turnIndex`'s end; undefined when not seen. */
  readonly turnEnds: (
    session: Session,
    turnIndex: number,
    start: string | undefined
  ) => Effect.Effect<ReadonlyArray<WorkspaceChange> | undefined>
}

/** A live session: a fiber that owns the agent and works through its mailbox in order. */
export interface SessionActor {
  /** The session as it was opened: whose it is and where it works. */
  readonly session: Session
  readonly state: ActorState
  /** Done once the actor has stopped (and answered what was left in its mailbox). */
  readonly stopped: Deferred.Deferred<never, SessionClosed>
  /**
   * The actor's fiber: takes the mailbox's items one by one, for ever. Interrupting it stops the
   * session: the running turn ends `cancelled` (or `interrupted`), the queued ones are answered
   * 410, the agent stops and the slots are freed.
   */
  readonly run: Effect.Effect<never>
  /**
   * Accepts a turn (`files` resolved already): its row is stored with the next index (one
   * statement) and it joins the mailbox. One at a time, so mailbox order is index order.
   */
  readonly accept: (request: TurnRequest) => Effect.Effect<AcceptedTurn, SessionClosed | QueueFull>
  /** Changes the settings between turns: waits in the mailbox behind the turns before it. */
  readonly configure: (settings: AgentSettings) => Effect.Effect<void, SettingsError>
  /** Cancels the running turn, if any; true when there was one. */
  readonly cancel: Effect.Effect<boolean>
  readonly isRunning: Effect.Effect<boolean>
  /** Whether it could hibernate now: its agent runs, with no turn running or queued and no request pending. */
  readonly isIdle: () => boolean
  /**
   * Stops its agent and frees its pool slot when it is idle, keeping the session (its next item
   * starts the agent again and resumes its ACP session); false when it was not idle.
   */
  readonly hibernate: (reason: "idle" | "pool_full") => Effect.Effect<boolean>
}

/** Makes a session's actor; the caller runs its `run` on a fiber it owns (see `ActorRegistry`). */
export const makeSessionActor = (options: SessionActorOptions): Effect.Effect<SessionActor> =>
  Effect.gen(function*() {
    const { commit, desk, ledger, session, slot } = options
    // The agent and the scope holding its pool slot: replaced when the agent restarts or wakes.
    let agent = options.agent
    let poolSlot = options.poolSlot ?? (yield* Scope.fork(slot, ExecutionStrategy.sequential))
    // Swapping the agent out (hibernation) and back in (waking) is one at a time.
    const agentSwap = yield* Effect.makeSemaphore(1)
    const id = session.session_id
    const mailbox = yield* Queue.unbounded<MailboxItem>()
    const stopped = yield* Deferred.make<never, SessionClosed>()
    // Accepting is one at a time, so that mailbox order is index order.
    const accepting = yield* Effect.makeSemaphore(1)
    // The turns accepted and not yet running: what `max_queued_turns` counts.
    const waiting = new Set<TurnJob>()
    const state: ActorState = {
      current: options.agent.handle,
      running: false,
      closedInLedger: false,
      turns: new Map(),
      turn: undefined,
      desk,
      // Stored at the end of its first turn (a resumed agent may report other settings).
      savedSettings: noSettings,
      live: true,
      pending: 0,
      lastUsedAt: Date.now()
    }

    /** What the caller of a turn ended that way hears: a handed-over session is not closed. */
    const answerOf = (exit: Exit.Exit<TurnReply, TurnError>): Exit.Exit<TurnReply, TurnError> =>
      Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error._tag === "SessionClosed" &&
        options.handingOver()
        ? Exit.fail(handedOver)
        : exit

    /** Commits the turn's end, then lets its streams know: the actor forgets it once the ledger has it. */
    const endTurn = (job: TurnJob, exit: Exit.Exit<TurnReply, TurnError>) =>
      commit(session, job.live, exit, options.stoppedByGateway()).pipe(
        Effect.ensuring(Effect.sync(() => {
          state.turns.delete(job.live.turnIndex)
          job.live.finish(endOfExit(exit))
        }))
      )

    /** An item that will never run (its session stopped): a turn is stored as such and answered 410. */
    const abandon = (job: MailboxItem) =>
      Effect.suspend(() => {
        if (isSettingsJob(job)) return Deferred.fail(job.done, sessionClosed(id))
        waiting.delete(job)
        if (job.live.end !== undefined) return Effect.void
        const exit = Exit.fail(sessionClosed(id))
        return endTurn(job, exit).pipe(
          Effect.catchAllCause(() => Effect.void),
          Effect.zipRight(Deferred.done(job.reply, answerOf(exit)))
        )
      })

    const isIdle = () => state.live && state.pending === 0 && !state.running && desk.list().length === 0

    const hibernate = (reason: "idle" | "pool_full") =>
      agentSwap.withPermitsIfAvailable(1)(Effect.suspend(() => {
        if (!isIdle()) return Effect.succeed(false)
        // Set before the agent stops: a turn accepted from now on wakes it (after this swap).
        state.live = false
        const pid = agent.handle.pid
        return Scope.close(agent.scope, Exit.void).pipe(
          Effect.zipRight(Scope.close(poolSlot, Exit.void)),
          Effect.zipRight(ledger.recordEvent(id, "hibernated", { reason, pid })),
          Effect.as(true)
        )
      })).pipe(Effect.map((done) => Option.getOrElse(done, () => false)), Effect.uninterruptible)

    /** Wakes the hibernated session: a pool slot again, its agent started, its ACP session resumed. */
    const wake = agentSwap.withPermits(1)(Effect.gen(function*() {
      if (state.live) return agent.handle
      const pool = yield* Scope.fork(slot, ExecutionStrategy.sequential)
      const scope = yield* Scope.fork(pool, ExecutionStrategy.sequential)
      const handle = yield* (options.reservePool ?? Effect.void).pipe(
        Scope.extend(pool),
        Effect.zipRight(options.restart(Option.some(agent.handle.agentSessionId)).pipe(Scope.extend(scope))),
        Effect.tapError(() => Scope.close(pool, Exit.void))
      )
      // An agent that resumed with another model or mode than the session's is given them again.
      const saved = state.savedSettings
      const resumed = handle.settings()
      const changes: AgentSettings = {
        ...(saved.model !== null && saved.model !== resumed.model ? { model: saved.model } : {}),
        ...(saved.mode !== null && saved.mode !== resumed.mode ? { mode: saved.mode } : {})
      }
      if (changes.model !== undefined || changes.mode !== undefined) yield* Effect.ignore(handle.configure(changes))
      poolSlot = pool
      agent = { handle, scope }
      state.current = handle
      state.live = true
      state.lastUsedAt = Date.now()
      yield* ledger.recordEvent(id, "resumed", { origin: handle.origin, pid: handle.pid })
      return handle
    }))

    const loop = Effect.gen(function*() {
      // The agent died between turns (or timed out): start it again and resume its session.
      const ensureAgent = Effect.gen(function*() {
        if (!state.live) return yield* wake
        if (yield* agent.handle.isAlive) return agent.handle
        yield* Scope.close(agent.scope, Exit.void)
        const scope = yield* Scope.fork(poolSlot, ExecutionStrategy.sequential)
        const handle = yield* options.restart(Option.some(agent.handle.agentSessionId)).pipe(
          Scope.extend(scope),
          Effect.tapError(() => Scope.close(scope, Exit.void))
        )
        agent = { handle, scope }
        state.current = handle
        return handle
      })

      const timeout = new TurnTimeout({
        message: `The turn ran past ${Duration.format(options.turnTimeout)} and was cancelled`,
        timeout_secs: Duration.toSeconds(options.turnTimeout)
      })
      const runFork = Runtime.runFork(yield* Effect.runtime<never>())
      let turnsStarted = 0

      /** Past the deadline: cancel the turn; if the agent ignores that, stop it (the next turn restarts it). */
      const expire = (handle: AgentHandle, turn: number) =>
        handle.cancel.pipe(
          Effect.zipRight(Effect.sync(() => desk.cancelAll())),
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
      const runTurn = (handle: AgentHandle, job: TurnJob) =>
        Effect.suspend(() => {
          const turn = ++turnsStarted
          let expired = false
          const timer = setTimeout(() => {
            expired = true
            runFork(expire(handle, turn))
          }, Duration.toMillis(options.turnTimeout))
          return handle.prompt({ text: job.request.prompt, files: job.request.files ?? [], onMessage: job.live.push })
            .pipe(
              Effect.ensuring(Effect.sync(() => clearTimeout(timer))),
              Effect.catchAll((error) => Effect.fail(expired ? timeout : error)),
              Effect.filterOrFail(() => !expired, () => timeout)
            )
        })

      /** Stores the agent's settings when they changed (the agent may change them in a turn). */
      const saveSettings = Effect.suspend(() => {
        const settings = agent.handle.settings()
        if (settings === state.savedSettings) return Effect.void
        state.savedSettings = settings
        return ledger.setSettings(id, settings)
      })

      /** A change of settings, between turns: applied by the agent, then stored. */
      const configure = (job: SettingsJob) =>
        Effect.uninterruptibleMask((restore) =>
          restore(Effect.flatMap(ensureAgent, (handle) => handle.configure(job.settings))).pipe(
            Effect.zipRight(saveSettings),
            Effect.exit,
            Effect.map((exit) => Exit.isInterrupted(exit) ? Exit.fail(sessionClosed(id)) : exit),
            Effect.flatMap((exit) => Deferred.done(job.done, exit))
          )
        )

      /** What a turn that ran did to the workspace, seen at its end (before its end is stored). */
      const seeChanges = (job: TurnJob) =>
        options.workspace === undefined || job.live.startedAt === undefined
          ? Effect.void
          : Effect.map(
            options.workspace.turnEnds(session, job.live.turnIndex, job.live.workspaceStart),
            (changes) => void (job.live.changes = changes ?? null)
          )
      const withChanges = (job: TurnJob) => (exit: Exit.Exit<TurnReply, TurnError>) =>
        options.workspace === undefined ? exit : Exit.map(exit, (reply) => ({ ...reply, changes: job.live.changes ?? null }))

      /** One turn: it may be interrupted (a close), its commit and its answer may not. */
      const work = (job: TurnJob) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.gen(function*() {
            const handle = yield* restore(ensureAgent)
            // The workspace as the turn starts: what changed before it (an upload) is no change of its.
            if (options.workspace !== undefined) job.live.workspaceStart = yield* restore(options.workspace.turnStarts(session))
            const startedAt = Date.now()
            job.live.startedAt = startedAt
            state.running = true
            state.turn = job.live
            const outcome: TurnOutcome = yield* restore(runTurn(handle, job)).pipe(
              Effect.ensuring(Effect.sync(() => {
                state.running = false
                state.turn = undefined
                // The agent asks nothing of a turn that is over.
                desk.cancelAll()
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
            Effect.map((exit) => Exit.isInterrupted(exit) ? Exit.fail(sessionClosed(id)) : exit),
            Effect.tap(() => seeChanges(job)),
            Effect.map(withChanges(job)),
            // Commit the turn's end before anyone hears of it.
            Effect.tap((exit) => endTurn(job, exit)),
            Effect.tap(() => saveSettings),
            Effect.tap((exit) => recordTurnMetrics(session.app_name, exit)),
            Effect.flatMap((exit) => Deferred.done(job.reply, answerOf(exit)))
          )
        )

      // An item is pending from its accept to its end: an agent with one never hibernates.
      const done = Effect.sync(() => {
        state.pending--
        state.lastUsedAt = Date.now()
      })
      return yield* Queue.take(mailbox).pipe(
        Effect.flatMap((item) => {
          if (isSettingsJob(item)) return Effect.ensuring(configure(item), done)
          waiting.delete(item)
          return Effect.ensuring(work(item), done)
        }),
        Effect.forever
      )
    })

    const run = loop.pipe(
      Effect.ensuring(
        Effect.all([
          Deferred.fail(stopped, sessionClosed(id)),
          Effect.sync(() => desk.cancelAll()),
          // Items still in the mailbox will never run: answer them.
          Effect.flatMap(Queue.takeAll(mailbox), (jobs) => Effect.forEach(jobs, abandon, { discard: true })),
          options.onStopped,
          Scope.close(slot, Exit.void)
        ], { discard: true })
      )
    )

    const accept = (request: TurnRequest) =>
      accepting.withPermits(1)(Effect.gen(function*() {
        if (yield* Deferred.isDone(stopped)) return yield* sessionClosed(id)
        // Refused before it takes an index: a full mailbox leaves no trace in the ledger.
        const max = options.maxQueuedTurns === undefined ? null : yield* options.maxQueuedTurns
        if (max !== null && waiting.size >= max) {
          return yield* new QueueFull({
            message: `Session ${id} holds ${waiting.size} turns waiting to run, its max_queued_turns: wait for one to start`,
            max_queued_turns: max
          })
        }
        // Held as pending while its row is written: an agent about to get a turn is not idle.
        state.pending++
        const turnIndex = yield* ledger.acceptTurn(id, {
          prompt: request.prompt,
          files: request.files ?? [],
          at: yield* nowSeconds
        }).pipe(Effect.ensuring(Effect.sync(() => state.pending--)))
        if (Option.isNone(turnIndex)) {
          // Closed in the ledger behind the gateway's back (the admin CLI): later turns are
          // refused at once, and the next sweep stops the agent.
          state.closedInLedger = true
          return yield* sessionClosed(id)
        }
        const live = new LiveTurn(turnIndex.value)
        state.turns.set(live.turnIndex, live)
        const reply = yield* Deferred.make<TurnReply, TurnError>()
        const job: TurnJob = { request, live, reply }
        waiting.add(job)
        state.pending++
        state.lastUsedAt = Date.now()
        yield* Queue.offer(mailbox, job)
        // The actor may have stopped (and emptied its mailbox) before this turn arrived.
        if (yield* Deferred.isDone(stopped)) yield* abandon(job)
        const accepted: AcceptedTurn = { turnIndex: live.turnIndex, feed: live, reply: Deferred.await(reply) }
        return accepted
      }))

    const configure = (settings: AgentSettings) =>
      Effect.gen(function*() {
        const done = yield* Deferred.make<void, SettingsError>()
        yield* accepting.withPermits(1)(Effect.gen(function*() {
          if (yield* Deferred.isDone(stopped)) return yield* sessionClosed(id)
          state.pending++
          yield* Queue.offer(mailbox, { settings, done })
        }))
        yield* Deferred.await(done)
      })

    const actor: SessionActor = {
      session,
      state,
      stopped,
      run,
      accept,
      configure,
      // ACP: once the turn is cancelled, every request still waiting is answered `cancelled`.
      cancel: Effect.suspend(() =>
        state.running
          ? Effect.as(Effect.zipRight(state.current.cancel, Effect.sync(() => desk.cancelAll())), true)
          : Effect.succeed(false)
      ),
      isRunning: Effect.sync(() => state.running),
      isIdle,
      hibernate
    }
    return actor
  })
