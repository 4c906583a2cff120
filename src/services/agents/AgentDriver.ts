import type {
  CreateElicitationRequest,
  CreateElicitationResponse,
  RequestPermissionRequest,
  RequestPermissionResponse
} from "@agentclientprotocol/sdk"
import type { Effect, Option, Scope } from "effect"
import type { AgentCapabilities, AgentDefinition } from "../../domain/Agent.js"
import type { AgentFailed, InvalidConfig } from "../../domain/Errors.js"
import type { AppName, SessionId } from "../../domain/Ids.js"
import type { AcpMessage, AgentSettings, PermissionMode } from "../../domain/Session.js"
import type { SettingsState } from "./AgentSettings.js"
import type { TurnUsage } from "../../domain/Turn.js"
import type { AgentNetwork } from "../config/AppConfig.js"
import type { LaunchPlan } from "../sandbox/Sandbox.js"

/** Who answers what the agent asks of its client: at once (a policy) or later (a person). */
export interface AgentRequests {
  readonly permission: (request: RequestPermissionRequest) => RequestPermissionResponse | Promise<RequestPermissionResponse>
  readonly elicitation: (request: CreateElicitationRequest) => CreateElicitationResponse | Promise<CreateElicitationResponse>
}

/** Everything a driver needs to start the agent of one session. */
export interface AgentLaunch {
  readonly app: AppName
  readonly sessionId: SessionId
  readonly agentName: string
  readonly agent: AgentDefinition
  readonly cwd: string
  readonly permissionMode: PermissionMode
  /** The agent's own session id to resume with `session/load`, when the session had one. */
  readonly resume: Option.Option<string>
  /** Answers the agent's permission requests and elicitations; by default the permission mode's policy. */
  readonly requests?: AgentRequests | undefined
  /** The app's own network rule (its `network` limit); none: the gateway's. */
  readonly network?: AgentNetwork | undefined
}

/** A launch as a driver gets it: with the way its processes start (in the session's sandbox). */
export interface SandboxedLaunch extends AgentLaunch {
  /** How `command` starts for this session: sandboxed, limited, with the agent's environment, until the scope closes. */
  readonly plan: (
    command: ReadonlyArray<string>,
    programs?: ReadonlyArray<string>
  ) => Effect.Effect<LaunchPlan, AgentFailed, Scope.Scope>
}

export interface PromptInput {
  readonly text: string
  readonly files: ReadonlyArray<string>
  /** Called with each JSON-RPC message of the turn as it happens. */
  readonly onMessage?: ((message: AcpMessage) => void) | undefined
}

export interface TurnOutcome {
  readonly stopReason: string
  /** What the turn used, as far as the agent reported it. */
  readonly usage: TurnUsage
  /** The turn's ACP messages in order, ending with the prompt response. */
  readonly events: ReadonlyArray<AcpMessage>
}

/** A live agent: its process lives as long as the scope `start` ran in. */
export interface AgentHandle {
  /** The agent's own session id (what `session/load` takes). */
  readonly agentSessionId: string
  /** How the agent session came to be: fresh, resumed, loaded, or fresh because resuming failed. */
  readonly origin: "new" | "resumed" | "loaded" | "new_after_failed_load"
  /** What the agent declared in its `initialize` answer, when the driver sees it. */
  readonly capabilities: AgentCapabilities | undefined
  readonly prompt: (input: PromptInput) => Effect.Effect<TurnOutcome, AgentFailed>
  /** The settings the agent offers and runs with now (a new object whenever they change). */
  readonly settings: () => SettingsState
  /** Applies model, mode and config changes, all or (when one is not offered) none. */
  readonly configure: (changes: AgentSettings) => Effect.Effect<void, InvalidConfig | AgentFailed>
  /** Asks the agent to stop the running turn (`session/cancel`). */
  readonly cancel: Effect.Effect<void>
  /** False once the agent process has gone. */
  readonly isAlive: Effect.Effect<boolean>
  readonly pid: number | undefined
}

/** What every driver (native ACP, acpx CLI) provides. */
export interface AgentDriver {
  readonly start: (launch: SandboxedLaunch) => Effect.Effect<AgentHandle, AgentFailed, Scope.Scope>
}
