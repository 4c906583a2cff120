import type { RequestPermissionRequest, RequestPermissionResponse } from "@agentclientprotocol/sdk"
import type { PermissionMode } from "../../domain/Session.js"

// Tool kinds that only look: what `approve-reads` lets through.
const readKinds = new Set(["read", "search", "fetch", "think"])

/** The gateway's answer to `session/request_permission` under a session's permission mode. */
export const answerPermission = (
  mode: PermissionMode,
  request: RequestPermissionRequest
): RequestPermissionResponse => {
  const approve = mode === "approve-all" || (mode === "approve-reads" && readKinds.has(request.toolCall.kind ?? ""))
  const pick = (kinds: ReadonlyArray<string>) =>
    kinds.map((kind) => request.options.find((option) => option.kind === kind)).find((option) => option !== undefined)
  const choice = approve ? pick(["allow_once", "allow_always"]) : pick(["reject_once", "reject_always"])
  return choice === undefined
    ? { outcome: { outcome: "cancelled" } }
    : { outcome: { outcome: "selected", optionId: choice.optionId } }
}
