/**
 * The runners' sockets to each other (`CLAWDFORGE_NODE_PORT`), closed to whoever does not hold
 * `CLAWDFORGE_CLUSTER_SECRET`.
 *
 * Why TLS with a pre-shared key rather than a handshake of our own: the runners' transport is a
 * `SocketServer` and a client `Socket` (`@effect/platform`), both made from a Node duplex stream, so
 * a `tls.TLSSocket` slots in on each side with no change to the library's framing, and the proof
 * is TLS's own (each side shows it knows the key in the Finished messages; nothing the RPC server
 * reads arrives before that). A hand-written HMAC challenge would need its own framing, nonces and
 * a way to hand the stream on after it. Node's `pskCallback` does TLS 1.2 PSK only: the cipher is
 * ECDHE-PSK (a recorded session stays sealed should the secret leak later), no certificates.
 */
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as NodeSocketServer from "@effect/platform-node/NodeSocketServer"
import * as Socket from "@effect/platform/Socket"
import * as SocketServer from "@effect/platform/SocketServer"
import { SqlClient } from "@effect/sql"
import { ConfigError, Effect, Exit, Layer, Option, Redacted } from "effect"
import { createHmac } from "node:crypto"
import * as Net from "node:net"
import * as Tls from "node:tls"
import type { NodeSettings } from "./ClusterConfig.js"

/** TLS 1.2 (Node's PSK callbacks are not called for 1.3), one PSK cipher with forward secrecy. */
const tlsVersion = {
  ciphers: "ECDHE-PSK-CHACHA20-POLY1305",
  minVersion: "TLSv1.2",
  maxVersion: "TLSv1.2"
} as const

/** What a node calls itself in the handshake: every node the same, the key is what counts. */
const identity = "clawdforge-node"

/** The key both sides use, derived from the secret (a fixed length whatever the secret's). */
const peerKey = (secret: Redacted.Redacted) =>
  createHmac("sha256", Redacted.value(secret)).update("clawdforge cluster peer key").digest()

/** How long a connection may take to prove the secret before it is dropped. */
const handshakeTimeout = "5 seconds"

const openError = (cause: unknown) => new Socket.SocketGenericError({ reason: "Open", cause })

/** Resolves once `socket`'s handshake is done; fails on its first error or close before that. */
const handshake = (socket: Tls.TLSSocket, done: "secure" | "secureConnect") =>
  Effect.async<Tls.TLSSocket, Socket.SocketError>((resume) => {
    let settled = false
    const settle = (outcome: Effect.Effect<Tls.TLSSocket, Socket.SocketError>) => {
      if (settled) return
      settled = true
      resume(outcome)
    }
    socket.once(done, () => settle(Effect.succeed(socket)))
    // Kept for the socket's life: an error between the handshake and the reader's own listener
    // must not be unhandled (the reader sees it through the close that follows).
    socket.on("error", (cause) => settle(Effect.fail(openError(cause))))
    socket.once("close", () => settle(Effect.fail(openError(new Error("closed during the TLS handshake")))))
  })

/**
 * The peer port: the library's TCP socket server, each connection given to the runners' RPC
 * server only after its TLS handshake proved the key; a stranger's bytes fail that handshake.
 */
export const layerPeerServer = (settings: NodeSettings["Type"]) =>
  Layer.scoped(
    SocketServer.SocketServer,
    Effect.gen(function*() {
      const plain = yield* NodeSocketServer.make({ host: settings.host, port: settings.port, noDelay: true })
      const key = peerKey(settings.secret)
      // `pskCallback` is a server's option the TLSSocket constructor takes too (Node's types omit it).
      const serverOptions: Tls.TLSSocketOptions & Pick<Tls.TlsOptions, "pskCallback"> = {
        isServer: true,
        secureContext: Tls.createSecureContext(tlsVersion),
        pskCallback: (_socket, claimed) => claimed === identity ? key : null
      }
      const secured = (conn: Net.Socket) =>
        NodeSocket.fromDuplex(
          Effect.acquireRelease(
            Effect.suspend(() =>
              handshake(
                new Tls.TLSSocket(conn, serverOptions),
                "secure"
              )
            ).pipe(Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => conn.destroy()))),
            (socket) => Effect.sync(() => socket.destroy())
          ),
          { openTimeout: handshakeTimeout }
        )
      return SocketServer.SocketServer.of({
        address: plain.address,
        // The server gives each handler its connection as `NetSocket`; the plain `Socket` it made
        // is never read: the TLS socket reads the connection.
        run: (handler) =>
          plain.run(() =>
            Effect.serviceOption(NodeSocket.NetSocket).pipe(
              Effect.flatMap(Option.match({
                onNone: () => Effect.dieMessage("the peer port's server gave no connection"),
                onSome: secured
              })),
              Effect.flatMap(handler)
            )
          )
      })
    })
  )

