import type { CreateElicitationRequest, RequestPermissionRequest } from "@agentclientprotocol/sdk"
import type { SessionId } from "../../../domain/Ids.js"
import type { PermissionRequest } from "../../../domain/Permission.js"
import type { Session } from "../../../domain/Session.js"
import type { AgentRequests } from "../../agents/AgentDriver.js"
import { answerPermission as policyAnswer } from "../../agents/Permissions.js"
import { describeAnswer, type HeldAnswer, optionsOf, PermissionDesk } from "./PermissionDesk.js"
import type { LiveTurn } from "./TurnFeed.js"

/** An audit event of a permission request. */
export type PermissionAuditEvent = readonly ["permission_request" | "permission_answer", unknown]

/** Writes a session's audit events; called from a driver's callback, outside any fiber. */
export type PermissionAudit = (id: SessionId, events: ReadonlyArray<PermissionAuditEvent>) => void

/** A tool call as the audit trail keeps it: what it is, not its input. */
const toolCallSummary = (toolCall: { readonly [key: string]: unknown }) => ({
  id: toolCall["toolCallId"] ?? null,
  title: toolCall["title"] ?? null,
  kind: toolCall["kind"] ?? null
})

/** What the agent asks of an ask-mode session as the audit trail keeps it. */
const requestDetail = (request: PermissionRequest) => ({
  request_id: request.request_id,
  kind: request.kind,
  turn_index: request.turn_index,
  tool_call: request.tool_call === null ? null : toolCallSummary(request.tool_call),
  options: request.options
})

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
const policyRequests = (
  id: SessionId,
  mode: Exclude<Session["permission_mode"], "ask">,
  audit: PermissionAudit
): AgentRequests => ({
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

/** What a session's permission policy needs of the gateway. */
export interface PermissionPolicyOptions {
  /** How long a held request waits for the caller (`CLAWDFORGE_PERMISSION_TIMEOUT_SECS`). */
  readonly timeoutMs: number
  /** The turn running now, whose streams show a held request. */
  readonly currentTurn: () => LiveTurn | undefined
  readonly audit: PermissionAudit
  /** Tells the app (its webhook) of a request held for it. */
  readonly onHeld: (request: PermissionRequest) => void
}

/** How a session answers its agent's requests: its desk (held requests) and what the driver calls. */
export interface PermissionPolicy {
  readonly desk: PermissionDesk
  readonly requests: AgentRequests
}

/**
 * The permission policy of a session: in ask mode its desk holds the requests for the caller
 * (audited, and sent to the app's webhook, as they come); otherwise its mode answers them.
 */
export const permissionPolicy = (session: Session, options: PermissionPolicyOptions): PermissionPolicy => {
  const id = session.session_id
  const desk = new PermissionDesk({
    timeoutMs: options.timeoutMs,
    currentTurn: options.currentTurn,
    onHeld: (request) => {
      options.audit(id, [["permission_request", requestDetail(request)]])
      options.onHeld(request)
    },
    onAnswered: (request, answer) => options.audit(id, [["permission_answer", answerDetail(request.request_id, answer)]])
  })
  const mode = session.permission_mode
  return { desk, requests: mode === "ask" ? desk : policyRequests(id, mode, options.audit) }
}
