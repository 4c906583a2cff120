import * as Entity from "@effect/cluster/Entity"
import { Cause, Deferred, Effect, Exit, FiberId, Layer, Runtime, Stream } from "effect"
import { randomUUID } from "node:crypto"
import { AgentFailed, PoolFull } from "../domain/Errors.js"
import type { AppName, SessionId } from "../domain/Ids.js"
import { type CreateSessionRequest, Session, type TurnRequest } from "../domain/Session.js"
import { Ledger, nowSeconds, pageMessageTexts } from "../services/ledger/Ledger.js"
import { AgentPool } from "../services/sessions/AgentPool.js"
import { type AcceptedTurn, newSessionId, Sessions, type SessionsApi } from "../services/sessions/Sessions.js"
import { type FeedItem, type FollowedTurn, LiveTurn, type TurnFeed } from "../services/sessions/runtime/TurnFeed.js"
import { ClusterNodes } from "./ClusterNodes.js"
import { Deliveries } from "./Deliveries.js"
import { type FeedChunk, NodeFull, SessionEntity } from "./SessionEntity.js"

/** A turn's feed as a stream of chunks, from its start: what the owner sends a node that follows it. */
const feedStream = (feed: FollowedTurn): Stream.Stream<FeedChunk> =>
  "_tag" in feed
    // A stored turn: its messages as its pages are read.
    ? Stream.make<Array<FeedChunk>>({ _tag: "Start" }).pipe(
      Stream.concat(feed.pages(0).pipe(
        Stream.mapConcat((page) => pageMessageTexts(page).map((json): FeedChunk => ({ _tag: "Message", json })))
      )),
      Stream.concat(Stream.make<Array<FeedChunk>>({ _tag: "End", event: feed.end.event, data: feed.end.data }))
    )
    : liveFeedStream(feed)

const liveFeedStream = (feed: TurnFeed) =>
  Stream.asyncPush<FeedChunk>((emit) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        const chunk = (item: FeedItem): FeedChunk =>
          typeof item === "string" ? { _tag: "Message", json: item } : { _tag: "Event", event: item.event, json: item.json }
        const end = (end: { readonly event: "done" | "error"; readonly data: unknown }) => {
          emit.single({ _tag: "End", event: end.event, data: end.data })
          emit.end()
        }
        emit.single({ _tag: "Start" })
        const followed = feed.follow((item) => emit.single(chunk(item)), end)
        for (let i = 0; i < followed.count; i++) emit.single(chunk(followed.messages[i]!))
        if (followed.end !== undefined) end(followed.end)
        return followed
      }),
      (followed) => Effect.sync(followed.unsubscribe)
    ), { bufferSize: "unbounded" })

/**
 * How long after a session's entity starts on a node a message may still be a second delivery:
 * failover resends within a second or two of the new owner taking the shard; ten is the margin.
 */
const redeliveryWindowMs = 10_000

/** How recent a turn may be for recovery to leave it alone (see `Recover`). */
const recentTurnSecs = 5

/**
 * The session entity's handlers: on the node that owns the session, each message is the local
 * `Sessions`' method of the same name, so that node runs the agent.
 */
