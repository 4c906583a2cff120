import { Effect, Layer, Option, Schedule, Schema, Stream } from "effect"
import { randomBytes } from "node:crypto"
import {
  BadRequest, type BudgetExhausted, type InvalidConfig, PermissionNotFound, type PermissionModeNotAllowed, type QueueFull,
  type RateLimited, type SessionClosed, type SessionNotFound, type ShuttingDown, type StorageQuota, type TurnNotFound,
  type UnknownAgent
} from "../../domain/Errors.js"
import { type AppName, SessionId } from "../../domain/Ids.js"
import type { PermissionAnswer, PermissionRequest } from "../../domain/Permission.js"
import { type AgentSettings, type CreateSessionRequest, Session, type TurnReply, type TurnRequest } from "../../domain/Session.js"
import { defaultEventsLimit, type TurnDetail, TurnSummary } from "../../domain/Turn.js"
import { noSettings } from "../agents/AgentSettings.js"
import { AgentRegistry } from "../agents/AgentRegistry.js"
import { AppConfig } from "../config/AppConfig.js"
import { AppTokens } from "../ledger/AppTokens.js"
import { type EventsPage, Ledger, nowSeconds } from "../ledger/Ledger.js"
import { spanWhenTraced } from "../observability/Spans.js"
import { AppLimits } from "../tenancy/AppLimits.js"
import { AppSecrets } from "../tenancy/AppSecrets.js"
import { Webhooks } from "../tenancy/Webhooks.js"
import { AgentPool } from "./AgentPool.js"
import { makeActorRegistry } from "./runtime/ActorRegistry.js"
import { makeWarmSessions } from "./runtime/WarmSessions.js"
import type { AcceptedTurn, SessionActor, TurnWorkspace } from "./runtime/SessionActor.js"
import { agentText, type FollowedTurn, type LiveTurn, storedFeed } from "./runtime/TurnFeed.js"
import { sessionClosed, sessionNotFound, type SettingsError, shuttingDown, type StartError, type TurnError, turnNotFound } from "./SessionErrors.js"
import { Workspaces } from "./Workspaces.js"
import type { DiskQuota, WorkspaceOverQuota } from "../../domain/WorkspaceFiles.js"
import { WorkspaceQuota } from "../workspaces/WorkspaceQuota.js"
import { WorkspaceChanges } from "../workspaces/WorkspaceChanges.js"
import type { GitCloneFailed } from "../../domain/Errors.js"
import { GitClone } from "../workspaces/GitClone.js"

export type { AcceptedTurn } from "./runtime/SessionActor.js"
export type { SettingsError, StartError, TurnError } from "./SessionErrors.js"

/** Why a session could not be opened. */
export type CreateError =
  | DiskQuota
  | BadRequest | UnknownAgent | InvalidConfig | PermissionModeNotAllowed | BudgetExhausted | StorageQuota | ShuttingDown
  | StartError | GitCloneFailed

/** Why a turn was not accepted. */
export type SubmitError =
  | DiskQuota | WorkspaceOverQuota
  | BadRequest | SessionNotFound | SessionClosed | ShuttingDown | RateLimited | BudgetExhausted | QueueFull | StorageQuota
  | StartError

/** Where a session's files are: its workspace folder (its cwd, a real path), and whether the session is closed. */
export interface SessionWorkspace {
  readonly session_id: SessionId
  readonly app_name: AppName
  readonly dir: string
  readonly closed: boolean
}

/** A pending request of a live session, with the session it waits in (an operator's view). */
export type PendingPermission = PermissionRequest & { readonly session_id: SessionId; readonly app_name: AppName }

/**
 * The sessions of the gateway as its HTTP handlers, sweeper and operators use them. A session
 * that belongs to another app does not exist for the caller (404); one that is closed answers 410.
 * On a single gateway every member runs here; in a cluster `RoutedSessions` takes each one to the
 * node that owns the session.
 */
