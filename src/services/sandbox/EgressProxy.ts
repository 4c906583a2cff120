import { Effect, Runtime } from "effect"
import { randomBytes } from "node:crypto"
import { lookup } from "node:dns/promises"
import * as http from "node:http"
import * as net from "node:net"
import { chmod, mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Duplex } from "node:stream"
import { fileURLToPath } from "node:url"
import type { AllowedHost } from "../config/AppConfig.js"
import { canonicalHost, isPublicAddress } from "../net/Addresses.js"

// Kept importable from here: the address helpers began in the proxy.
export { canonicalHost, isPublicAddress }

/** The bridge program run inside a sandbox in front of the agent (copied beside the bundle by scripts/build.mjs). */
export const bridgePath = fileURLToPath(new URL("./sandbox-bridge.mjs", import.meta.url))

/** The loopback port the bridge listens on inside the sandbox: the agent's `HTTP(S)_PROXY`. */
export const bridgePort = 3128

/** The command that runs `argv` behind the bridge to the proxy's socket (as the sandbox sees that socket). */
export const bridgeArgv = (socketPathInsideSandbox: string, argv: ReadonlyArray<string>): Array<string> => [
  process.execPath,
  bridgePath,
  String(bridgePort),
  socketPathInsideSandbox,
  "--",
  ...argv
]

/** Whether an entry names a host the operator meant as it is, private or not (an IP address, or `localhost`). */
const isLiteralEntry = (host: string) => host === "localhost" || net.isIP(host) !== 0

/** The entry that lets `host:port` through (both canonical), if one does. */
export const matchingEntry = (
  hosts: ReadonlyArray<AllowedHost>,
  host: string,
  port: number
): AllowedHost | undefined =>
  hosts.find((entry) =>
    (entry.port === undefined || entry.port === port) &&
    (entry.host.startsWith("*.")
      // A pattern names names: `*.0.1` is no way to `127.0.0.1`.
      ? net.isIP(host) === 0 && host.endsWith(entry.host.slice(1))
      : entry.host === host)
  )

/** What the proxy decided for one target. */
type Verdict =
  | { readonly _tag: "Allowed"; readonly addresses: ReadonlyArray<string> }
  | { readonly _tag: "Refused"; readonly reason: string }
  | { readonly _tag: "Unreachable" }

/** `host:port` as a log line and an answer show it (IPv6 in brackets). */
const hostPort = (host: string, port: number) => `${net.isIPv6(host) ? `[${host}]` : host}:${port}`

const hopByHop = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade"
])

/** Headers without the hop-by-hop ones (those named and those listed in `Connection`). */
const endToEnd = (headers: http.IncomingHttpHeaders | http.OutgoingHttpHeaders) => {
  const listed = new Set(
    String(headers["connection"] ?? "").split(",").map((name) => name.trim().toLowerCase()).filter((n) => n !== "")
  )
  const kept: http.OutgoingHttpHeaders = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !hopByHop.has(name) && !listed.has(name)) kept[name] = value
  }
  return kept
}

/** A TCP connection to the first of the checked addresses that answers. */
const connectFirst = async (addresses: ReadonlyArray<string>, port: number): Promise<net.Socket> => {
  let failure: unknown = new Error("no address")
  for (const address of addresses) {
    try {
      return await new Promise<net.Socket>((done, fail) => {
        const socket = net.connect({ host: address, port })
        socket.once("connect", () => {
          socket.off("error", fail)
          done(socket)
        })
        socket.once("error", fail)
      })
    } catch (error) {
      failure = error
    }
  }
  throw failure
}

