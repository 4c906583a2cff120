/**
 * Idempotency keys (issue 12, part 1): a retried request with the same key never runs twice and
 * answers what the first one answered. Against the scripted agent as a real child process, over
 * a real HTTP server; `/run` against the fake claude.
 */
import { FetchHttpClient, HttpClient, HttpClientRequest, HttpServer } from "@effect/platform"
import { makeClient } from "../src/client/EffectClient.js"
import { createFetchClient } from "../src/client/FetchClient.js"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Stream } from "effect"
import { appendFileSync, chmodSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { SqlClient } from "@effect/sql"
import { createHash } from "node:crypto"
import { requestDigest } from "../src/services/ledger/IdempotencyKeys.js"
import { sweepOnce } from "../src/services/sessions/Sweeper.js"
import { ledgerIn } from "./support/Ledgers.js"
import { agentLogFile, readAgentLog } from "./support/ScriptedAgent.js"
import { appToken, layerScriptedGateway, otherToken, request } from "./support/TestGateway.js"
import { tempDir } from "./support/TempDirs.js"

/** A POST with an optional Idempotency-Key; the body as JSON and the replay header. */
const post = (path: string, body: unknown, key?: string, token = appToken) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    let req = HttpClientRequest.post(path).pipe(
      HttpClientRequest.bearerToken(token),
      HttpClientRequest.bodyUnsafeJson(body)
    )
    if (key !== undefined) req = HttpClientRequest.setHeader(req, "Idempotency-Key", key)
    const response = yield* client.execute(req)
    return {
      status: response.status,
      body: (yield* response.json) as any,
      replayed: response.headers["idempotent-replayed"]
    }
  }).pipe(Effect.scoped)

/** A POST to `/turn/stream`: its status, replay header and raw event text (or JSON body). */
const postStream = (sid: string, prompt: string, key: string) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.execute(
      HttpClientRequest.post(`/sessions/${sid}/turn/stream`).pipe(
        HttpClientRequest.bearerToken(appToken),
        HttpClientRequest.setHeader("Idempotency-Key", key),
        HttpClientRequest.bodyUnsafeJson({ prompt })
      )
    )
    const text = yield* response.stream.pipe(Stream.decodeText(), Stream.mkString)
    return {
      status: response.status,
      contentType: response.headers["content-type"],
      replayed: response.headers["idempotent-replayed"],
      text
    }
  }).pipe(Effect.scoped)

const create = Effect.map(post("/sessions", { agent: "scripted" }), (r) => r.body.session_id as string)

const prompts = (log: string) => readAgentLog(log).filter((line) => line.event === "session/prompt").length

const turnCount = (sid: string) =>
  Effect.map(request("GET", `/sessions/${sid}`, { token: appToken }), (r) => r.body.turn_count as number)