export interface SessionsApi {
  /**
   * Opens a session: the agent started (settings applied) before the ledger has it, so a
   * refused create leaves nothing behind. `sessionId`: the id a cluster node drew for it.
   */
  readonly create: (app: AppName, request: CreateSessionRequest, sessionId?: SessionId) => Effect.Effect<Session, CreateError>
  /** The caller's session as the ledger has it. */
  readonly get: (app: AppName, id: string) => Effect.Effect<Session, SessionNotFound>
  /** The caller's sessions, newest first. */
  readonly list: (
    app: AppName,
    options: { readonly status?: "open" | "closed" | undefined; readonly limit?: number | undefined }
  ) => Effect.Effect<ReadonlyArray<Session>>
  /** Accepts a turn into the session's mailbox: its index taken and its row stored before this answers. */
  readonly submit: (app: AppName, id: string, request: TurnRequest) => Effect.Effect<AcceptedTurn, SubmitError>
  /** Runs one turn: waits behind the session's earlier turns, then for the agent. */
  readonly turn: (app: AppName, id: string, request: TurnRequest) => Effect.Effect<TurnReply, SubmitError | TurnError>
  /** The session's turns after `after`, oldest first, without their messages. */
  readonly listTurns: (
    app: AppName,
    id: string,
    options: { readonly after?: number | undefined; readonly limit?: number | undefined }
  ) => Effect.Effect<ReadonlyArray<TurnSummary>, SessionNotFound>
  /**
   * One turn with a page of its messages (by default the first `defaultEventsLimit`): the stored
   * ones, or what the agent said so far while it runs.
   */
  readonly getTurn: (
    app: AppName,
    id: string,
    turnIndex: number,
    page?: { readonly after?: number | undefined; readonly limit?: number | undefined }
  ) => Effect.Effect<TurnDetail, SessionNotFound | TurnNotFound>
  /**
   * The turn's feed for its streams, from its start: live while it is queued or running, else as
   * stored (its messages then read a page at a time as the stream goes, never all at once).
   */
  readonly followTurn: (app: AppName, id: string, turnIndex: number) => Effect.Effect<FollowedTurn, SessionNotFound | TurnNotFound>
  /** Cancels the session's running turn; false when nothing was running. */
  readonly cancel: (app: AppName, id: string) => Effect.Effect<boolean, SessionNotFound>
  /** Changes the session's settings between turns (in mailbox order) and answers the session as it is then. */
  readonly configure: (
    app: AppName,
    id: string,
    settings: AgentSettings
  ) => Effect.Effect<Session, SessionNotFound | ShuttingDown | SettingsError>
  /** The session's requests waiting for the caller (ask mode), oldest first. */
  readonly listPermissions: (app: AppName, id: string) => Effect.Effect<ReadonlyArray<PermissionRequest>, SessionNotFound>
  /** Answers a request waiting for the caller (or for an operator: `by: "admin"`). */
  readonly answerPermission: (
    app: AppName,
    id: string,
    requestId: string,
    answer: PermissionAnswer,
    by?: "caller" | "admin"
  ) => Effect.Effect<void, BadRequest | SessionNotFound | PermissionNotFound>
  /**
   * The caller's session's workspace folder (its files routes, archives): another app's session is
   * 404; a closed session's folder is answered too (its files stay readable until the hard TTL
   * deletes it with its row).
   */
  readonly workspace: (app: AppName, id: string) => Effect.Effect<SessionWorkspace, SessionNotFound>
  /** Closes the session (stored, the app's webhook told) and stops its agent; closing again says so. */
  readonly close: (app: AppName, id: string) => Effect.Effect<{ readonly alreadyClosed: boolean }, SessionNotFound>
  /** Stops the session's actor (and so its agent); the ledger is the caller's business (the sweeper's). */
  readonly stop: (id: SessionId) => Effect.Effect<void>
  /**
   * Stops the session's actor here because another node takes the session over (a shard moving):
   * its turns are stored `interrupted`, their callers answered 502 `agent_failed`, not 410.
   */
  readonly handOver: (id: SessionId) => Effect.Effect<void>
  /** Lets running turns end (cancelling those that do not) and refuses new work: the gateway is stopping. */
  readonly drain: Effect.Effect<void>
  /** How many sessions have a live actor in this process. */
  readonly live: Effect.Effect<number>
  /** The sessions with an actor in this process, started or starting. */
  readonly liveSessionIds: Effect.Effect<ReadonlyArray<SessionId>>
  /** An operator's view (`/admin/*`), across apps. */
  readonly admin: {
    /** Every live session's pending requests (ask mode), with the session they wait in. */
    readonly pendingPermissions: Effect.Effect<ReadonlyArray<PendingPermission>>
    /** The sessions with a live agent now, by id. */
    readonly liveSessions: Effect.Effect<ReadonlyMap<SessionId, AppName>>
    /** The pool's use: live agents (ready sessions' included) against its capacity, and how many are ready sessions. */
    readonly pool: Effect.Effect<{ readonly live: number; readonly capacity: number; readonly ready?: number }>
  }
}

