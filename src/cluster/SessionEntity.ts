import * as Entity from "@effect/cluster/Entity"
import * as Rpc from "@effect/rpc/Rpc"
import { Schema } from "effect"
import { AppName } from "../domain/Ids.js"
import { PermissionAnswer, PermissionRequest } from "../domain/Permission.js"
import { AgentSettings, CreateSessionRequest, Session, TurnReply, TurnRequest } from "../domain/Session.js"
import { TurnDetail, TurnSummary } from "../domain/Turn.js"
import { SessionsError } from "../services/sessions/SessionErrors.js"

/** The node a create landed on had no free slot: the create tries a session id another node owns. */
export class NodeFull extends Schema.TaggedError<NodeFull>()("NodeFull", {
  node: Schema.String,
  capacity: Schema.Int
}) {}

/** What a session's owner may answer: the errors of `Sessions` (`SessionErrors`), and a create's `NodeFull`. */
export const SessionError = Schema.Union(...SessionsError.members, NodeFull)

/** One item of a turn's stream sent from its owner: its start, an ACP message, a named event, or its end. */
export const FeedChunk = Schema.Union(
  // First: the turn was found (a stream that fails says why not).
  Schema.TaggedStruct("Start", {}),
  Schema.TaggedStruct("Message", { json: Schema.String }),
  Schema.TaggedStruct("Event", { event: Schema.String, json: Schema.String }),
  Schema.TaggedStruct("End", { event: Schema.Literal("done", "error"), data: Schema.Unknown })
)
export type FeedChunk = typeof FeedChunk.Type

const app = { app: AppName }
const rpc = <const Tag extends string, P extends Schema.Struct.Fields, S extends Schema.Schema.Any>(
  tag: Tag,
  payload: P,
  success: S
) => Rpc.make(tag, { payload: { ...app, ...payload }, success, error: SessionError })

/**
 * A session as an entity of the cluster, keyed by its session id. Every message is answered by
 * the node that owns the session's shard, with its own `Sessions`: that node runs the agent.
 * Messages are volatile (not persisted): one in flight to a node that dies is sent again to the
 * session's new owner, which resumes the session from the ledger (and refuses a create or a turn
 * the dead node had taken already: `Deliveries`).
 */
export const SessionEntity = Entity.make("Session", [
  // `delivery`: the message's own key (see `Deliveries`): what accepts work runs at most once.
  rpc("Create", { request: CreateSessionRequest, delivery: Schema.String }, Session),
  rpc("Turn", { request: TurnRequest, delivery: Schema.String }, TurnReply),
  // The session as its owner sees it: whether its agent runs there (`live`).
  rpc("Get", {}, Session),
  rpc("Submit", { request: TurnRequest, delivery: Schema.String }, Schema.Int),
  Rpc.make("Follow", {
    payload: { ...app, turnIndex: Schema.Int },
    success: FeedChunk,
    error: SessionError,
    stream: true
  }),
  rpc("ListTurns", { after: Schema.optional(Schema.Int), limit: Schema.optional(Schema.Int) }, Schema.Array(TurnSummary)),
  rpc("GetTurn", {
    turnIndex: Schema.Int,
    after: Schema.optional(Schema.Int),
    limit: Schema.optional(Schema.Int)
  }, TurnDetail),
  rpc("Cancel", {}, Schema.Boolean),
  rpc("Configure", { settings: AgentSettings }, Session),
  rpc("ListPermissions", {}, Schema.Array(PermissionRequest)),
  // `by`: who answers, for the audit trail (an app, or an operator through the admin API).
  rpc("AnswerPermission", { requestId: Schema.String, answer: PermissionAnswer, by: Schema.Literal("caller", "admin") }, Schema.Void),
  rpc("Close", {}, Schema.Struct({ alreadyClosed: Schema.Boolean })),
  // From the cluster's sweeper: stop the agent of a session it closed or deleted.
  Rpc.make("Stop"),
  // From the cluster's recovery: end what a dead node left queued or running, unless this node runs it.
  Rpc.make("Recover")
])