export const SessionEntityLive = SessionEntity.toLayer(
  Effect.gen(function*() {
    const sessions = yield* Sessions
    const ledger = yield* Ledger
    const pool = yield* AgentPool
    const nodes = yield* ClusterNodes
    const deliveries = yield* Deliveries
    const id = (yield* Entity.CurrentAddress).entityId as string
    const full = new NodeFull({ node: nodes.self, capacity: pool.capacity })
    // Sent again after its node died: that node had taken it, and it is not run twice.
    const lost = new AgentFailed({
      message: "The gateway node running this turn stopped; the turn is interrupted (it is not run again)"
    })
    // The cluster sends a message again only as soon as the session's shard has its new owner, so
    // a second delivery reaches this entity within moments of its start here: later messages
    // are first deliveries, and skip the claim (a session's steady state costs no INSERT).
    const startedAt = Date.now()
    // The shard is leaving this node (a node joined and took it): its session's agent stops here
    // before the shard's lock is released, so its next owner never runs it beside this one.
    yield* Effect.addFinalizer(() =>
      Effect.flatMap(nodes.movedAway(id), (moved) => moved ? sessions.handOver(id as SessionId) : Effect.void)
    )
    const once = <A, E, R>(delivery: string, refused: E, effect: Effect.Effect<A, E, R>) =>
      Date.now() - startedAt > redeliveryWindowMs
        ? effect
        : Effect.flatMap(deliveries.claim(delivery), (first) => first ? effect : Effect.fail(refused))
    return SessionEntity.of({
      Create: ({ payload }) =>
        once(
          payload.delivery,
          full,
          sessions.create(payload.app, payload.request, id as SessionId).pipe(Effect.catchTag("PoolFull", () => full))
        ),
      Turn: ({ payload }) => once(payload.delivery, lost, sessions.turn(payload.app, id, payload.request)),
      Get: ({ payload }) => sessions.get(payload.app, id),
      Submit: ({ payload }) =>
        once(
          payload.delivery,
          lost,
          Effect.map(sessions.submit(payload.app, id, payload.request), (accepted) => accepted.turnIndex)
        ),
      Follow: ({ payload }) => Stream.unwrap(Effect.map(sessions.followTurn(payload.app, id, payload.turnIndex), feedStream)),
      ListTurns: ({ payload }) => sessions.listTurns(payload.app, id, payload),
      GetTurn: ({ payload }) =>
        sessions.getTurn(payload.app, id, payload.turnIndex, { after: payload.after, limit: payload.limit }),
      Cancel: ({ payload }) => sessions.cancel(payload.app, id),
      Configure: ({ payload }) => sessions.configure(payload.app, id, payload.settings),
      ListPermissions: ({ payload }) => sessions.listPermissions(payload.app, id),
      AnswerPermission: ({ payload }) =>
        sessions.answerPermission(payload.app, id, payload.requestId, payload.answer, payload.by),
      Close: ({ payload }) => sessions.close(payload.app, id),
      Stop: () => sessions.stop(id as SessionId),
      Recover: () =>
        Effect.gen(function*() {
          // This node holds the session: its turns are its own business.
          if ((yield* sessions.liveSessionIds).includes(id as SessionId)) return
          // A turn accepted in the last seconds is one a resume that began after the check above
          // has just queued: the node that left turns behind has been gone longer than that (its
          // shard lock expires first), and a later sweep gets anything this one leaves.
          const now = yield* nowSeconds
          const interrupted = yield* ledger.interruptUnfinished(now, id as SessionId, now - recentTurnSecs)
          if (interrupted > 0) yield* Effect.logWarning(`${interrupted} turn(s) of session ${id} left unfinished by a node are interrupted`)
        })
    })
  }),
  {
    // A turn may wait on an agent for minutes: a cancel, a permission answer or a read of the
    // same session must not wait behind it. Its order is the local actor's mailbox's.
    concurrency: "unbounded",
    // Kept while its session may be live here (a queued turn may run for long without a
    // message), so that a shard leaving the node stops the session's agent first.
    maxIdleTime: "2 hours"
  }
)

/** The cluster's own failures of a message (not the session's): defects, as a lost ledger is. */
const clusterFailures = new Set(["MailboxFull", "AlreadyProcessingMessage", "PersistenceError"])
const isClusterFailure = (error: unknown) =>
  typeof error === "object" && error !== null && clusterFailures.has((error as { _tag?: string })._tag ?? "")

/** The entity's call with the cluster's own failures as defects. */
const remote = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.catchIf(effect, isClusterFailure, Effect.die)

/**
 * The owner's answer with the errors the member declares: the owner answers with that same member,
 * so no other error arrives (the entity's union is every member's); one that did would be a defect,
 * as the cluster's own failures are.
 */
const answering = <const Tags extends ReadonlyArray<string>>(...tags: Tags) =>
<A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.catchIf(
    effect,
    (error): error is Exclude<E, Extract<E, { readonly _tag: Tags[number] }>> => !tags.includes(error._tag),
    Effect.die
  )