describe("Idempotency-Key", () => {
  it.scopedLive("20 concurrent POST /turn with one key run one turn; 19 are replays of the same answer", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const sid = yield* create
      const replies = yield* Effect.all(
        Array.from({ length: 20 }, () => post(`/sessions/${sid}/turn`, { prompt: "sleep 100" }, "turn-key-1")),
        { concurrency: "unbounded" }
      )
      for (const reply of replies) {
        expect(reply.status).toBe(200)
        expect(reply.body).toEqual(replies[0]!.body)
      }
      expect(replies[0]!.body).toMatchObject({ ok: true, session_id: sid, turn_index: 1, stop_reason: "end_turn" })
      expect(replies.filter((r) => r.replayed === "true")).toHaveLength(19)
      // The agent's own log: one prompt.
      expect(prompts(log)).toBe(1)
      expect(yield* turnCount(sid)).toBe(1)
      // Another app's identical key is its own; a new key is a new turn.
      const other = yield* post("/sessions", { agent: "scripted" }, "turn-key-1", otherToken)
      expect(other).toMatchObject({ status: 200, replayed: undefined })
      const next = yield* post(`/sessions/${sid}/turn`, { prompt: "sleep 100" }, "turn-key-2")
      expect(next).toMatchObject({ status: 200, replayed: undefined, body: { turn_index: 2 } })
      expect(prompts(log)).toBe(2)
    }).pipe(Effect.provide(layerScriptedGateway(log)))
  })

  it.scopedLive("a repeat sent while the first is still running waits for it and gets its answer", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const sid = yield* create
      const first = yield* Effect.fork(post(`/sessions/${sid}/turn`, { prompt: "sleep 500" }, "slow"))
      yield* Effect.sleep("150 millis")
      const started = Date.now()
      const repeat = yield* post(`/sessions/${sid}/turn`, { prompt: "sleep 500" }, "slow")
      expect(Date.now() - started).toBeGreaterThan(200)
      const original = yield* first.await.pipe(Effect.flatten)
      expect(original).toMatchObject({ status: 200, replayed: undefined })
      expect(repeat).toMatchObject({ status: 200, replayed: "true" })
      expect(repeat.body).toEqual(original.body)
      expect(prompts(log)).toBe(1)
      // Once over, a repeat gets it at once; so does an async turn's, with its 202.
      expect(yield* post(`/sessions/${sid}/turn`, { prompt: "sleep 500" }, "slow")).toMatchObject({
        status: 200,
        replayed: "true",
        body: original.body
      })
      const queued = yield* post(`/sessions/${sid}/turns`, { prompt: "hello" }, "async")
      const queuedAgain = yield* post(`/sessions/${sid}/turns`, { prompt: "hello" }, "async")
      expect(queued).toMatchObject({ status: 202, body: { turn_index: 2, status: "queued" } })
      expect(queuedAgain).toMatchObject({ status: 202, replayed: "true", body: queued.body })
      expect(yield* turnCount(sid)).toBe(2)
    }).pipe(Effect.provide(layerScriptedGateway(log)))
  })

  it.scopedLive("a repeated /turn/stream replays the first turn's stream event by event", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const sid = yield* create
      const first = yield* postStream(sid, "chunks 10 10", "stream-1")
      expect(first).toMatchObject({ status: 200, replayed: undefined })
      expect(first.contentType).toContain("text/event-stream")
      expect(first.text).toContain("event: done")
      const again = yield* postStream(sid, "chunks 10 10", "stream-1")
      expect(again).toMatchObject({ status: 200, replayed: "true" })
      expect(again.contentType).toContain("text/event-stream")
      expect(again.text).toBe(first.text)
      expect(prompts(log)).toBe(1)
      expect(yield* turnCount(sid)).toBe(1)
      // A client that loses the stream while the turn runs and sends the POST again (as generated SSE
      // clients do) gets the same turn from its start, live to its end: the turn runs once.
      const cut = yield* Effect.fork(postStream(sid, "chunks 20 25", "stream-2"))
      yield* Effect.sleep("120 millis")
      yield* Fiber.interrupt(cut)
      const retried = yield* postStream(sid, "chunks 20 25", "stream-2")
      expect(retried).toMatchObject({ status: 200, replayed: "true" })
      expect(retried.text.startsWith("event: acp\nid: 2.1\n")).toBe(true)
      expect(retried.text).toContain("event: done\nid: 2.23\n")
      expect(prompts(log)).toBe(2)
      expect(yield* turnCount(sid)).toBe(2)
    }).pipe(Effect.provide(layerScriptedGateway(log)))
  })

  it.scopedLive("the same key with a different body is 422 idempotency_key_reused, and runs nothing", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const sid = yield* create
      expect((yield* post(`/sessions/${sid}/turn`, { prompt: "hello" }, "k")).status).toBe(200)
      const other = yield* post(`/sessions/${sid}/turn`, { prompt: "hello again" }, "k")
      expect(other.status).toBe(422)
      expect(other.body).toMatchObject({ ok: false, error: "idempotency_key_reused" })
      expect(typeof other.body.message).toBe("string")
      // Another route under the same key is another request too.
      expect((yield* post(`/sessions/${sid}/turns`, { prompt: "hello" }, "k")).status).toBe(422)
      expect(prompts(log)).toBe(1)
      expect(yield* turnCount(sid)).toBe(1)
    }).pipe(Effect.provide(layerScriptedGateway(log)))
  })

  it.scopedLive("a key too long or not visible ASCII is a 400 and changes nothing", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const sid = yield* create
      for (const key of ["x".repeat(256), "has space", "tab\tkey", "é"]) {
        for (const path of [`/sessions/${sid}/turn`, `/sessions/${sid}/turns`, "/sessions", "/run"]) {
          const body = path === "/sessions" ? { agent: "scripted" } : { prompt: "hello" }
          const r = yield* post(path, body, key)
          expect(r.status, `${path} ${JSON.stringify(key)}`).toBe(400)
          expect(r.body).toMatchObject({ ok: false, error: "bad_request" })
          expect(r.body.message).toContain("Idempotency-Key")
        }
      }
      expect(yield* turnCount(sid)).toBe(0)
      expect(prompts(log)).toBe(0)
      const listed = yield* request("GET", "/sessions", { token: appToken })
      expect(listed.body.count).toBe(1)
      // 255 visible characters are a key.
      expect((yield* post(`/sessions/${sid}/turn`, { prompt: "hello" }, "~".repeat(255))).status).toBe(200)
    }).pipe(Effect.provide(layerScriptedGateway(log)))
  })

  it.scopedLive("create with a key twice makes one session; a failed reply replays too", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const [a, b] = yield* Effect.all([
        post("/sessions", { agent: "scripted", meta: { n: 1, m: 2 } }, "create-1"),
        post("/sessions", { meta: { m: 2, n: 1 }, agent: "scripted" }, "create-1")
      ], { concurrency: "unbounded" })
      expect(a.status).toBe(200)
      expect(b.body).toEqual(a.body)
      expect([a.replayed, b.replayed].sort()).toEqual(["true", undefined])
      const listed = yield* request("GET", "/sessions", { token: appToken })
      expect(listed.body.count).toBe(1)
      expect(readAgentLog(log).filter((line) => line.event === "start")).toHaveLength(1)
      // A 400 from the handler (unknown agent) is kept and replayed.
      const unknown = yield* post("/sessions", { agent: "nope" }, "create-2")
      const unknownAgain = yield* post("/sessions", { agent: "nope" }, "create-2")
      expect(unknown).toMatchObject({ status: 400, body: { error: "unknown_agent" }, replayed: undefined })
      expect(unknownAgain).toMatchObject({ status: 400, replayed: "true", body: unknown.body })
    }).pipe(Effect.provide(layerScriptedGateway(log)))
  })

  it.scopedLive("POST /run with a key runs claude once", () => {
    const dir = tempDir("clawdforge-claude-")
    const runs = join(dir, "runs.log")
    const claude = join(dir, "claude")
    const fake = fileURLToPath(new URL("./fixtures/fake-claude.mjs", import.meta.url))
    writeFileSync(claude, `#!/bin/sh\necho run >> '${runs}'\nexec '${process.execPath}' '${fake}' "$@"\n`)
    chmodSync(claude, 0o755)
    appendFileSync(runs, "")
    const count = () => readFileSync(runs, "utf8").split("\n").filter((l) => l === "run").length
    return Effect.gen(function*() {
      const replies = yield* Effect.all(
        Array.from({ length: 5 }, () => post("/run", { prompt: "hello" }, "run-1")),
        { concurrency: "unbounded" }
      )
      for (const reply of replies) expect(reply).toMatchObject({ status: 200, body: replies[0]!.body })
      expect(replies[0]!.body).toMatchObject({ ok: true, result: "echo: hello" })
      expect(replies.filter((r) => r.replayed === "true")).toHaveLength(4)
      expect(count()).toBe(1)
      // A failure (502 in the v0.1 shape) replays too.
      const failed = yield* post("/run", { prompt: "stderr-fail" }, "run-2")
      expect(failed.status).toBe(502)
      expect(yield* post("/run", { prompt: "stderr-fail" }, "run-2")).toMatchObject({
        status: 502,
        replayed: "true",
        body: failed.body
      })
      expect(count()).toBe(2)
      // Without a key, every POST runs.
      yield* post("/run", { prompt: "hello" })
      yield* post("/run", { prompt: "hello" })
      expect(count()).toBe(4)
    }).pipe(Effect.provide(layerScriptedGateway(agentLogFile(), { CLAWDFORGE_CLAUDE_BIN: claude })))
  })

  it.scopedLive("keys expire through the sweeper after CLAWDFORGE_IDEMPOTENCY_TTL_SECS; rows keep no key or token", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const sid = yield* create
      const secret = "key-that-is-not-stored"
      expect((yield* post(`/sessions/${sid}/turn`, { prompt: "private words" }, secret)).status).toBe(200)
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql`SELECT * FROM idempotency_keys`
      expect(rows).toHaveLength(1)
      const stored = JSON.stringify(rows[0])
      expect(stored).not.toContain(secret)
      expect(stored).not.toContain(appToken)
      expect(rows[0]).toMatchObject({ app_name: "app-a", status: 200 })
      // Kept within the TTL: the sweeper leaves it.
      yield* sweepOnce
      expect((yield* post(`/sessions/${sid}/turn`, { prompt: "private words" }, secret)).replayed).toBe("true")
      // Past the TTL (1 s, whole seconds): swept, and the key is new again.
      yield* Effect.sleep("2100 millis")
      yield* sweepOnce
      expect(yield* sql`SELECT * FROM idempotency_keys`).toHaveLength(0)
      const again = yield* post(`/sessions/${sid}/turn`, { prompt: "private words" }, secret)
      expect(again).toMatchObject({ status: 200, replayed: undefined, body: { turn_index: 2 } })
    }).pipe(Effect.provide(layerScriptedGateway(log, { CLAWDFORGE_IDEMPOTENCY_TTL_SECS: "1" })))
  })

  it.scopedLive("a key another gateway process holds is waited for by polling its row, then replayed", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const sid = yield* create
      const sql = yield* SqlClient.SqlClient
      // Another process took the key for the same request and is running it.
      const keyDigest = createHash("sha256").update("held", "utf8").digest("hex")
      const request = requestDigest("POST", `/sessions/${sid}/turn`, { prompt: "hello" })
      yield* sql`INSERT INTO idempotency_keys (app_name, key_digest, request_digest, created_at)
        VALUES ('app-a', ${keyDigest}, ${request}, ${Math.floor(Date.now() / 1000)})`
      const repeat = yield* Effect.fork(post(`/sessions/${sid}/turn`, { prompt: "hello" }, "held"))
      // A different body under that key is refused at once, even while it runs.
      expect((yield* post(`/sessions/${sid}/turn`, { prompt: "other" }, "held")).status).toBe(422)
      yield* Effect.sleep("300 millis")
      const body = JSON.stringify({ ok: true, session_id: sid, turn_index: 7, stop_reason: "end_turn", events: [] })
      yield* sql`UPDATE idempotency_keys SET status = 200, body = ${body} WHERE key_digest = ${keyDigest}`
      const replayed = yield* repeat.await.pipe(Effect.flatten)
      expect(replayed).toMatchObject({ status: 200, replayed: "true", body: JSON.parse(body) })
      expect(prompts(log)).toBe(0)
    }).pipe(Effect.provide(layerScriptedGateway(log)))
  })

  it.scopedLive("a client that hangs up does not lose the answer: its retry with the key gets it", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const sid = yield* create
      const first = yield* Effect.fork(post(`/sessions/${sid}/turn`, { prompt: "sleep 400" }, "hang-up"))
      yield* Effect.sleep("100 millis")
      yield* Fiber.interrupt(first)
      const retry = yield* post(`/sessions/${sid}/turn`, { prompt: "sleep 400" }, "hang-up")
      expect(retry).toMatchObject({ status: 200, replayed: "true", body: { turn_index: 1, stop_reason: "end_turn" } })
      expect(prompts(log)).toBe(1)
    }).pipe(Effect.provide(layerScriptedGateway(log)))
  })

  it.live("keys a dead gateway left running are released at start-up", () => {
    const data = tempDir("clawdforge-db-")
    return Effect.gen(function*() {
      const db = yield* Effect.promise(() => ledgerIn(data))
      const gateway = () => layerScriptedGateway(agentLogFile(), { CLAWDFORGE_DB: db })
      yield* Effect.scoped(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const now = Math.floor(Date.now() / 1000)
        yield* sql`INSERT INTO idempotency_keys (app_name, key_digest, request_digest, created_at)
          VALUES ('app-a', 'running', 'r', ${now}), ('app-a', 'answered', 'r', ${now})`
        yield* sql`UPDATE idempotency_keys SET status = 200, body = '{}' WHERE key_digest = 'answered'`
      }).pipe(Effect.provide(gateway())))
      const left = yield* Effect.scoped(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        return yield* sql<{ key_digest: string }>`SELECT key_digest FROM idempotency_keys`
      }).pipe(Effect.provide(gateway())))
      expect(left.map((row) => row.key_digest)).toEqual(["answered"])
    })
  })

  it.scopedLive("both clients send the key: the Effect client's headers and openapi-fetch's params.header", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const url = yield* HttpServer.addressFormattedWith(Effect.succeed)
      const client = yield* makeClient({ baseUrl: url, token: appToken }).pipe(Effect.provide(FetchHttpClient.layer))
      const { session_id: id } = yield* client.createSession({ payload: { agent: "scripted" } })
      const once = () =>
        client.runTurn({ path: { id }, payload: { prompt: "hello" }, headers: { "idempotency-key": "effect-1" } })
      const [a, b] = [yield* once(), yield* once()]
      expect(b).toEqual(a)
      const reused = yield* Effect.flip(
        client.runTurn({ path: { id }, payload: { prompt: "bye" }, headers: { "idempotency-key": "effect-1" } })
      )
      expect(reused._tag).toBe("IdempotencyKeyReused")
      const fetchClient = createFetchClient({ baseUrl: url, token: appToken })
      const send = () =>
        Effect.promise(() =>
          fetchClient.POST("/sessions/{id}/turns", {
            params: { path: { id }, header: { "Idempotency-Key": "fetch-1" } },
            body: { prompt: "hello" }
          })
        )
      const [c, d] = [yield* send(), yield* send()]
      expect(c.response.status).toBe(202)
      expect(d.response.headers.get("Idempotent-Replayed")).toBe("true")
      expect(d.data).toEqual(c.data)
      expect(yield* turnCount(id)).toBe(2)
    }).pipe(Effect.provide(layerScriptedGateway(log)))
  })
})
