import type {
  CreateElicitationRequest,
  CreateElicitationResponse,
  RequestPermissionRequest,
  RequestPermissionResponse
} from "@agentclientprotocol/sdk"
import { Either } from "effect"
import { randomBytes } from "node:crypto"
import { BadRequest, PermissionNotFound } from "../../../domain/Errors.js"
import type { PermissionAnswer, PermissionRequest, PermissionResolved } from "../../../domain/Permission.js"
import type { LiveTurn } from "./TurnFeed.js"

/** Who answered a request. */
export type AnsweredBy = PermissionResolved["by"]

/** How a held request was answered, as its audit event and stream event say. */
export interface HeldAnswer {
  readonly outcome: string
  readonly optionId: string | null
  readonly by: AnsweredBy
}

type Answer = RequestPermissionResponse | CreateElicitationResponse

interface Held {
  readonly info: PermissionRequest
  /** Answers the agent, once. */
  readonly settle: (answer: Answer, by: AnsweredBy) => void
  readonly cancelled: Answer
}

/** An answer as its audit and stream events say it. */
export const describeAnswer = (answer: Answer): { outcome: string; optionId: string | null } => {
  if (!("outcome" in answer)) return { outcome: String(answer.action), optionId: null }
  const { outcome } = answer as RequestPermissionResponse
  return outcome.outcome === "selected"
    ? { outcome: "selected", optionId: outcome.optionId }
    : { outcome: "cancelled", optionId: null }
}

export interface PermissionDeskOptions {
  readonly timeoutMs: number
  /** The turn running now, whose streams show the request. */
  readonly currentTurn: () => LiveTurn | undefined
  readonly onHeld: (request: PermissionRequest) => void
  readonly onAnswered: (request: PermissionRequest, answer: HeldAnswer) => void
}

const notFound = (id: string) =>
  new PermissionNotFound({ message: `No pending request ${id.slice(0, 64)} (unknown, or answered already)` })

/** The first `reject_*` option, which a request unanswered in time gets. */
const rejection = (request: RequestPermissionRequest): RequestPermissionResponse => {
  const option = request.options.find((o) => o.kind === "reject_once") ??
    request.options.find((o) => o.kind === "reject_always")
  return option === undefined
    ? { outcome: { outcome: "cancelled" } }
    : { outcome: { outcome: "selected", optionId: option.optionId } }
}

/** The options a permission request offers, as the API lists them. */
export const optionsOf = (request: RequestPermissionRequest) =>
  request.options.map((o) => ({ option_id: o.optionId, name: o.name, kind: o.kind }))

const cancelledPermission: RequestPermissionResponse = { outcome: { outcome: "cancelled" } }

/**
 * The requests of one ask-mode session waiting for the caller: a permission request is answered
 * with one of its options, an elicitation with an action. Each is answered exactly once: by the
 * caller, by the timeout (the first `reject_*` option; an elicitation is declined), or `cancelled`
 * when its turn is cancelled or its session stops.
 */
export class PermissionDesk {
  private readonly held = new Map<string, Held>()

  constructor(private readonly options: PermissionDeskOptions) {}

  /** The pending requests, oldest first. */
  list(): ReadonlyArray<PermissionRequest> {
    return [...this.held.values()].map((held) => held.info)
  }

  permission(request: RequestPermissionRequest): Promise<RequestPermissionResponse> {
    return this.hold({
      kind: "permission",
      tool_call: request.toolCall as unknown as Record<string, unknown>,
      options: optionsOf(request)
    }, rejection(request), cancelledPermission)
  }

  elicitation(request: CreateElicitationRequest): Promise<CreateElicitationResponse> {
    return this.hold<CreateElicitationResponse>({
      kind: "elicitation",
      tool_call: null,
      options: [],
      elicitation: {
        message: request.message,
        requested_schema: (request as { requestedSchema?: unknown }).requestedSchema ?? null
      }
    }, { action: "decline" }, { action: "cancel" })
  }

  /**
   * The caller's answer (or an operator's, `by: "admin"`): 404 for no such pending request, 400 for
   * an answer it does not take.
   */
  answer(
    requestId: string,
    body: PermissionAnswer,
    by: "caller" | "admin" = "caller"
  ): Either.Either<void, PermissionNotFound | BadRequest> {
    const held = this.held.get(requestId)
    if (held === undefined) return Either.left(notFound(requestId))
    if (held.info.kind === "permission") {
      const offered = held.info.options.map((o) => o.option_id)
      if (body.option_id === undefined || !offered.includes(body.option_id)) {
        const what = body.option_id === undefined ? "option_id is missing" : `option ${body.option_id.slice(0, 64)} was not offered`
        return Either.left(new BadRequest({ message: `${what}: answer with one of ${offered.join(", ")}` }))
      }
      held.settle({ outcome: { outcome: "selected", optionId: body.option_id } }, by)
    } else {
      if (body.action === undefined) {
        return Either.left(new BadRequest({ message: "action is missing: answer an elicitation with accept, decline or cancel" }))
      }
      held.settle(
        body.action === "accept" ? { action: "accept", content: (body.content ?? {}) as any } : { action: body.action },
        by
      )
    }
    return Either.void
  }

  /** Answers every pending request `cancelled` (a cancelled turn, a stopped session). */
  cancelAll() {
    for (const held of [...this.held.values()]) held.settle(held.cancelled, "cancel")
  }

  private hold<A extends Answer>(
    request: Pick<PermissionRequest, "kind" | "tool_call" | "options" | "elicitation">,
    onTimeout: A,
    cancelled: A
  ): Promise<A> {
    const requestId = `req_${randomBytes(9).toString("base64url")}`
    const now = Date.now()
    const turn = this.options.currentTurn()
    const info: PermissionRequest = {
      request_id: requestId,
      ...request,
      turn_index: turn?.turnIndex ?? null,
      requested_at: Math.floor(now / 1000),
      expires_at: Math.floor((now + this.options.timeoutMs) / 1000)
    }
    return new Promise<A>((resolve) => {
      const timer = setTimeout(() => settle(onTimeout, "timeout"), this.options.timeoutMs)
      const settle = (answer: Answer, by: AnsweredBy) => {
        if (!this.held.delete(requestId)) return
        clearTimeout(timer)
        const { optionId, outcome } = describeAnswer(answer)
        const resolved: PermissionResolved = { request_id: requestId, outcome, option_id: optionId, by }
        turn?.pushEvent("permission_resolved", resolved)
        this.options.onAnswered(info, { outcome, optionId, by })
        resolve(answer as A)
      }
      this.held.set(requestId, { info, settle, cancelled })
      this.options.onHeld(info)
      turn?.pushEvent("permission", info)
    })
  }
}
