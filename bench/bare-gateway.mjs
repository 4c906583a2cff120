// bare-gateway.mjs — the bench's second floor: the least an HTTP gateway in front of an ACP agent
// can do. Plain node:http, hand-written newline-delimited JSON-RPC over the agent's stdio; no
// Effect, no ledger, no logging, no limits. Same routes and reply shapes as clawdforge for the
// calls the bench makes, so the two are timed by the same client.
//   POST /sessions                 spawn the agent, initialize, session/new -> {ok, session_id, agent}
//   POST /sessions/:id/turn        session/prompt -> {ok, session_id, turn_index, stop_reason, events}
//   POST /sessions/:id/turn/stream `event: acp` per message, then `event: done`
//   DELETE /sessions/:id           kill the agent -> {ok}
// Env: BARE_PORT, BARE_TOKEN (the bearer token), BARE_AGENT (the agent's .mjs), BARE_WORKSPACES.
import { spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdirSync } from "node:fs"
import http from "node:http"
import { join } from "node:path"

const { BARE_PORT, BARE_TOKEN, BARE_AGENT, BARE_WORKSPACES } = process.env
const sessions = new Map()

/** One agent process and its JSON-RPC connection; `onMessage` sees every message of the running turn. */
const startAgent = async (cwd) => {
  const child = spawn(process.execPath, [BARE_AGENT], { cwd, stdio: ["pipe", "pipe", "ignore"] })
  const pending = new Map()
  const agent = { child, onMessage: undefined, turns: 0, tail: Promise.resolve() }
  let nextId = 0
  let rest = ""
  const send = (message) => child.stdin.write(JSON.stringify(message) + "\n")
  agent.request = (method, params) =>
    new Promise((resolve, reject) => {
      const message = { jsonrpc: "2.0", id: nextId++, method, params }
      pending.set(message.id, { resolve, reject })
      agent.onMessage?.(message)
      send(message)
    })
  const receive = (message) => {
    agent.onMessage?.(message)
    if (message.method === undefined) {
      const waiter = pending.get(message.id)
      pending.delete(message.id)
      return message.error ? waiter?.reject(new Error(message.error.message)) : waiter?.resolve(message)
    }
    if (message.id === undefined) return // a notification (session/update)
    // A request from the agent: permissions are cancelled, anything else is not offered.
    const answer = message.method === "session/request_permission"
      ? { jsonrpc: "2.0", id: message.id, result: { outcome: { outcome: "cancelled" } } }
      : { jsonrpc: "2.0", id: message.id, error: { code: -32601, message: "Method not found" } }
    agent.onMessage?.(answer)
    send(answer)
  }
  child.stdout.setEncoding("utf8")
  child.stdout.on("data", (text) => {
    const lines = (rest + text).split("\n")
    rest = lines.pop()
    for (const line of lines) if (line.length > 0) receive(JSON.parse(line))
  })
  child.once("exit", () => {
    for (const waiter of pending.values()) waiter.reject(new Error("agent exited"))
    pending.clear()
  })
  await agent.request("initialize", { protocolVersion: 1, clientCapabilities: {} })
  agent.sessionId = (await agent.request("session/new", { cwd, mcpServers: [] })).result.sessionId
  return agent
}

/** One turn in the session's arrival order; `onMessage` gets each message of the turn. */
const runTurn = (agent, prompt, onMessage) => {
  const turn = agent.tail.then(async () => {
    agent.onMessage = onMessage
    try {
      const response = await agent.request("session/prompt", {
        sessionId: agent.sessionId,
        prompt: [{ type: "text", text: prompt }]
      })
      return { turn_index: ++agent.turns, stop_reason: response.result.stopReason }
    } finally {
      agent.onMessage = undefined
    }
  })
  agent.tail = turn.catch(() => {})
  return turn
}

const reply = (res, status, body) => {
  const text = JSON.stringify(body)
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
  res.end(text)
}

const readJson = async (req) => {
  const chunks = []
  for await (const chunk of req) chunks.push(chunk)
  return chunks.length === 0 ? {} : JSON.parse(Buffer.concat(chunks).toString("utf8"))
}

const handle = async (req, res) => {
  if (req.url === "/healthz") return reply(res, 200, { ok: true })
  if (req.headers.authorization !== `Bearer ${BARE_TOKEN}`) return reply(res, 401, { ok: false, error: "unauthorized" })
  const body = req.method === "POST" ? await readJson(req) : {}
  const [, , id, action, stream] = req.url.split("/") // "", "sessions", id, "turn", "stream"
  if (req.method === "POST" && req.url === "/sessions") {
    const session_id = randomBytes(12).toString("base64url")
    const cwd = join(BARE_WORKSPACES, session_id)
    mkdirSync(cwd, { recursive: true })
    sessions.set(session_id, await startAgent(cwd))
    return reply(res, 200, { ok: true, session_id, agent: body.agent ?? "echo" })
  }
  const agent = sessions.get(id)
  if (agent === undefined) return reply(res, 404, { ok: false, error: "not_found" })
  if (req.method === "DELETE" && action === undefined) {
    sessions.delete(id)
    agent.child.kill("SIGTERM")
    return reply(res, 200, { ok: true })
  }
  if (req.method !== "POST" || action !== "turn") return reply(res, 404, { ok: false, error: "not_found" })
  if (stream === "stream") {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
    const done = await runTurn(agent, body.prompt, (m) => res.write(`event: acp\ndata: ${JSON.stringify(m)}\n\n`))
    return res.end(`event: done\ndata: ${JSON.stringify({ ok: true, session_id: id, ...done })}\n\n`)
  }
  const events = []
  const done = await runTurn(agent, body.prompt, (m) => events.push(m))
  return reply(res, 200, { ok: true, session_id: id, ...done, events })
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((error) => {
    if (res.headersSent) return res.destroy()
    reply(res, 502, { ok: false, error: "agent_failed", message: String(error?.message ?? error) })
  })
})
server.keepAliveTimeout = 60_000
server.listen(Number(BARE_PORT), "127.0.0.1")

process.once("SIGTERM", () => {
  for (const agent of sessions.values()) agent.child.kill("SIGTERM")
  server.close()
  server.closeAllConnections()
  setTimeout(() => process.exit(0), 2000).unref() // in case an agent's pipe holds the loop
})