export const newSessionId = () => SessionId.make(randomBytes(18).toString("base64url"))
const isSessionId = Schema.is(SessionId)

/** This process's sessions: ownership and admission here, the work in the actors of `runtime/`. */
const makeLocalSessions = Effect.gen(function*() {
  const config = yield* AppConfig
  const ledger = yield* Ledger
  const pool = yield* AgentPool
  const registry = yield* AgentRegistry
  const workspaces = yield* Workspaces
  const quota = yield* WorkspaceQuota
  const gitClone = yield* GitClone
  const webhooks = yield* Webhooks
  const limits = yield* AppLimits
  const secrets = yield* AppSecrets
  const workspaceChanges = yield* WorkspaceChanges
  // A turn's changes, once seen, tell the quota: a turn that changed nothing costs it no walk of the
  // workspace (what changes leave out, `.git` and the app's HOME, its periodic walk catches).
  const workspace: TurnWorkspace = {
    turnStarts: workspaceChanges.turnStarts,
    turnEnds: (session, turnIndex, start) =>
      Effect.tap(workspaceChanges.turnEnds(session, turnIndex, start), (changes) =>
        changes === undefined || changes.length > 0 ? quota.changed(session.app_name, session.cwd) : Effect.void)
  }
  const actors = yield* makeActorRegistry({ config, ledger, pool, registry, limits, secrets, webhooks, workspace })
  // Ready sessions for the apps' `warm` limits, taken by creates below.
  const warm = yield* makeWarmSessions({ config, pool, registry, workspaces, limits, secrets, appTokens: yield* AppTokens })

  // Sessions closed in the ledger under a live actor (an app revoked, by the CLI or the admin API
  // on any node; a session closed by the CLI): their agents stop within a second or two here.
  const stopClosedInLedger = Effect.gen(function*() {
    const live = actors.all()
    if (live.length === 0) return
    const closed = yield* ledger.closedAmong(live.map((actor) => actor.session.session_id))
    yield* Effect.forEach(closed, actors.stop, { discard: true })
  })
  yield* stopClosedInLedger.pipe(
    Effect.catchAllCause((cause) => Effect.logWarning("checking for sessions closed in the ledger failed", cause)),
    Effect.repeat(Schedule.spaced("1 second")),
    Effect.forkScoped
  )

  /** The caller's session, or 404: another app's session does not exist for this caller. */
  const owned = (app: AppName, id: string) =>
    isSessionId(id)
      ? Effect.flatMap(ledger.getSession(app, id), Option.match({
        onNone: () => Effect.fail(sessionNotFound(id)),
        onSome: Effect.succeed
      }))
      : Effect.fail(sessionNotFound(id))

  /** The session as it is now: whether its agent runs here (a hibernated session's does not). */
  const withLive = (session: Session) =>
    actors.isLive(session.session_id) ? new Session({ ...session, live: true }, true) : session

  /** The caller's session for a read: a live actor knows its owner, else the ledger answers. */
  const ownedForRead = (app: AppName, id: string) => {
    const live = actors.running(id as SessionId)
    return live !== undefined && live.session.app_name === app ? Effect.succeed(live.session) : owned(app, id)
  }

  /** The live actor of the caller's session, if it has one (after the 404 check). */
  const liveActorOf = (app: AppName, id: string) =>
    Effect.map(ownedForRead(app, id), (session) => actors.running(session.session_id))

  const create = Effect.fn("Sessions.create")(function*(app: AppName, request: CreateSessionRequest, sessionId?: SessionId) {
    if (actors.isDraining()) return yield* shuttingDown
    const definition = yield* registry.lookup(request.agent)
    yield* limits.checkBudget(app)
    yield* limits.checkStorage(app)
    yield* quota.admitCreate(app)
    const permissionMode = request.permission_mode ?? config.defaultPermissionMode
    // The app's ceiling (its `permission_modes`), checked before anything is made for the session.
    yield* limits.checkPermissionMode(app, request.permission_mode)
    if (permissionMode === "ask" && definition.driver === "acpx") {
      return yield* new BadRequest({
        message: `permission_mode "ask" needs an agent on the acp driver; "${request.agent}" runs through acpx, ` +
          "which answers permissions itself"
      })
    }
    // A create's `git` checked (URL, ref, host) before anything is made for the session.
    const git = request.git === undefined ? undefined : yield* gitClone.check(request.git, request.cwd)
    // Without `cwd` or `git`, a ready session of the agent when the app keeps some (its `warm`
    // limit): its id, workspace and agent become the session's, and the pool refills behind it.
    const warmed = request.cwd === undefined && git === undefined && sessionId === undefined
      ? yield* warm.take(app, request.agent, permissionMode)
      : Option.none()
    const id = Option.isSome(warmed) ? warmed.value.sessionId : sessionId ?? newSessionId()
    const cwd = Option.isSome(warmed) ? warmed.value.cwd : yield* workspaces.prepare(app, id, request.cwd)
    // Cloned before the agent starts, as the agent's user in its sandbox; a failed clone leaves no workspace.
    if (git !== undefined) yield* gitClone.clone(app, id, cwd, git).pipe(Effect.tapError(() => workspaces.remove(app, id)))
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
    // The session's start as `GET /sessions/{id}/changes?since_turn=0` counts from: after the clone.
    // A ready session's workspace was empty when its agent started, as a fresh one is here: the same
    // (empty) start, and no snapshot of what its agent wrote since on the create's path.
    if (Option.isNone(warmed)) yield* workspaceChanges.begin(opened)
    const { actor, handle } = yield* actors.start(opened, definition, Option.none(), Option.getOrUndefined(warmed)).pipe(
      Effect.tapError(() => workspaces.remove(app, id))
    )
    // The settings asked for, applied before anyone knows the session: a value the agent does
    // not offer leaves nothing behind (no agent, no workspace, no ledger row).
    const discard = Effect.zipRight(actors.stop(id), workspaces.remove(app, id))
    if (request.model !== undefined || request.mode !== undefined || request.config !== undefined) {
      yield* handle.configure({ model: request.model, mode: request.mode, config: request.config }).pipe(
        Effect.onError(() => discard)
      )
    }
    const { model, mode, config_options } = actor.state.savedSettings = handle.settings()
    const session = new Session({ ...opened, model, mode, config_options, live: true })
    yield* ledger.createSession(session, handle.agentSessionId).pipe(Effect.onError(() => discard))
    return session
  })

  /** Resolves the turn's files in the session's workspace, then accepts it into the actor's mailbox. */
  const enqueue = (actor: SessionActor, request: TurnRequest) =>
    request.files === undefined || request.files.length === 0
      ? actor.accept({ ...request, files: [] })
      : Effect.flatMap(
        workspaces.resolveFiles(actor.session.cwd, request.files),
        (files) => actor.accept({ ...request, files })
      )

  // On the turn's path: no `Effect.fn` (see `spanWhenTraced`). A live actor answers for its
  // session (whose it is, that it is open) without a ledger read.
  const submit = Effect.fnUntraced(function*(app: AppName, id: string, request: TurnRequest) {
    if (actors.isDraining()) return yield* shuttingDown
    const live = actors.running(id as SessionId)
    if (live !== undefined && live.session.app_name === app) {
      if (live.state.closedInLedger) return yield* sessionClosed(live.session.session_id)
      yield* limits.checkStorage(app)
      yield* quota.admitTurn(app, live.session.cwd)
      yield* limits.admitTurn(app)
      return yield* enqueue(live, request)
    }
    const session = yield* owned(app, id)
    if (session.closed_at !== null) return yield* sessionClosed(session.session_id)
    yield* limits.checkStorage(app)
    yield* quota.admitTurn(app, session.cwd)
    yield* limits.admitTurn(app)
    return yield* enqueue(yield* actors.actorFor(session), request)
  })

  /** The caller's turn while a live actor holds it (queued or running). */
  const liveTurn = (app: AppName, id: string, turnIndex: number): LiveTurn | undefined => {
    const live = actors.running(id as SessionId)
    return live !== undefined && live.session.app_name === app ? live.state.turns.get(turnIndex) : undefined
  }

  /** A stored turn as it is now: one the actor has started reads `running`. */
  const withLiveStatus = (turn: TurnSummary, live: LiveTurn | undefined): TurnSummary =>
    live === undefined || live.startedAt === undefined || turn.status !== "queued"
      ? turn
      : new TurnSummary({ ...turn, status: "running", started_at: Math.floor(live.startedAt / 1000) }, true)

  /** The stored turn (a page of its messages, when given), or 404 for the session or the turn. */
  const storedTurn = (app: AppName, id: string, turnIndex: number, page?: EventsPage) =>
    Effect.flatMap(ledger.getTurn(app, id, turnIndex, page), Option.match({
      onSome: Effect.succeed,
      onNone: () => Effect.zipRight(ownedForRead(app, id), Effect.fail(turnNotFound(id, turnIndex)))
    }))

  /** A stored turn's row without its messages, or 404 for the session or the turn. */
  const storedHead = (app: AppName, id: string, turnIndex: number) =>
    Effect.flatMap(ledger.getTurnHead(app, id, turnIndex), Option.match({
      onSome: Effect.succeed,
      onNone: () => Effect.zipRight(ownedForRead(app, id), Effect.fail(turnNotFound(id, turnIndex)))
    }))

  const sessions: SessionsApi = {
    create,
    get: Effect.fn("Sessions.get")((app, id) => Effect.map(owned(app, id), withLive)),
    list: Effect.fn("Sessions.list")(function*(app, options) {
      const sessions = yield* ledger.listSessions(app, { status: options.status, limit: options.limit ?? 100 })
      return sessions.map(withLive)
    }),
    submit,
    turn: (app, id, request) =>
      Effect.flatMap(submit(app, id, request), (accepted) => accepted.reply).pipe(spanWhenTraced("Sessions.turn")),
    listTurns: Effect.fn("Sessions.listTurns")(function*(app, id, options) {
      const session = yield* ownedForRead(app, id)
      const turns = yield* ledger.listTurns(session.session_id, { after: options.after ?? 0, limit: options.limit ?? 100 })
      return turns.map((turn) => withLiveStatus(turn, liveTurn(app, id, turn.turn_index)))
    }),
    getTurn: Effect.fn("Sessions.getTurn")(function*(app, id, turnIndex, options) {
      // A page, never the whole of a big turn: the ledger reads only what holds it.
      const page: EventsPage = { after: options?.after ?? 0, limit: options?.limit ?? defaultEventsLimit }
      let stored = yield* storedTurn(app, id, turnIndex, page)
      const live = liveTurn(app, id, turnIndex)
      // Over since the read: read its end.
      if (live === undefined && stored.turn.status === "queued") stored = yield* storedTurn(app, id, turnIndex, page)
      const turn = withLiveStatus(stored.turn, live)
      const fromLive = live !== undefined && stored.turn.status === "queued"
      const total = fromLive ? live.messages.length : stored.total
      const events = fromLive ? live.messages.slice(page.after, page.after + page.limit) : stored.events
      const last = page.after + events.length
      const detail: TurnDetail = {
        ok: true,
        ...turn,
        text: agentText(events),
        events,
        events_total: total,
        next_events_after: last < total ? last : null
      }
      return detail
    }),
    followTurn: Effect.fn("Sessions.followTurn")(function*(app, id, turnIndex) {
      const live = liveTurn(app, id, turnIndex)
      if (live !== undefined) return live as FollowedTurn
      // Its row only: the stream reads its messages a page at a time.
      const stored = yield* storedHead(app, id, turnIndex)
      // Accepted just now, or over just now: look again.
      const again = liveTurn(app, id, turnIndex)
      if (again !== undefined) return again as FollowedTurn
      const over = stored.turn.status !== "queued" ? stored : yield* storedHead(app, id, turnIndex)
      // A turn of one page came with its row; a bigger one is read a page at a time.
      return storedFeed(over, (after) =>
        over.inline !== undefined ? Stream.succeed(over.inline) : ledger.turnEventPages(over.turn.session_id, turnIndex, after))
    }),
    cancel: Effect.fn("Sessions.cancel")(function*(app, id) {
      const session = yield* owned(app, id)
      return yield* actors.cancel(session.session_id)
    }),
    configure: Effect.fn("Sessions.configure")(function*(app, id, settings) {
      if (actors.isDraining()) return yield* shuttingDown
      const session = yield* owned(app, id)
      if (session.closed_at !== null) return yield* sessionClosed(session.session_id)
      yield* (yield* actors.actorFor(session)).configure(settings)
      return withLive(yield* owned(app, id))
    }),
    listPermissions: Effect.fn("Sessions.listPermissions")(function*(app, id) {
      const actor = yield* liveActorOf(app, id)
      return actor === undefined ? [] : actor.state.desk.list()
    }),
    answerPermission: Effect.fn("Sessions.answerPermission")(function*(app, id, requestId, answer, by = "caller") {
      const actor = yield* liveActorOf(app, id)
      if (actor === undefined) {
        return yield* new PermissionNotFound({ message: `No pending request ${requestId.slice(0, 64)}` })
      }
      return yield* actor.state.desk.answer(requestId, answer, by)
    }),
    workspace: Effect.fn("Sessions.workspace")(function*(app, id) {
      const session = yield* owned(app, id)
      return { session_id: session.session_id, app_name: app, dir: session.cwd, closed: session.closed_at !== null }
    }),
    close: Effect.fn("Sessions.close")(function*(app, id) {
      const session = yield* owned(app, id)
      const closed = yield* ledger.closeSession(session.session_id, yield* nowSeconds)
      if (closed) yield* webhooks.sessionsClosed([session.session_id])
      yield* actors.stop(session.session_id)
      return { alreadyClosed: !closed }
    }),
    stop: Effect.fn("Sessions.stop")((id) => actors.stop(id)),
    handOver: Effect.fn("Sessions.handOver")((id) => actors.handOver(id)),
    drain: actors.drain,
    live: actors.size,
    liveSessionIds: actors.ids,
    admin: {
      pendingPermissions: Effect.sync(() =>
        actors.all().flatMap((actor) =>
          actor.state.desk.list().map((request) => ({
            session_id: actor.session.session_id,
            app_name: actor.session.app_name,
            ...request
          }))
        )
      ),
      liveSessions: actors.liveSessions,
      pool: Effect.map(pool.live, (live) => ({ live, capacity: pool.capacity, ready: warm.readyCount() }))
    }
  }
  return sessions
})

/** The gateway's sessions (see `SessionsApi`); a cluster node replaces it with `RoutedSessions`. */
export class Sessions extends Effect.Service<Sessions>()("clawdforge/Sessions", {
  scoped: makeLocalSessions,
  dependencies: [
    AppConfig.Default,
    Ledger.Default,
    AgentPool.Default,
    AgentRegistry.Default,
    Workspaces.Default,
    WorkspaceQuota.Default,
    WorkspaceChanges.Default,
    GitClone.Default,
    Webhooks.Default,
    AppLimits.Default,
    AppSecrets.Default,
    AppTokens.Default
  ]
}) {}

/**
 * Drains the sessions when its scope closes. Built on top of the HTTP server, it is released
 * before it: running turns end (or are cancelled) so the server's close does not wait on them.
 */
export const SessionsDrain = Layer.scopedDiscard(
  Effect.flatMap(Sessions, (sessions) => Effect.addFinalizer(() => sessions.drain))
)
