/**
 * What does storing every turn cost (issue 11)? Measured in the same run, two ways:
 *
 * - Writing: the project's own Ledger service in this process, on a fresh SQLite file (WAL, as the
 *   gateway opens it: `layerSqlite`), stores turns as the gateway does, one `acceptTurn` (INSERT,
 *   `queued`) and one `endTurn` (UPDATE with the turn's messages as one JSON column) per turn,
 *   with the real messages of a small turn and of a 20,000-chunk turn that the gateway stored.
 *   Each message's text is made beforehand (the gateway serializes each once as it arrives, a cost
 *   the stream rows already hold); joining them is timed, as the gateway joins them at the end.
 * - Reading: `GET /sessions/{id}/turns/{n}` and `GET /sessions/{id}/turns?limit=100` over HTTP
 *   against the running gateway, on turns it ran and stored itself. The response body is read to
 *   its end but not parsed, so the figure is the gateway's, not the client's JSON.parse.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Logger, LogLevel, ManagedRuntime, Option } from "effect"
import http from "node:http"
import { join } from "node:path"
import type { AcpMessage } from "../src/domain/Session.js"
import type { SessionId } from "../src/domain/Ids.js"
import { layerSqlite } from "../src/services/ledger/Database.js"
import { Ledger } from "../src/services/ledger/Ledger.js"
import { type Bench, ms, type Question } from "./support/bench.js"
import { closeSession, createSession, type Gateway, streamTurn, token, turn } from "./support/gateways.js"
import { expectOk, keepAlive } from "./support/http.js"
import { sleep, work } from "./support/processes.js"
import { now, summary } from "./support/stats.js"
import { timeSequential } from "./support/timing.js"

/** A GET read to its end without parsing: status and bytes. */
const getRaw = (port: number, path: string) =>
  new Promise<{ status: number; bytes: number }>((done, fail) => {
    const req = http.request(
      { host: "127.0.0.1", port, method: "GET", path, agent: keepAlive, headers: { authorization: `Bearer ${token}` } },
      (res) => {
        let bytes = 0
        res.on("data", (chunk: Buffer) => bytes += chunk.length)
        res.on("error", fail)
        res.on("end", () => done({ status: res.statusCode ?? 0, bytes }))
      }
    )
    req.on("error", fail)
    req.end()
  })

const readOk = async (gateway: Gateway, path: string) => {
  const reply = await getRaw(gateway.port, path)
  if (reply.status !== 200) throw new Error(`GET ${path}: HTTP ${reply.status}`)
  return reply.bytes
}

/** The stored turn once its end is written (the reply or the stream's `done` may come first). */
const storedTurn = async (gateway: Gateway, id: string, n: number) => {
  const deadline = Date.now() + 10_000
  for (;;) {
    const body = expectOk(await gateway.call("GET", `/sessions/${id}/turns/${n}?events_limit=10000`), `get turn ${n}`)
    if (body.status === "completed") {
      // Its messages come a page at a time (events_after / next_events_after).
      const events: Array<AcpMessage> = [...body.events]
      for (let after = body.next_events_after; after !== null && after !== undefined;) {
        const page = expectOk(
          await gateway.call("GET", `/sessions/${id}/turns/${n}?events_limit=10000&events_after=${after}`),
          `get turn ${n} after ${after}`
        )
        events.push(...page.events)
        after = page.next_events_after
      }
      return { events }
    }
    if (Date.now() > deadline) throw new Error(`turn ${n} still ${body.status}`)
    await sleep(20)
  }
}

/** The Ledger service (and its SQL client) on a fresh SQLite file, migrated as the gateway migrates it. */
const ledgerOn = (file: string) =>
  ManagedRuntime.make(
    Ledger.DefaultWithoutDependencies.pipe(
      Layer.provideMerge(layerSqlite(file)),
      Layer.provide(Logger.minimumLogLevel(LogLevel.None))
    )
  )

/**
 * `warmup + count` turns stored on one session, accept and end timed apart (µs), the warm-up
 * ones dropped; with the bytes one turn's messages take.
 */
const storeTurns = (id: SessionId, messages: ReadonlyArray<AcpMessage>, warmup: number, count: number) =>
  Effect.gen(function*() {
    const ledger = yield* Ledger
    const texts = messages.map((m) => JSON.stringify(m))
    const accept: Array<number> = []
    const end: Array<number> = []
    const total: Array<number> = []
    let bytes = 0
    for (let i = 0; i < warmup + count; i++) {
      const at = Math.floor(Date.now() / 1000)
      const t0 = now()
      const index = yield* ledger.acceptTurn(id, { prompt: "bench", files: [], at })
      const t1 = now()
      const eventsJson = `[${texts.join(",")}]`
      yield* ledger.endTurn(id, Option.getOrThrow(index), {
        status: "completed",
        usage: { input_tokens: 12, output_tokens: 34, total_tokens: 46, cost_usd: 0.0012 },
        startedAt: at,
        endedAt: at,
        durationMs: 1,
        stopReason: "end_turn",
        error: null,
        eventTexts: texts,
        truncated: false
      })
      const t2 = now()
      bytes = eventsJson.length
      if (i >= warmup) {
        accept.push((t1 - t0) * 1000)
        end.push((t2 - t1) * 1000)
        total.push((t2 - t0) * 1000)
      }
    }
    return { messages: messages.length, bytes, accept: summary(accept), end: summary(end), total: summary(total) }
  })

