/** The direct path, the floor without HTTP: the demo agent over one ACP connection, no gateway. */
import { ClientSideConnection, ndJsonStream, PROTOCOL_VERSION } from "@agentclientprotocol/sdk"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import { Readable, Writable } from "node:stream"
import { demoAgent } from "./paths.js"
import { stopProcess, track, work } from "./processes.js"

export interface DirectAgent {
  readonly child: ChildProcess
  readonly connection: ClientSideConnection
  readonly sessionId: string
  /** session/update notifications received so far. */
  readonly updates: () => number
}

let dirs = 0
/** A fresh working directory for one direct agent. */
export const directDir = () => {
  const dir = join(work, "direct", String(dirs++))
  mkdirSync(dir, { recursive: true })
  return dir
}

/** spawn + initialize + session/new, as the gateway's driver does. */
export const startDirect = async (cwd = directDir()): Promise<DirectAgent> => {
  const child = track(spawn(process.execPath, [demoAgent], { cwd, stdio: ["pipe", "pipe", "ignore"] }))
  const stream = ndJsonStream(
    Writable.toWeb(child.stdin!) as WritableStream<Uint8Array>,
    Readable.toWeb(child.stdout!) as unknown as ReadableStream<Uint8Array>
  )
  let updates = 0
  const connection = new ClientSideConnection(() => ({
    requestPermission: async () => ({ outcome: { outcome: "cancelled" as const } }),
    sessionUpdate: async () => {
      updates++
    }
  }), stream)
  await connection.initialize({
    protocolVersion: PROTOCOL_VERSION,
    clientCapabilities: { fs: { readTextFile: false, writeTextFile: false }, terminal: false },
    clientInfo: { name: "clawdforge-bench", version: "0" }
  })
  const { sessionId } = await connection.newSession({ cwd, mcpServers: [] })
  return { child, connection, sessionId, updates: () => updates }
}

export const stopDirect = async (agent: DirectAgent) => {
  await stopProcess(agent.child, 3000)
}

export const directPrompt = (agent: DirectAgent, text = "bench") =>
  agent.connection.prompt({ sessionId: agent.sessionId, prompt: [{ type: "text", text }] })
