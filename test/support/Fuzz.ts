/**
 * Seeded generation and raw HTTP for the generated bad-input suite: a small PRNG (no
 * dependency, so a seed reproduces the same requests anywhere) and a client on `node:http`
 * that sends exactly the bytes it is given and says when no response came back.
 */
import { Agent, request as httpRequest } from "node:http"
import { connect } from "node:net"

/** mulberry32: a tiny, well-mixed 32-bit PRNG. */
export class Gen {
  private state: number
  constructor(readonly seed: number) {
    this.state = seed >>> 0
  }
  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6D2B79F5) >>> 0
    let t = this.state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1))
  }
  bool(p = 0.5): boolean {
    return this.next() < p
  }
  pick<A>(items: ReadonlyArray<A>): A {
    return items[Math.floor(this.next() * items.length)]!
  }
  /** `length` characters drawn from `alphabet`. */
  chars(alphabet: string, length: number): string {
    let out = ""
    for (let i = 0; i < length; i++) out += alphabet[Math.floor(this.next() * alphabet.length)]
    return out
  }
  /** Random code points: controls, ASCII, Latin-1, BMP (lone surrogates included), astral. */
  unicode(length: number): string {
    let out = ""
    for (let i = 0; i < length; i++) {
      const range = this.int(0, 5)
      const cp = range === 0
        ? this.int(0, 0x1f)
        : range === 1
        ? this.int(0x20, 0x7e)
        : range === 2
        ? this.int(0x80, 0xff)
        : range === 3
        ? this.int(0x100, 0xffff)
        : range === 4
        ? this.int(0xd800, 0xdfff)
        : this.int(0x10000, 0x10ffff)
      out += cp >= 0xd800 && cp <= 0xdfff ? String.fromCharCode(cp) : String.fromCodePoint(cp)
    }
    return out
  }
}

/**
 * Percent-encodes every byte of the UTF-8 form of `s` but the unreserved ones. Unlike
 * `encodeURIComponent` it takes lone surrogates too (as U+FFFD, the way UTF-8 encoders do).
 */
