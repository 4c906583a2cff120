/**
 * Issue 8: a body over CLAWDFORGE_MAX_BODY_BYTES (1 MiB by default) is a 413
 * `{ok:false, error:"payload_too_large", message}` the client can read, however large it is and
 * however it is sent (chunked or with a Content-Length, by `http.request` or `fetch`), never a
 * dropped connection (ECONNRESET, EPIPE); the gateway stays healthy.
 *
 * The server is the production one (`HttpLive`: `NodeServerLive` and the API) on loopback, over a
 * fake agent pool. The `http.request` and `fetch` uploads run in a child process: a client on the
 * server's own event loop never races the server's close the way a real one does.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, LogLevel, ManagedRuntime } from "effect"
import { execFile } from "node:child_process"
import { connect } from "node:net"
import { HttpLive } from "../src/http/Server.js"
import { layerServices } from "../src/Gateway.js"
import { ClaudeRunner } from "../src/services/agents/ClaudeRunner.js"
import { makeFakePool } from "./support/FakePool.js"
import { freePort } from "./support/freePort.js"
import { appToken, testConfig } from "./support/TestGateway.js"

const MiB = 1024 * 1024
const big = 20 * MiB

type Client = "http" | "fetch"
type Framing = "chunked" | "length"

interface Upload {
  readonly client: Client
  readonly path: string
  readonly size: number
  readonly framing: Framing
}

type Outcome =
  | { readonly status: number; readonly connection: string | null; readonly text: string }
  | { readonly error: string }

/**
 * The client process: POSTs each upload (`x` repeated, written 64 KiB at a time as the socket
 * takes it; a stream for `fetch`), all at once or one by one, and prints what each got as JSON.
 */
const clientScript = `
import { request } from "node:http"
const { port, token, uploads, oneByOne } = JSON.parse(process.argv[1])
const piece = Buffer.alloc(64 * 1024, "x")
const headersFor = (u) => ({
  authorization: "Bearer " + token,
  "content-type": "application/json",
  ...(u.framing === "length" ? { "content-length": String(u.size) } : {})
})
const viaHttp = (u) => new Promise((done) => {
  const req = request({ host: "127.0.0.1", port, method: "POST", path: u.path, headers: headersFor(u) }, (res) => {
    const chunks = []
    res.on("data", (c) => chunks.push(c))
    res.on("error", (e) => done({ error: "response: " + (e.code ?? e.message) }))
    res.on("end", () => done({
      status: res.statusCode,
      connection: res.headers.connection ?? null,
      text: Buffer.concat(chunks).toString("utf8")
    }))
  })
  req.on("error", (e) => done({ error: "request: " + (e.code ?? e.message) }))
  let sent = 0
  const write = () => {
    while (sent < u.size && !req.destroyed) {
      const n = Math.min(piece.length, u.size - sent)
      sent += n
      if (!req.write(piece.subarray(0, n))) return void req.once("drain", write)
    }
    if (!req.destroyed) req.end()
  }
  write()
})
const viaFetch = async (u) => {
  let sent = 0
  const body = new ReadableStream({
    pull(controller) {
      if (sent >= u.size) return controller.close()
      const n = Math.min(piece.length, u.size - sent)
      sent += n
      controller.enqueue(piece.subarray(0, n))
    }
  })
  try {
    const res = await fetch("http://127.0.0.1:" + port + u.path, { method: "POST", headers: headersFor(u), body, duplex: "half" })
    return { status: res.status, connection: res.headers.get("connection"), text: await res.text() }
  } catch (e) {
    return { error: "fetch: " + (e.cause?.code ?? e.cause?.message ?? e.message) }
  }
}
const send = (u) => u.client === "http" ? viaHttp(u) : viaFetch(u)
const outcomes = []
if (oneByOne) for (const u of uploads) outcomes.push(await send(u))
else outcomes.push(...await Promise.all(uploads.map(send)))
process.stdout.write(JSON.stringify(outcomes))
`

let runtime: ManagedRuntime.ManagedRuntime<unknown, unknown> | undefined
let port = 0
let sessionId = ""