const us = (x: number) => x.toFixed(0)
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`

export const storage: Question = {
  name: "storage",
  run: async (bench: Bench) => {
    const { sizes } = bench
    const gateway = await bench.gateway()

    // Turns the gateway runs and stores: small ones, then one of 20,000 chunks.
    const id = await createSession(gateway)
    let list: Awaited<ReturnType<typeof timeSequential>>
    let readSmall: Awaited<ReturnType<typeof timeSequential>>
    let readLarge: Awaited<ReturnType<typeof timeSequential>>
    let small: ReadonlyArray<AcpMessage>
    let large: ReadonlyArray<AcpMessage>
    let bytes: { small: number; large: number; list: number }
    const chunks = sizes.streamChunks
    try {
      for (let i = 0; i < sizes.storageHttpTurns; i++) await turn(gateway, id)
      const largeIndex = sizes.storageHttpTurns + 1
      const { done } = await streamTurn(gateway, id, `chunks ${chunks}`)
      if (done.stop_reason !== "end_turn") throw new Error(`stream: ${JSON.stringify(done)}`)
      small = (await storedTurn(gateway, id, 1)).events
      large = (await storedTurn(gateway, id, largeIndex)).events
      if (large.length < chunks) throw new Error(`the ${chunks}-chunk turn stored ${large.length} messages`)

      const smallPath = `/sessions/${id}/turns/${Math.ceil(sizes.storageHttpTurns / 2)}`
      // One page of the largest size a reader may ask for (stored turns are read a page at a time).
      const largePath = `/sessions/${id}/turns/${largeIndex}?events_limit=10000`
      const listPath = `/sessions/${id}/turns?after=0&limit=100`
      bytes = { small: await readOk(gateway, smallPath), large: await readOk(gateway, largePath), list: await readOk(gateway, listPath) }
      readSmall = await timeSequential(() => readOk(gateway, smallPath), sizes.storageReadWarmup, sizes.storageReads)
      list = await timeSequential(() => readOk(gateway, listPath), sizes.storageReadWarmup, sizes.storageReads)
      readLarge = await timeSequential(() => readOk(gateway, largePath), sizes.storageLargeWarmup, sizes.storageLargeReads)
    } finally {
      await closeSession(gateway, id)
    }

    // The same messages stored in this process, on a fresh ledger file.
    const runtime = ledgerOn(join(work, "storage", "ledger.db"))
    const writes = await runtime.runPromise(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const [mode] = yield* sql<{ journal_mode: string }>`PRAGMA journal_mode`
      const session = (sid: string) =>
        sql`INSERT INTO sessions ${
          sql.insert({
            session_id: sid,
            app_name: "bench",
            agent: "echo",
            meta: "{}",
            cwd: join(work, "storage", sid),
            permission_mode: "approve-reads",
            created_at: Math.floor(Date.now() / 1000),
            turn_count: 0
          })
        }`
      const smallId = "storage-small-0000" as SessionId
      const largeId = "storage-large-0000" as SessionId
      yield* session(smallId)
      yield* session(largeId)
      const smallTurns = yield* storeTurns(smallId, small, sizes.storageWriteWarmup, sizes.storageWrites)
      const largeTurns = yield* storeTurns(largeId, large, sizes.storageLargeWarmup, sizes.storageLargeWrites)
      return { journal: mode!.journal_mode, small: smallTurns, large: largeTurns }
    })).finally(() => runtime.dispose())
    if (writes.journal !== "wal") throw new Error(`the ledger file is in ${writes.journal} mode, not WAL`)

    const note = "per turn, in-process, SQLite WAL"
    const storeRow = (label: string, w: typeof writes.small) => ({
      metric: `store a turn, ${label}, µs p50`,
      gateway: us(w.total.p50),
      ratio: `p99 ${us(w.total.p99)}`,
      note: `${note}: accept ${us(w.accept.p50)} + end ${us(w.end.p50)} µs, ${w.messages} msgs ${
        w.bytes < 1e6 ? `${w.bytes} B` : mb(w.bytes)
      }, n=${w.total.n}`
    })
    return {
      results: {
        writes: { ...writes, note },
        reads: {
          turn: { ...readSmall, bytes: bytes.small },
          largeTurn: { ...readLarge, bytes: bytes.large },
          list: { ...list, bytes: bytes.list }
        }
      },
      rows: [
        storeRow(`${small.length} msgs`, writes.small),
        storeRow(`${chunks} chunks`, writes.large),
        {
          metric: "GET /sessions/{id}/turns/{n} p50 ms",
          gateway: ms(readSmall.p50),
          ratio: `p99 ${ms(readSmall.p99)}`,
          target: "< 5 ms",
          pass: readSmall.p50 < 5,
          note: `a stored ${small.length}-message turn over HTTP (${bytes.small} B), n=${readSmall.n}`
        },
        {
          metric: `GET .../turns/{n}, ${chunks} chunks, a 10,000-message page, p50 ms`,
          gateway: ms(readLarge.p50),
          ratio: `p99 ${ms(readLarge.p99)}`,
          note: `${mb(bytes.large)} body read to its end, n=${readLarge.n}`
        },
        {
          metric: "GET /sessions/{id}/turns p50 ms",
          gateway: ms(list.p50),
          ratio: `p99 ${ms(list.p99)}`,
          note: `limit=100 of ${sizes.storageHttpTurns + 1} turns, no messages (${bytes.list} B), n=${list.n}`
        }
      ]
    }
  }
}