export const encodeSegment = (s: string) =>
  [...Buffer.from(s, "utf8")].map((b) =>
    /[A-Za-z0-9\-._~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`
  ).join("")

/** FNV-1a of `text`, mixed with `seed`: one stable seed per test name. */
export const seedFor = (seed: number, text: string) => {
  let h = (0x811c9dc5 ^ seed) >>> 0
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0
  return h
}

export interface RawRequest {
  /** What is being tried, for the failure report. */
  readonly kind: string
  readonly method: string
  /** The request target exactly as sent (already percent-encoded where needed). */
  readonly path: string
  readonly headers: Record<string, string | Array<string>>
  readonly body?: string | Buffer | undefined
  /** Send the body with `Transfer-Encoding: chunked` (no Content-Length). */
  readonly chunked?: boolean | undefined
  /** The status required; any 4xx when absent. */
  readonly status?: number | undefined
}

export type RawOutcome =
  | { readonly _tag: "response"; readonly status: number; readonly contentType: string; readonly text: string }
  | { readonly _tag: "dropped"; readonly error: string }

const sendOnce = (port: number, agent: Agent | false, r: RawRequest) =>
  new Promise<{ outcome: RawOutcome; reused: boolean }>((done) => {
    let settled = false
    const finish = (outcome: RawOutcome) => {
      if (settled) return
      settled = true
      done({ outcome, reused: req.reusedSocket })
    }
    const big = r.body !== undefined && r.body.length > 64 * 1024
    // Framing is explicit: chunked when asked, else a Content-Length (Node would otherwise send
    // a GET's body unframed, or a body written in slices as chunked).
    const framing = r.chunked
      ? { "transfer-encoding": "chunked" }
      : r.body === undefined
      ? {}
      : { "content-length": String(Buffer.byteLength(r.body)) }
    const headers = { ...r.headers, ...framing }
    const req = httpRequest({ host: "127.0.0.1", port, method: r.method, path: r.path, headers, agent }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (chunk: Buffer) => chunks.push(chunk))
      res.on("end", () =>
        finish({
          _tag: "response",
          status: res.statusCode ?? 0,
          contentType: String(res.headers["content-type"] ?? ""),
          text: Buffer.concat(chunks).toString("utf8")
        }))
      res.on("error", (error) => finish({ _tag: "dropped", error: `while reading the response: ${error.message}` }))
    })
    req.setTimeout(20_000, () => req.destroy(new Error("no response within 20 s")))
    req.on("error", (error) => finish({ _tag: "dropped", error: error.message }))
    if (r.body === undefined) req.end()
    else if (r.chunked || big) {
      // Large bodies go out in slices, as a client streaming them would send them.
      const body = typeof r.body === "string" ? Buffer.from(r.body) : r.body
      let offset = 0
      const pump = () => {
        while (offset < body.length) {
          const slice = body.subarray(offset, offset + 64 * 1024)
          offset += slice.length
          if (!req.write(slice)) return void req.once("drain", pump)
        }
        req.end()
      }
      pump()
    } else req.end(r.body)
  })

/**
 * Sends one request and waits for the whole response. A keep-alive socket the server closed
 * while idle is a client-side race, not a dropped request: that one case is retried once on
 * a fresh connection, as Node's documentation advises.
 */
export const sendRaw = async (port: number, agent: Agent, r: RawRequest): Promise<RawOutcome> => {
  const big = r.chunked || (r.body !== undefined && r.body.length > 64 * 1024)
  // Big bodies get a connection of their own: the server may answer before reading them.
  const first = await sendOnce(port, big ? false : agent, r)
  if (first.outcome._tag === "dropped" && first.reused) return (await sendOnce(port, false, r)).outcome
  return first.outcome
}

/** Runs every request with at most `concurrency` in flight; outcomes in request order. */
export const sendAll = async (port: number, requests: ReadonlyArray<RawRequest>, concurrency = 16) => {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency })
  const outcomes: Array<RawOutcome> = new Array(requests.length)
  let next = 0
  const worker = async () => {
    while (next < requests.length) {
      const i = next++
      outcomes[i] = await sendRaw(port, agent, requests[i]!)
    }
  }
  try {
    await Promise.all(Array.from({ length: concurrency }, worker))
  } finally {
    agent.destroy()
  }
  return outcomes
}

/** Writes `bytes` on a fresh socket and collects everything the server sends until it closes. */
export const sendBytes = (port: number, bytes: Buffer, timeoutMs = 5_000) =>
  new Promise<{ readonly text: string; readonly error?: string }>((done) => {
    const socket = connect(port, "127.0.0.1")
    const chunks: Array<Buffer> = []
    let error: string | undefined
    const timer = setTimeout(() => {
      error = `no close within ${timeoutMs} ms`
      socket.destroy()
    }, timeoutMs)
    socket.on("data", (chunk) => chunks.push(chunk))
    socket.on("error", (e) => error = e.message)
    socket.on("close", () => {
      clearTimeout(timer)
      const text = Buffer.concat(chunks).toString("latin1")
      done(error === undefined ? { text } : { text, error })
    })
    socket.write(bytes)
  })

/** Why an answer is not the `{ok:false, error, message}` 4xx bad input must get; undefined when it is. */
export const badInputProblem = (r: RawRequest, o: RawOutcome): string | undefined => {
  if (o._tag === "dropped") return `no response (connection dropped: ${o.error})`
  const statusOk = r.status === undefined ? o.status >= 400 && o.status < 500 : o.status === r.status
  const preview = o.text.slice(0, 160).replace(/\s+/g, " ")
  if (!statusOk) return `status ${o.status}${r.status === undefined ? "" : ` (want ${r.status})`}: ${preview}`
  if (!o.contentType.includes("application/json")) return `content-type "${o.contentType}": ${preview}`
  let body: any
  try {
    body = JSON.parse(o.text)
  } catch {
    return `body is not JSON: ${preview}`
  }
  if (body === null || body.ok !== false || typeof body.error !== "string" || typeof body.message !== "string") {
    return `body is not {ok:false, error, message}: ${preview}`
  }
  return undefined
}

const show = (value: unknown, max: number) => {
  const text = typeof value === "string" ? value : Buffer.isBuffer(value) ? value.toString("latin1") : String(value)
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}…(${text.length} chars)` : text)
}

/** One line that says which request it was, enough to find it again from the seed. */
export const describeRequest = (r: RawRequest, index: number) => {
  const auth = r.headers["authorization"]
  return `#${index} [${r.kind}] ${r.method} ${show(r.path, 90)}` +
    ` auth=${auth === undefined ? "none" : show(Array.isArray(auth) ? auth.join(" | ") : auth, 40)}` +
    ` type=${show(r.headers["content-type"] ?? "none", 40)}${r.chunked ? " chunked" : ""}` +
    (r.body === undefined ? "" : ` body=${show(r.body, 120)}`)
}