/** Runs the uploads from a client process, all at once or one after the other. */
const upload = (uploads: ReadonlyArray<Upload>, oneByOne = false) =>
  new Promise<Array<Outcome>>((done, fail) => {
    execFile(
      process.execPath,
      ["--input-type=module", "--eval", clientScript, JSON.stringify({ port, token: appToken, uploads, oneByOne })],
      { timeout: 30_000, maxBuffer: 16 * MiB },
      (error, stdout, stderr) => {
        if (error) return fail(new Error(`client process: ${error.message}\n${stderr}`))
        done(JSON.parse(stdout))
      }
    )
  })

const paths = () => [`/sessions/${sessionId}/turn`, "/sessions"]

const everyWay = (size: number): Array<Upload> =>
  paths().flatMap((path) =>
    (["http", "fetch"] as const).flatMap((client) =>
      (["chunked", "length"] as const).map((framing) => ({ client, path, size, framing }))
    )
  )

/** Every upload got the 413 and its JSON body, and was told the connection closes. */
const expectAllTooLarge = (uploads: ReadonlyArray<Upload>, outcomes: ReadonlyArray<Outcome>) => {
  const wrong = outcomes.flatMap((outcome, i) => {
    const u = uploads[i]!
    const name = `${u.client} ${u.framing} ${u.size} bytes to ${u.path}`
    if ("error" in outcome) return [`${name}: ${outcome.error}`]
    let body: any
    try {
      body = JSON.parse(outcome.text)
    } catch {
      return [`${name}: ${outcome.status}, not JSON: ${outcome.text.slice(0, 200)}`]
    }
    if (outcome.status !== 413 || body?.ok !== false || body?.error !== "payload_too_large") {
      return [`${name}: ${outcome.status} ${outcome.text.slice(0, 200)}`]
    }
    if (typeof body.message !== "string" || !body.message.includes(`${MiB} bytes`)) {
      return [`${name}: message ${JSON.stringify(body.message)}`]
    }
    if (u.client === "http" && outcome.connection !== "close") return [`${name}: connection ${outcome.connection}`]
    return []
  })
  expect(wrong).toEqual([])
}

