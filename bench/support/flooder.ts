/**
 * App b's flood for `bench/flood.ts`, in a process of its own so that its reading does not share
 * the measuring client's event loop. Run as `node --import tsx bench/support/flooder.ts` with an
 * IPC channel and FLOOD_PORT, FLOOD_TOKEN (app b's), FLOOD_BIG (a session of b's whose turn 1 is
 * big) and FLOOD_HUNG (how many sessions to hang). It:
 *
 * - opens FLOOD_HUNG sessions, each with a hung turn (`hang`), and queues turns with 100 KB prompts
 *   behind each until the gateway refuses them (429 `queue_full`, its default limit), then keeps
 *   sending them one at a time per session (each refused);
 * - reads `GET /sessions/{FLOOD_BIG}/turns/1/stream` ten times in parallel, each to its end, again
 *   and again.
 *
 * It sends `{ready}` once every queue is full and the readers run; on `stop` it stops, closes its
 * sessions (which cancels the hung and queued turns), sends its counts and exits.
 */
import http from "node:http"
import { callJson, keepAlive } from "./http.js"

const port = Number(process.env.FLOOD_PORT)
const token = process.env.FLOOD_TOKEN!
const big = process.env.FLOOD_BIG!
const hung = Number(process.env.FLOOD_HUNG ?? "4")
const readers = 10
const prompt = "x".repeat(100 * 1024)

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity })
const counts = { accepted: 0, refused: 0, other: 0, failed: 0, streams: 0, streamBytes: 0 }
let stopping = false

const call = (method: string, path: string, body?: unknown) => callJson(port, method, path, body, token)

/** One read of the big turn's stream, to its end: its bytes. */
const readBig = () =>
  new Promise<number>((done, fail) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        path: `/sessions/${big}/turns/1/stream`,
        agent,
        headers: { authorization: `Bearer ${token}` }
      },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume()
          return fail(new Error(`stream: HTTP ${res.statusCode}`))
        }
        let bytes = 0
        res.on("data", (chunk: Buffer) => bytes += chunk.length)
        res.on("error", fail)
        res.on("end", () => done(bytes))
      }
    )
    req.on("error", fail)
    req.end()
  })

const queueTurn = async (id: string) => {
  // A refusal may come before the gateway has read the whole prompt, and the connection close
  // under it: counted, and sent again.
  const reply = await call("POST", `/sessions/${id}/turns`, { prompt }).catch(() => undefined)
  if (reply === undefined) {
    counts.failed++
    return 0
  }
  if (reply.status === 202) counts.accepted++
  else if (reply.status === 429) counts.refused++
  else counts.other++
  return reply.status
}

const main = async () => {
  const sessions: Array<string> = []
  for (let i = 0; i < hung; i++) {
    const created = await call("POST", "/sessions", { agent: "echo" })
    if (created.status !== 200) throw new Error(`create: HTTP ${created.status} ${JSON.stringify(created.body)}`)
    sessions.push(created.body.session_id)
    if ((await call("POST", `/sessions/${created.body.session_id}/turns`, { prompt: "hang" })).status !== 202) {
      throw new Error("the hung turn was not accepted")
    }
  }
  // Each queue filled to its limit.
  await Promise.all(sessions.map(async (id) => {
    for (let status = 0; status !== 429;) status = await queueTurn(id)
  }))
  const loops = [
    ...sessions.map(async (id) => {
      while (!stopping) await queueTurn(id)
    }),
    ...Array.from({ length: readers }, async () => {
      while (!stopping) {
        const bytes = await readBig().catch((error) => {
          console.error(`[flooder] a read of the big turn failed: ${error}`)
          return undefined
        })
        if (bytes === undefined) counts.failed++
        else {
          counts.streamBytes += bytes
          counts.streams++
        }
      }
    })
  ]
  process.send!({ ready: true, queued: counts.accepted })
  await new Promise<void>((resume) => process.once("message", () => resume()))
  stopping = true
  await Promise.all(loops)
  for (const id of sessions) await call("DELETE", `/sessions/${id}`)
  process.send!({ counts })
  agent.destroy()
  keepAlive.destroy()
  process.disconnect()
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
