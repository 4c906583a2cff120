import { createHmac, timingSafeEqual } from "node:crypto"
import { createServer, type IncomingHttpHeaders, type Server } from "node:http"
import { join, resolve } from "node:path"
import { afterAll } from "vitest"
import { freePort, runToExit } from "./GatewayProcess.js"
import { appName, appToken, otherApp, otherToken } from "./TestGateway.js"

const root = resolve(import.meta.dirname, "../..")

/**
 * Receivers listen on loopback, which a gateway refuses as a webhook target by default: the tests
 * that deliver to them say so with this (the refusal has tests of its own).
 */
export const loopbackReceivers = { CLAWDFORGE_WEBHOOK_ALLOW_PRIVATE: "true" } as const

/** One `clawdforge ...` process on the given ledger, both test apps configured by CLAWDFORGE_APP_TOKENS. */
export const clawdforge = (db: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  runToExit([join(root, "bin", "clawdforge.mjs"), ...args], {
    CLAWDFORGE_DB: db,
    CLAWDFORGE_APP_TOKENS: `${appName}=${appToken},${otherApp}=${otherToken}`,
    ...env
  })

export interface Received {
  readonly at: number
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

const open = new Set<Server>()
afterAll(async () => {
  await Promise.all([...open].map((server) => {
    server.closeAllConnections()
    return new Promise<void>((done) => server.close(() => done()))
  }))
  open.clear()
})

/** A webhook receiver on loopback: `answer` says the status of each request (or `undefined`: never answer). */
export const receiver = async (answer: (n: number, body: string) => number | undefined, port?: number) => {
  const received: Array<Received> = []
  const server: Server = createServer((req, res) => {
    let body = ""
    req.on("data", (chunk) => body += chunk)
    req.on("end", () => {
      received.push({ at: Date.now(), headers: req.headers, body })
      const status = answer(received.length, body)
      if (status !== undefined) res.writeHead(status).end()
    })
  })
  let connections = 0
  server.on("connection", () => connections++)
  const listenPort = port ?? await freePort()
  await new Promise<void>((done) => server.listen(listenPort, "127.0.0.1", done))
  open.add(server)
  return {
    port: listenPort,
    url: `http://127.0.0.1:${listenPort}/hook`,
    received,
    /** TCP connections accepted so far (a refused target makes none). */
    connections: () => connections,
    close: () => {
      open.delete(server)
      server.closeAllConnections()
      return new Promise<void>((done) => server.close(() => done()))
    }
  }
}

export type Receiver = Awaited<ReturnType<typeof receiver>>

export const verify = (secret: string, delivery: Received) => {
  const timestamp = String(delivery.headers["clawdforge-timestamp"])
  const expected = `sha256=${createHmac("sha256", secret).update(`${timestamp}.${delivery.body}`).digest("hex")}`
  const given = String(delivery.headers["clawdforge-signature"])
  return given.length === expected.length && timingSafeEqual(Buffer.from(given), Buffer.from(expected))
}

export const events = (received: ReadonlyArray<Received>, event: string) =>
  received.filter((r) => r.headers["clawdforge-event"] === event)