/** Why a turn is not accepted (`SubmitError`), and then why it fails (`TurnError`). */
const submitErrors = [
  "DiskQuota", "WorkspaceOverQuota",
  "BadRequest", "SessionNotFound", "SessionClosed", "ShuttingDown", "RateLimited", "BudgetExhausted",
  "AgentFailed", "PoolFull", "AppSessionLimit", "QueueFull", "StorageQuota"
] as const

/** How many session ids a create tries before it gives up on finding a free slot. */
const maxCreateAttempts = 64

/**
 * `Sessions` for the HTTP handlers of a cluster node: every request about a session is a message
 * to its entity, answered by the node that owns it (this one, or another over the runners'
 * sockets); listing and reading sessions read the shared ledger here. Every member is written out,
 * so a member added to `SessionsApi` is routed on purpose or not at all.
 */
export const RoutedSessionsLive = Layer.effect(
  Sessions,
  Effect.gen(function*() {
    const local = yield* Sessions
    const nodes = yield* ClusterNodes
    const client = yield* SessionEntity.client
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const entity = (id: string) => client(id)
    type FollowError = Stream.Stream.Error<ReturnType<ReturnType<typeof entity>["Follow"]>>

    /**
     * Relays the owner's stream of a turn into `live`: `started` is done at its first chunk (the
     * turn was found) or fails with why not; later chunks reach this node's streams as they come.
     */
    const relay = (app: AppName, id: string, live: LiveTurn, started: Deferred.Deferred<void, FollowError>) =>
      void runFork(
        entity(id).Follow({ app, turnIndex: live.turnIndex }).pipe(
          Stream.runForEach((chunk) =>
            Effect.sync(() => {
              switch (chunk._tag) {
                case "Start":
                  return Deferred.unsafeDone(started, Exit.void)
                case "Message":
                  return live.push(JSON.parse(chunk.json))
                case "Event":
                  return live.pushEvent(chunk.event, JSON.parse(chunk.json))
                case "End":
                  return live.finish({ event: chunk.event, data: chunk.data })
              }
            })
          ),
          Effect.tapError((error) => Deferred.fail(started, error)),
          Effect.catchAllCause((cause) =>
            Effect.sync(() =>
              live.finish({
                event: "error",
                data: { ok: false, error: "turn_interrupted", message: `The turn's stream from its node broke: ${Cause.pretty(cause).slice(0, 300)}` }
              })
            )
          )
        )
      )

    /** A stream of the turn: relayed from its owner, from its start. */
    const followTurn = (app: AppName, id: string, turnIndex: number) =>
      Effect.gen(function*() {
        const live = new LiveTurn(turnIndex)
        const started = yield* Deferred.make<void, FollowError>()
        relay(app, id, live, started)
        yield* Deferred.await(started)
        return live as TurnFeed
      })

    /**
     * Opens the session on a node with a free slot. The session's id decides its node: the first
     * id is drawn at random (a node by its share of the shards); when that node is full the next
     * id is drawn among the shards of the nodes not known to be full, and 503 `pool_full` comes
     * only once every listed node said it is full.
     *
     * Why this is exact without a count shared in the database: a node's slots are its own
     * `AgentPool`, taken atomically, so racing creates never overshoot a node, and the cluster's
     * live agents never exceed the sum. What made creates overshoot was shards moving while a
     * node joined: a session opened on a shard that then moved had its agent stopped (its slot
     * freed, the session resumed by its next turn), so its node took more. A shared count would
     * keep the moved session's slot held but would have to follow every way a session's agent
     * stops or moves; instead a create waits until the listed nodes' shards have settled (every
     * listed node holds shards, each shard one owner), so its session stays where it opens. Once
     * `GET /cluster` lists a node, its slots therefore count: a create waits for its shards rather
     * than answering 503.
     */
    const create = Effect.fn("RoutedSessions.create")(function*(app: AppName, request: CreateSessionRequest) {
      yield* nodes.settledNodes
      const full = new Set<string>()
      let id = newSessionId()
      for (let attempt = 1;; attempt++) {
        const created = yield* entity(id).Create({ app, request, delivery: randomUUID() }).pipe(
          Effect.catchTag("NodeFull", (error) => Effect.succeed(error))
        )
        if (!(created instanceof NodeFull)) return created
        full.add(created.node)
        const live = yield* nodes.settledNodes
        const open = live.filter((node) => !full.has(node.node))
        if (open.length === 0 || attempt >= maxCreateAttempts) {
          const capacity = live.reduce((sum, node) => sum + node.capacity, 0)
          return yield* new PoolFull({
            message: `All ${capacity} live agent slots of the cluster's ${live.length} node(s) are in use; close a session`,
            capacity
          })
        }
        const shards = new Set(open.flatMap((node) => node.shards))
        id = newSessionId()
        for (let draw = 0; draw < 1000 && !shards.has(nodes.shardOf(id)); draw++) id = newSessionId()
      }
    })

    /**
     * Accepts the turn on its owner. Its feed is relayed only when a stream follows it (a queued
     * turn that nobody streams costs no stream), and its reply is read once it is over.
     */
    const submit = (app: AppName, id: string, request: TurnRequest) =>
      Effect.map(entity(id).Submit({ app, request, delivery: randomUUID() }), (turnIndex): AcceptedTurn => {
        const live = new LiveTurn(turnIndex)
        let relaying = false
        const follow: TurnFeed["follow"] = (onMessage, onEnd) => {
          if (!relaying) {
            relaying = true
            relay(app, id, live, Deferred.unsafeMake(FiberId.none))
          }
          return live.follow(onMessage, onEnd)
        }
        const reply = Effect.async<void>((resume) => {
          const followed = follow(() => {}, () => resume(Effect.void))
          if (followed.end !== undefined) resume(Effect.void)
          return Effect.sync(followed.unsubscribe)
        }).pipe(
          Effect.zipRight(entity(id).GetTurn({ app, turnIndex })),
          Effect.flatMap((turn) =>
            turn.stop_reason === null
              ? Effect.dieMessage(`Turn ${turnIndex} of session ${id} ended without a reply (${turn.status})`)
              : Effect.succeed({
                ok: true as const,
                session_id: turn.session_id,
                turn_index: turn.turn_index,
                stop_reason: turn.stop_reason,
                usage: turn.usage,
                events: turn.events
              })
          ),
          Effect.orDie
        )
        return { turnIndex, feed: { turnIndex, follow }, reply }
      })

    /** On the node that owns the session, `here` (no message at all); elsewhere `there`, the entity's message. */
    const routed = <A, E>(id: string, here: () => Effect.Effect<A, E>, there: () => Effect.Effect<A, E>) =>
      nodes.holds(id) ? here() : there()

    const sessions: SessionsApi = {
      // A create draws a session id, which decides its node: always the entity's message.
      create: (app, request) =>
        remote(create(app, request)).pipe(
          answering(
            "DiskQuota",
            "BadRequest", "UnknownAgent", "InvalidConfig", "PermissionModeNotAllowed", "BudgetExhausted",
            "StorageQuota", "ShuttingDown", "AgentFailed", "PoolFull", "AppSessionLimit",
            // The clone runs on the node that starts the agent, into the workspace root every node shares.
            "GitCloneFailed"
          )
        ),
      // Reads of the shared ledger: any node answers them.
      // The shared ledger's row, read here; whether its agent runs (`live`) is its owner's to say.
      get: (app, id) =>
        routed(id, () => local.get(app, id), () =>
          Effect.flatMap(local.get(app, id), (session) =>
            session.closed_at !== null
              ? Effect.succeed(session)
              : entity(id).Get({ app }).pipe(remote, answering("SessionNotFound")))),
      // `live` from the nodes' rows (each written within a fraction of a second of a change).
      list: (app, options) =>
        Effect.zipWith(local.list(app, options), nodes.nodes, (sessions, rows) => {
          const live = new Set(rows.flatMap((row) => row.sessions.map(([id]) => id as string)))
          return sessions.map((session) =>
            session.live === live.has(session.session_id)
              ? session
              : new Session({ ...session, live: !session.live }, true)
          )
        }),
      submit: (app, id, request) =>
        routed(id, () => local.submit(app, id, request), () =>
          submit(app, id, request).pipe(remote, answering(...submitErrors))),
      turn: (app, id, request) =>
        routed(id, () => local.turn(app, id, request), () =>
          entity(id).Turn({ app, request, delivery: randomUUID() }).pipe(remote, answering(...submitErrors, "TurnTimeout"))),
      listTurns: (app, id, options) =>
        routed(id, () => local.listTurns(app, id, options), () =>
          entity(id).ListTurns({ app, after: options.after, limit: options.limit }).pipe(
            remote,
            answering("SessionNotFound")
          )),
      getTurn: (app, id, turnIndex, page) =>
        routed(id, () => local.getTurn(app, id, turnIndex, page), () =>
          entity(id).GetTurn({ app, turnIndex, after: page?.after, limit: page?.limit }).pipe(
            remote,
            answering("SessionNotFound", "TurnNotFound")
          )),
      followTurn: (app, id, turnIndex) =>
        routed(id, () => local.followTurn(app, id, turnIndex), () =>
          followTurn(app, id, turnIndex).pipe(remote, answering("SessionNotFound", "TurnNotFound"))),
      cancel: (app, id) =>
        routed(id, () => local.cancel(app, id), () => entity(id).Cancel({ app }).pipe(remote, answering("SessionNotFound"))),
      configure: (app, id, settings) =>
        routed(id, () => local.configure(app, id, settings), () =>
          entity(id).Configure({ app, settings }).pipe(
            remote,
            answering("SessionNotFound", "ShuttingDown", "InvalidConfig", "AgentFailed", "PoolFull", "AppSessionLimit", "SessionClosed")
          )),
      listPermissions: (app, id) =>
        routed(id, () => local.listPermissions(app, id), () =>
          entity(id).ListPermissions({ app }).pipe(remote, answering("SessionNotFound"))),
      answerPermission: (app, id, requestId, answer, by = "caller") =>
        routed(id, () => local.answerPermission(app, id, requestId, answer, by), () =>
          entity(id).AnswerPermission({ app, requestId, answer, by }).pipe(
            remote,
            answering("BadRequest", "SessionNotFound", "PermissionNotFound")
          )),
      // The ledger's cwd, read here: every node mounts the same CLAWDFORGE_WORKSPACE_ROOT (failover resumes a
      // session on a live node in the same folder, `actorFor` starting its agent in the stored cwd), so any
      // node reaches the files of any session, live on another node or not live at all.
      workspace: local.workspace,
      close: (app, id) =>
        routed(id, () => local.close(app, id), () => entity(id).Close({ app }).pipe(remote, answering("SessionNotFound"))),
      stop: (id) => routed(id, () => local.stop(id), () => entity(id).Stop().pipe(remote, answering())),
      // What this node's own actors do: the entity's finalizer hands a session over, a node drains its own.
      handOver: local.handOver,
      drain: local.drain,
      live: local.live,
      liveSessionIds: local.liveSessionIds,
      /**
       * An operator's view of the whole cluster, from the nodes' rows (each written within a fraction
       * of a second of a change): every node's live sessions and the requests waiting in them, and
       * the pools added up.
       */
      admin: {
        liveSessions: Effect.map(nodes.nodes, (rows) => new Map(rows.flatMap((row) => row.sessions))),
        pendingPermissions: Effect.map(nodes.nodes, (rows) => rows.flatMap((row) => row.pending)),
        pool: Effect.map(nodes.nodes, (rows) => ({
          live: rows.reduce((sum, row) => sum + row.live, 0),
          capacity: rows.reduce((sum, row) => sum + row.capacity, 0)
        }))
      }
    }
    return Sessions.make(sessions)
  })
)