/** A client socket to a peer's port, open once the TLS handshake with the key is done. */
export const connectPeer = (
  options: { readonly host: string; readonly port: number; readonly secret: Redacted.Redacted },
  timeouts: { readonly openTimeout: number; readonly timeout?: number }
) => {
  const key = peerKey(options.secret)
  return NodeSocket.fromDuplex(
    Effect.acquireRelease(
      Effect.suspend(() => {
        // The TCP socket made here, so that Nagle's algorithm is off on it.
        const conn = Net.createConnection({
          host: options.host,
          port: options.port,
          noDelay: true,
          ...(timeouts.timeout === undefined ? {} : { timeout: timeouts.timeout })
        })
        const socket = Tls.connect({
          ...tlsVersion,
          socket: conn,
          // No certificate: the key is the peer's identity.
          checkServerIdentity: () => undefined,
          pskCallback: () => ({ psk: key, identity })
        })
        return handshake(socket, "secureConnect").pipe(
          Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => conn.destroy()))
        )
      }),
      (socket) => Effect.sync(() => socket.destroySoon())
    ),
    { openTimeout: timeouts.openTimeout }
  )
}

/** How a handshake with one peer ended: it took the key, refused it, or could not be asked. */
const tryPeer = (address: string, secret: Redacted.Redacted) =>
  Effect.async<"accepted" | "refused" | "unreachable">((resume) => {
    const [host, port] = [address.slice(0, address.lastIndexOf(":")), Number(address.slice(address.lastIndexOf(":") + 1))]
    const key = peerKey(secret)
    const socket = Tls.connect({
      ...tlsVersion,
      host,
      port,
      checkServerIdentity: () => undefined,
      pskCallback: () => ({ psk: key, identity })
    })
    const end = (outcome: "accepted" | "refused" | "unreachable") => {
      socket.destroy()
      resume(Effect.succeed(outcome))
    }
    socket.once("secureConnect", () => end("accepted"))
    // A TLS alert is the peer's answer; anything else (refused, reset, timed out) is no answer.
    socket.on("error", (error: NodeJS.ErrnoException) => end(error.code?.startsWith("ERR_SSL") ? "refused" : "unreachable"))
    socket.once("close", () => end("unreachable"))
    return Effect.sync(() => socket.destroy())
  }).pipe(Effect.timeoutTo({ duration: "3 seconds", onTimeout: () => "unreachable" as const, onSuccess: (o) => o }))

/**
 * A node given another secret than the cluster's stops at start-up, before it registers as a
 * runner, rather than take shards no peer can reach: it asks the nodes whose heartbeats are
 * recent (`ClusterNodes`' table) for a handshake, and when some refuse it and none accepts,
 * fails naming `CLAWDFORGE_CLUSTER_SECRET`. (Nodes started together on an empty database see no
 * one; a stranger that registered all the same fails the others' pings and is given no shards.)
 */
export const proveSecretToPeers = (settings: NodeSettings["Type"], staleAfterMs: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const self = `${settings.host}:${settings.port}`
    const rows = yield* sql<{ node: string }>`SELECT node FROM clawdforge_cluster_nodes
      WHERE seen_ms > ${Date.now() - staleAfterMs} AND node <> ${self}`.pipe(Effect.orDie)
    if (rows.length === 0) return
    const outcomes = yield* Effect.forEach(rows, (row) => tryPeer(row.node, settings.secret), { concurrency: "unbounded" })
    if (outcomes.includes("refused") && !outcomes.includes("accepted")) {
      const refusing = rows.filter((_, i) => outcomes[i] === "refused").map((row) => row.node).join(", ")
      return yield* Effect.fail(ConfigError.InvalidData(
        ["CLAWDFORGE_CLUSTER_SECRET"],
        `the cluster's nodes (${refusing}) refuse this node's secret: every node must be given the same one`
      ))
    }
  })
