import type * as Acp from "@agentclientprotocol/sdk"
import type {
  AnyMessage,
  CloseSessionRequest,
  CreateElicitationRequest,
  CreateElicitationResponse,
  InitializeRequest,
  InitializeResponse,
  LoadSessionRequest,
  NewSessionRequest,
  NewSessionResponse,
  PromptRequest,
  PromptResponse,
  RequestPermissionRequest,
  RequestPermissionResponse,
  ResumeSessionRequest,
  ResumeSessionResponse,
  SetSessionConfigOptionRequest,
  SetSessionConfigOptionResponse,
  SetSessionModeRequest
} from "@agentclientprotocol/sdk"

// The protocol version and method names this client speaks, checked against the SDK's own. Named
// here because importing the SDK's values would load all of its schemas into the gateway.
export const PROTOCOL_VERSION: typeof Acp.PROTOCOL_VERSION = 1
const AGENT_METHODS = {
  initialize: "initialize",
  session_new: "session/new",
  session_load: "session/load",
  session_resume: "session/resume",
  session_close: "session/close",
  session_prompt: "session/prompt",
  session_cancel: "session/cancel",
  session_set_mode: "session/set_mode",
  session_set_config_option: "session/set_config_option"
} as const satisfies Partial<typeof Acp.AGENT_METHODS>
const CLIENT_METHODS = {
  session_request_permission: "session/request_permission",
  elicitation_create: "elicitation/create"
} as const satisfies Partial<typeof Acp.CLIENT_METHODS>

/** A JSON-RPC error the agent answered with: code, message and its `data`, kept whole. */
export class AcpRequestError extends Error {
  constructor(readonly code: number, message: string, readonly data: unknown) {
    super(message)
  }
}

/** What the gateway answers when the agent asks something of its client (at once, or later). */
export interface AcpClientHandlers {
  readonly requestPermission: (
    request: RequestPermissionRequest
  ) => RequestPermissionResponse | Promise<RequestPermissionResponse>
  readonly createElicitation: (
    request: CreateElicitationRequest
  ) => CreateElicitationResponse | Promise<CreateElicitationResponse>
}

type Pending = { readonly resolve: (result: any) => void; readonly reject: (error: Error) => void }

/**
 * The client side of an ACP connection, over newline-delimited JSON-RPC on an agent's stdio.
 * The ACP SDK's own connection runs every message through web streams and a schema pass; on a
 * turn's path that cost more than the rest of the turn, so the wire is handled here, with the
 * SDK's types and method names. `send` writes one message; `receive` takes each message the
 * agent writes; `close` fails every call still waiting once the agent has gone.
 */
export const makeAcpConnection = (send: (message: AnyMessage) => void, handlers: AcpClientHandlers) => {
  const pending = new Map<number, Pending>()
  let nextId = 0
  let closed = false

  const request = <A>(method: string, params: unknown) =>
    new Promise<A>((resolve, reject) => {
      if (closed) return reject(new Error("the agent's connection is closed"))
      const id = nextId++
      pending.set(id, { resolve, reject })
      send({ jsonrpc: "2.0", id, method, params } as AnyMessage)
    })

  const reply = (id: string | number, result: unknown) => {
    if (!closed) send({ jsonrpc: "2.0", id, result } as AnyMessage)
  }
  const replyWhenReady = <A>(id: string | number, result: A | Promise<A>, otherwise: A) =>
    result instanceof Promise ? void result.then((value) => reply(id, value), () => reply(id, otherwise)) : reply(id, result)

  /** The agent's own requests: permissions and elicitations go to the handlers, the rest is not offered. */
  const answer = (id: string | number, method: string, params: unknown) => {
    if (method === CLIENT_METHODS.session_request_permission) {
      const cancelled: RequestPermissionResponse = { outcome: { outcome: "cancelled" } }
      return replyWhenReady(id, handlers.requestPermission(params as RequestPermissionRequest), cancelled)
    }
    if (method === CLIENT_METHODS.elicitation_create) {
      const cancelled: CreateElicitationResponse = { action: "cancel" }
      return replyWhenReady(id, handlers.createElicitation(params as CreateElicitationRequest), cancelled)
    }
    send({ jsonrpc: "2.0", id, error: { code: -32601, message: `Method not found: ${method}` } } as AnyMessage)
  }

  const receive = (message: Record<string, unknown>) => {
    const id = message["id"]
    if (typeof message["method"] === "string") {
      // A request from the agent, or a notification (`session/update`: the recorder keeps it).
      if (typeof id === "string" || typeof id === "number") answer(id, message["method"], message["params"])
      return
    }
    const waiting = typeof id === "number" ? pending.get(id) : undefined
    if (waiting === undefined) return
    pending.delete(id as number)
    const error = message["error"] as { code?: unknown; message?: unknown; data?: unknown } | undefined
    if (error !== undefined && error !== null) {
      waiting.reject(
        new AcpRequestError(
          typeof error.code === "number" ? error.code : -32603,
          typeof error.message === "string" ? error.message : "Internal error",
          error.data
        )
      )
    } else waiting.resolve(message["result"])
  }

  const close = () => {
    if (closed) return
    closed = true
    for (const waiting of pending.values()) waiting.reject(new Error("the agent's connection closed"))
    pending.clear()
  }

  return {
    receive,
    close,
    initialize: (params: InitializeRequest) => request<InitializeResponse>(AGENT_METHODS.initialize, params),
    newSession: (params: NewSessionRequest) => request<NewSessionResponse>(AGENT_METHODS.session_new, params),
    loadSession: (params: LoadSessionRequest) => request<unknown>(AGENT_METHODS.session_load, params),
    resumeSession: (params: ResumeSessionRequest) => request<ResumeSessionResponse>(AGENT_METHODS.session_resume, params),
    closeSession: (params: CloseSessionRequest) => request<unknown>(AGENT_METHODS.session_close, params),
    setMode: (params: SetSessionModeRequest) => request<unknown>(AGENT_METHODS.session_set_mode, params),
    setConfigOption: (params: SetSessionConfigOptionRequest) =>
      request<SetSessionConfigOptionResponse>(AGENT_METHODS.session_set_config_option, params),
    prompt: (params: PromptRequest) => request<PromptResponse>(AGENT_METHODS.session_prompt, params),
    cancel: (sessionId: string) =>
      send({ jsonrpc: "2.0", method: AGENT_METHODS.session_cancel, params: { sessionId } } as AnyMessage)
  } as const
}
