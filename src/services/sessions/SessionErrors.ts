import { Schema } from "effect"
import * as Errors from "../../domain/Errors.js"
import { DiskQuota, WorkspaceOverQuota } from "../../domain/WorkspaceFiles.js"

/** Why an agent could not be started for a session. */
export type StartError = Errors.AgentFailed | Errors.PoolFull | Errors.AppSessionLimit

/** How a turn may fail once it is accepted. */
export type TurnError = StartError | Errors.TurnTimeout | Errors.SessionClosed

/** How a change of settings may fail once it is in the mailbox. */
export type SettingsError = Errors.InvalidConfig | StartError | Errors.SessionClosed

/**
 * Every error a member of `Sessions` may fail with, as the HTTP API has them: what a cluster node
 * answers another with (the session entity's errors).
 */
export const SessionsError = Schema.Union(
  DiskQuota, WorkspaceOverQuota,
  Errors.AgentFailed, Errors.AppSessionLimit, Errors.BadRequest, Errors.BudgetExhausted, Errors.InvalidConfig,
  Errors.PermissionModeNotAllowed, Errors.PermissionNotFound, Errors.PoolFull, Errors.RateLimited,
  Errors.SessionClosed, Errors.SessionNotFound, Errors.ShuttingDown, Errors.TurnNotFound, Errors.TurnTimeout,
  Errors.UnknownAgent, Errors.QueueFull, Errors.StorageQuota, Errors.GitCloneFailed
)
export type SessionsError = typeof SessionsError.Type

export const sessionClosed = (id: string) => new Errors.SessionClosed({ message: `Session ${id} is closed` })

export const sessionNotFound = (id: string) => new Errors.SessionNotFound({ message: `No session ${id.slice(0, 64)}` })

export const turnNotFound = (id: string, turnIndex: number) =>
  new Errors.TurnNotFound({ message: `Session ${id.slice(0, 64)} has no turn ${turnIndex}` })

export const shuttingDown = new Errors.ShuttingDown({ message: "The gateway is shutting down" })

/** What the caller of a turn hears when its session moved to another node under it. */
export const handedOver = new Errors.AgentFailed({
  message: "The gateway node running this turn handed its session to another node; the turn is interrupted " +
    "(it is not run again)"
})