/** A short plain-text HTTP answer written on a raw socket (after CONNECT), which then closes. */
const rawAnswer = (socket: Duplex, status: number, reason: string, text: string) => {
  if (socket.destroyed) return
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`
  )
}

/** Two streams joined both ways; either one failing or closing takes the other down. */
const splice = (a: Duplex, b: Duplex) => {
  const end = () => {
    a.destroy()
    b.destroy()
  }
  a.on("error", end).on("close", end)
  b.on("error", end).on("close", end)
  a.pipe(b)
  b.pipe(a)
}

/**
 * The way out for agents under `CLAWDFORGE_AGENT_NETWORK=allow:...`: each sandbox gets an HTTP proxy
 * of its own on a unix socket (its only link to the outside; the bridge inside makes it the agent's
 * `HTTP(S)_PROXY`). The proxy connects only to the sandbox's allowed hosts, to the addresses it checked
 * itself, and logs every refusal with the app and the host.
 */
export class EgressProxy extends Effect.Service<EgressProxy>()("clawdforge/EgressProxy", {
  scoped: Effect.gen(function*() {
    // 0711: the agents' users reach a socket they are given by name, and list none.
    const folder = yield* Effect.acquireRelease(
      Effect.promise(async () => {
        const path = await mkdtemp(join(tmpdir(), "clawdforge-egress-"))
        await chmod(path, 0o711)
        return path
      }),
      (path) => Effect.promise(() => rm(path, { recursive: true, force: true }))
    )
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())

    const refused = (app: string, target: string, reason: string) =>
      runFork(Effect.logWarning("agent egress refused").pipe(Effect.annotateLogs({ app, host: target, reason })))

    /** Matches the target, resolves it once and checks every address (names only: literals are the operator's). */
    const decide = async (hosts: ReadonlyArray<AllowedHost>, host: string, port: number): Promise<Verdict> => {
      const entry = matchingEntry(hosts, host, port)
      // A host outside the list is never resolved: DNS is a way out too.
      if (entry === undefined) return { _tag: "Refused", reason: "not in the allow list" }
      if (net.isIP(host) !== 0) return { _tag: "Allowed", addresses: [host] }
      const addresses = await lookup(host, { all: true, verbatim: true }).then(
        (found) => found.map((a) => a.address),
        () => []
      )
      if (addresses.length === 0) return { _tag: "Unreachable" }
      if (!isLiteralEntry(entry.host) && !addresses.every(isPublicAddress)) {
        return { _tag: "Refused", reason: "resolves to a non-public address" }
      }
      return { _tag: "Allowed", addresses }
    }

    const listen = (app: string, hosts: ReadonlyArray<AllowedHost>, socketPath: string) =>
      Effect.async<{ readonly server: http.Server; readonly sockets: Set<net.Socket> }>((resume) => {
        const entries = hosts.map((entry) => ({ host: canonicalHost(entry.host), port: entry.port }))
        const sockets = new Set<net.Socket>()
        const track = (socket: net.Socket) => {
          sockets.add(socket)
          socket.once("close", () => sockets.delete(socket))
        }
        const server = http.createServer()
        server.on("connection", track)

        // CONNECT host:port: a tunnel (https and anything else over TCP).
        server.on("connect", (request: http.IncomingMessage, client: Duplex, head: Buffer) => {
          client.on("error", () => client.destroy())
          const match = /^(\[[0-9a-fA-F:.]+\]|[^\s/@:[\]]+):(\d{1,5})$/.exec(request.url ?? "")
          const port = Number(match?.[2])
          if (match === null || port < 1 || port > 65535) {
            return rawAnswer(client, 400, "Bad Request", "CONNECT needs host:port\n")
          }
          const host = canonicalHost(match[1]!)
          const target = hostPort(host, port)
          void decide(entries, host, port).then(async (verdict) => {
            if (verdict._tag === "Refused") {
              refused(app, target, verdict.reason)
              return rawAnswer(client, 403, "Forbidden", `clawdforge: ${target} is not allowed\n`)
            }
            if (verdict._tag === "Unreachable") {
              return rawAnswer(client, 502, "Bad Gateway", `clawdforge: ${target} does not resolve\n`)
            }
            const upstream = await connectFirst(verdict.addresses, port).catch(() => undefined)
            if (upstream === undefined) {
              return rawAnswer(client, 502, "Bad Gateway", `clawdforge: ${target} did not answer\n`)
            }
            if (client.destroyed) return upstream.destroy()
            track(upstream)
            client.write("HTTP/1.1 200 Connection Established\r\n\r\n")
            if (head.length > 0) upstream.write(head)
            splice(client, upstream)
          })
        })

        // Absolute-form requests (`GET http://host/...`): forwarded as they are, minus hop-by-hop headers.
        server.on("request", (request: http.IncomingMessage, response: http.ServerResponse) => {
          const answer = (status: number, text: string) => {
            if (!response.headersSent) response.writeHead(status, { "content-type": "text/plain; charset=utf-8" })
            response.end(text)
          }
          let url: URL
          try {
            url = new URL(request.url ?? "")
          } catch {
            return answer(400, "clawdforge: send absolute-form http:// requests or CONNECT\n")
          }
          if (url.protocol !== "http:") return answer(400, "clawdforge: only http:// is forwarded; use CONNECT\n")
          const host = canonicalHost(url.hostname)
          const port = url.port === "" ? 80 : Number(url.port)
          const target = hostPort(host, port)
          void decide(entries, host, port).then(async (verdict) => {
            if (verdict._tag === "Refused") {
              refused(app, target, verdict.reason)
              return answer(403, `clawdforge: ${target} is not allowed\n`)
            }
            if (verdict._tag === "Unreachable") return answer(502, `clawdforge: ${target} does not resolve\n`)
            const socket = await connectFirst(verdict.addresses, port).catch(() => undefined)
            if (socket === undefined) return answer(502, `clawdforge: ${target} did not answer\n`)
            // The client (or the scope) went while the target was looked up.
            if (response.destroyed) return socket.destroy()
            track(socket)
            const forwarded = http.request({
              createConnection: () => socket,
              method: request.method ?? "GET",
              path: `${url.pathname}${url.search}`,
              headers: { ...endToEnd(request.headers), host: url.host, connection: "close" }
            })
            forwarded.on("response", (upstream) => {
              response.writeHead(upstream.statusCode ?? 502, upstream.statusMessage, endToEnd(upstream.headers))
              upstream.pipe(response)
              upstream.on("error", () => response.destroy())
            })
            forwarded.on("error", () => {
              if (response.headersSent) response.destroy()
              else answer(502, `clawdforge: ${target} failed\n`)
            })
            response.on("close", () => forwarded.destroy())
            request.pipe(forwarded)
          })
        })

        const failed = (error: Error) => resume(Effect.die(error))
        server.once("error", failed)
        server.listen(socketPath, () => {
          server.off("error", failed)
          // A failed accept (EMFILE, an agent opening connections without end) must not end the gateway.
          server.on("error", (error) => runFork(Effect.logWarning("agent egress proxy", error.message)))
          // The agent runs as another user.
          chmod(socketPath, 0o666).then(
            () => resume(Effect.succeed({ server, sockets })),
            (error) => {
              server.close()
              resume(Effect.die(error))
            }
          )
        })
      })

    const close = ({ server, sockets }: { readonly server: http.Server; readonly sockets: Set<net.Socket> }) =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
        for (const socket of sockets) socket.destroy()
      })

    /** An HTTP proxy for one sandbox on a fresh unix socket, open until the scope closes. */
    const open = Effect.fn("EgressProxy.open")(function*(
      options: { readonly app: string; readonly hosts: ReadonlyArray<AllowedHost> }
    ) {
      const socketPath = join(folder, `${randomBytes(8).toString("hex")}.sock`)
      yield* Effect.acquireRelease(
        listen(options.app, options.hosts, socketPath),
        (proxy) => close(proxy).pipe(Effect.zipRight(Effect.promise(() => rm(socketPath, { force: true }))))
      )
      return { socketPath } as const
    })

    return { folder, open } as const
  })
}) {}
