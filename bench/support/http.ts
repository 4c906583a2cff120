/** The bench's HTTP client: keep-alive JSON calls, and a light reader for streamed turns (SSE). */
import http from "node:http"

export const keepAlive = new http.Agent({ keepAlive: true, maxSockets: Infinity })

export interface Reply {
  readonly status: number
  readonly body: any
}

const headersFor = (bearer: string, payload: string | undefined) => {
  const headers: Record<string, string | number> = { authorization: `Bearer ${bearer}` }
  if (payload !== undefined) {
    headers["content-type"] = "application/json"
    headers["content-length"] = Buffer.byteLength(payload)
  }
  return headers
}

const jsonOnce = (port: number, method: string, path: string, body: unknown, bearer: string) =>
  new Promise<Reply>((done, fail) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const headers = headersFor(bearer, payload)
    const req = http.request({ host: "127.0.0.1", port, method, path, agent: keepAlive, headers }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (chunk: Buffer) => chunks.push(chunk))
      res.on("error", fail)
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8")
        try {
          done({ status: res.statusCode ?? 0, body: text.length > 0 ? JSON.parse(text) : undefined })
        } catch (error) {
          fail(error)
        }
      })
    })
    req.on("error", (error) => fail(Object.assign(error, { reusedSocket: req.reusedSocket })))
    req.end(payload)
  })

/**
 * One JSON request. A kept-alive socket the server closed while idle fails at once when reused
 * (ECONNRESET, nothing sent): such a request is sent again on a fresh socket, as Node's docs advise.
 */
export const callJson = (port: number, method: string, path: string, body: unknown, bearer: string): Promise<Reply> =>
  jsonOnce(port, method, path, body, bearer).catch((error) => {
    if (error?.reusedSocket === true && error?.code === "ECONNRESET") return jsonOnce(port, method, path, body, bearer)
    throw error
  })

/** GET /healthz on a fresh connection: true on 200, false when nothing listens yet. */
export const isHealthy = (port: number) =>
  new Promise<boolean>((done) => {
    const req = http.request({ host: "127.0.0.1", port, path: "/healthz", agent: false }, (res) => {
      res.resume()
      res.on("end", () => done(res.statusCode === 200))
      res.on("error", () => done(false))
    })
    req.on("error", () => done(false))
    req.end()
  })

export const expectOk = (reply: Reply, what: string) => {
  if (reply.status !== 200) throw new Error(`${what}: HTTP ${reply.status} ${JSON.stringify(reply.body)}`)
  return reply.body
}

export interface StreamedTurn {
  /** `event: acp` events received. */
  readonly acpEvents: number
  /** The data of the final `event: done`. */
  readonly done: any
}

/**
 * A streamed turn (text/event-stream), read to its end: counts `acp` events and keeps `done`'s
 * data; an `error` event fails it. Only the event names are looked at, to keep the client cheap.
 */
export const streamSse = (port: number, path: string, body: unknown, bearer: string) =>
  new Promise<StreamedTurn>((done, fail) => {
    const payload = JSON.stringify(body)
    const headers = headersFor(bearer, payload)
    const req = http.request({ host: "127.0.0.1", port, method: "POST", path, agent: keepAlive, headers }, (res) => {
      if (res.statusCode !== 200) {
        res.resume()
        return fail(new Error(`${path}: HTTP ${res.statusCode}`))
      }
      res.setEncoding("utf8")
      let rest = ""
      let acpEvents = 0
      let last: { event: string; data: string } | undefined
      res.on("data", (text: string) => {
        const blocks = (rest + text).split("\n\n")
        rest = blocks.pop()!
        for (const block of blocks) {
          const event = /^event: (\S+)$/m.exec(block)?.[1]
          if (event === "acp") acpEvents++
          else if (event !== undefined) last = { event, data: /^data: (.*)$/m.exec(block)?.[1] ?? "" }
        }
      })
      res.on("error", fail)
      res.on("end", () => {
        if (last?.event !== "done") return fail(new Error(`${path}: stream ended with ${JSON.stringify(last)}`))
        done({ acpEvents, done: JSON.parse(last.data) })
      })
    })
    req.on("error", fail)
    req.end(payload)
  })
