/**
 * The console's only way out: `fetch` to the gateway's own `/admin/*`, with the admin token in
 * the `Authorization` header (never in a URL). The token is kept in `sessionStorage`: for this
 * tab only, gone when it closes.
 */

const storageKey = "clawdforge.adminToken"

export const savedToken = (): string | null => sessionStorage.getItem(storageKey)
export const saveToken = (token: string) => sessionStorage.setItem(storageKey, token)
export const forgetToken = () => sessionStorage.removeItem(storageKey)

/** An error reply of the gateway, `{ok: false, error, message}`, with its status. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message)
  }
}

/** Told when the gateway refuses the token (401): the console signs out. */
let onUnauthorized: () => void = () => {}
export const whenUnauthorized = (f: () => void) => {
  onUnauthorized = f
}

const headers = (token: string, body: boolean): Record<string, string> => ({
  authorization: `Bearer ${token}`,
  ...(body ? { "content-type": "application/json" } : {})
})

const failure = async (response: Response): Promise<ApiError> => {
  const body = await response.json().catch(() => ({})) as { error?: string; message?: string }
  return new ApiError(response.status, body.error ?? "error", body.message ?? response.statusText)
}

/** One JSON request to the admin API, with the given token (or the saved one). */
export const call = async <A = any>(
  method: "GET" | "POST" | "PUT" | "DELETE",
  path: string,
  body?: unknown,
  token = savedToken() ?? ""
): Promise<A> => {
  const response = await fetch(path, {
    method,
    headers: headers(token, body !== undefined),
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    cache: "no-store"
  })
  if (!response.ok) {
    const error = await failure(response)
    if (response.status === 401 && token === savedToken()) onUnauthorized()
    throw error
  }
  return await response.json() as A
}

/** An event of a turn's stream, as the gateway sends it. */
export interface StreamEvent {
  readonly event: string
  readonly id: string
  readonly data: any
}

/**
 * Follows a turn's server-sent events with `fetch` (an `EventSource` cannot send the token):
 * calls `onEvent` for each until the stream ends or `signal` aborts.
 */
export const follow = async (path: string, onEvent: (event: StreamEvent) => void, signal: AbortSignal) => {
  const response = await fetch(path, { headers: headers(savedToken() ?? "", false), signal, cache: "no-store" })
  if (!response.ok || response.body === null) throw await failure(response)
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ""
  for (;;) {
    const { done, value } = await reader.read()
    if (done) return
    buffer += value
    let end: number
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const field = (name: string) =>
        block.split("\n").find((line) => line.startsWith(`${name}:`))?.slice(name.length + 1).trim() ?? ""
      const data = field("data")
      if (data !== "") onEvent({ event: field("event") || "message", id: field("id"), data: JSON.parse(data) })
    }
  }
}