const json = async (path: string, init: RequestInit = {}) => {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${appToken}`, "content-type": "application/json", ...init.headers }
  })
  return { status: response.status, body: await response.json() as any }
}

const expectHealthy = async () => expect(await json("/healthz")).toEqual({ status: 200, body: { ok: true } })

/**
 * A raw client on loopback: sends the head, then `bodyBytes` of `x` as fast as the socket takes
 * them whatever the server answers, then `tail` and its FIN; collects what the server sends
 * until the connection closes.
 */
const rawUpload = (head: string, bodyBytes: number, tail: string, timeoutMs: number) =>
  new Promise<{ readonly text: string; readonly sent: number; readonly error?: string }>((done) => {
    const socket = connect({ port, host: "127.0.0.1", allowHalfOpen: true })
    const chunks: Array<Buffer> = []
    let sent = 0
    let error: string | undefined
    const finish = () => {
      clearTimeout(timer)
      done({ text: Buffer.concat(chunks).toString("utf8"), sent, ...(error === undefined ? {} : { error }) })
    }
    const timer = setTimeout(() => {
      error = `still open after ${timeoutMs} ms`
      socket.destroy()
    }, timeoutMs)
    socket.on("data", (chunk: Buffer) => chunks.push(chunk))
    socket.on("error", (e: NodeJS.ErrnoException) => error ??= e.code ?? e.message)
    socket.on("close", finish)
    socket.write(head)
    const block = Buffer.alloc(MiB, "x")
    const write = () => {
      while (!socket.destroyed && sent < bodyBytes) {
        const n = Math.min(block.length, bodyBytes - sent)
        sent += n
        if (!socket.write(block.subarray(0, n))) return void socket.once("drain", write)
      }
      if (!socket.destroyed) socket.end(tail)
    }
    write()
  })

beforeAll(async () => {
  port = await freePort()
  runtime = ManagedRuntime.make(
    HttpLive.pipe(
      Layer.provideMerge(layerServices(makeFakePool().layer, ClaudeRunner.Default)),
      Layer.provide(Layer.setConfigProvider(testConfig({ CLAWDFORGE_PORT: String(port) }))),
      Layer.provide(Logger.minimumLogLevel(LogLevel.Error))
    )
  ) as ManagedRuntime.ManagedRuntime<unknown, unknown>
  await runtime.runPromise(Effect.void)
  const created = await json("/sessions", { method: "POST", body: JSON.stringify({ agent: "claude" }) })
  expect(created.status, JSON.stringify(created.body)).toBe(200)
  sessionId = created.body.session_id
})

afterAll(async () => {
  await runtime?.dispose()
})

describe("bodies over the limit (issue 8)", () => {
  it("20 MB bodies, chunked or with a Content-Length, by http.request or fetch, to a turn or POST /sessions: a 413 the client reads", async () => {
    // Three times over, one upload at a time: the close after a 413 must never beat the client's read.
    const uploads = [...everyWay(big), ...everyWay(big), ...everyWay(big)]
    expectAllTooLarge(uploads, await upload(uploads, true))
    await expectHealthy()
  })

  it("20 MB uploads all at once each get their 413", async () => {
    const uploads = everyWay(big)
    expectAllTooLarge(uploads, await upload(uploads))
    await expectHealthy()
  })

  it("a 2 MB body is still a 413, chunked or with a Content-Length, by either client", async () => {
    const uploads = everyWay(2 * MiB)
    expectAllTooLarge(uploads, await upload(uploads))
    await expectHealthy()
  })

  it("a client that writes its whole 20 MB body before it reads gets the 413 and a clean close", async () => {
    for (const framing of ["length", "chunked"] as const) {
      const head = `POST /sessions/${sessionId}/turn HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${appToken}\r\n` +
        (framing === "length" ? `content-length: ${big}\r\n\r\n` : "transfer-encoding: chunked\r\n\r\n")
      // Chunked: the whole body as one chunk, then the last chunk.
      const outcome = framing === "length"
        ? await rawUpload(head, big, "", 10_000)
        : await rawUpload(`${head}${big.toString(16)}\r\n`, big, "\r\n0\r\n\r\n", 10_000)
      // The server read (and threw away) the whole body rather than resetting the connection.
      expect(outcome.error).toBeUndefined()
      expect(outcome.sent).toBe(big)
      expect(outcome.text).toMatch(/^HTTP\/1\.1 413 /)
      expect(outcome.text.toLowerCase()).toContain("connection: close")
      expect(outcome.text).toContain("\"error\":\"payload_too_large\"")
    }
    await expectHealthy()
  })

  it("a client that keeps sending after the 413 reads it, and is cut off past a bound", async () => {
    // Announces 1 GiB and writes it as fast as it can, ignoring the answer and the server's FIN.
    const head = `POST /sessions HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${appToken}\r\n` +
      `content-length: ${1024 * MiB}\r\n\r\n`
    const outcome = await rawUpload(head, 1024 * MiB, "", 10_000)
    expect(outcome.text).toMatch(/^HTTP\/1\.1 413 /)
    expect(outcome.text).toContain("\"error\":\"payload_too_large\"")
    // Cut off once the server has thrown away its bound (64 MiB), long before the 1 GiB.
    expect(outcome.error).not.toMatch(/still open/)
    expect(outcome.sent).toBeLessThan(256 * MiB)
    await expectHealthy()
  })

  it("small valid bodies still work, with a Content-Length or chunked", async () => {
    const created = await json("/sessions", { method: "POST", body: JSON.stringify({ agent: "claude" }) })
    expect(created.status, JSON.stringify(created.body)).toBe(200)
    expect(created.body.session_id).toEqual(expect.any(String))
    const withLength = await json(`/sessions/${sessionId}/turn`, {
      method: "POST",
      body: JSON.stringify({ prompt: "hello" })
    })
    expect(withLength.status, JSON.stringify(withLength.body)).toBe(200)
    expect(withLength.body.turn_index).toBe(1)
    const chunked = await json(`/sessions/${sessionId}/turn`, {
      method: "POST",
      body: new Blob([JSON.stringify({ prompt: "hello again" })]).stream(),
      duplex: "half"
    } as RequestInit)
    expect(chunked.status, JSON.stringify(chunked.body)).toBe(200)
    expect(chunked.body.turn_index).toBe(2)
    await expectHealthy()
  })
})
