/**
 * Bad input of every kind gets a 4xx `{ok:false, error, message}`: never a 500, never a
 * dropped connection, never a changed ledger; the server stays healthy.
 */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { makeFakePool } from "./support/FakePool.js"
import { appToken, layerTestGateway, request } from "./support/TestGateway.js"

interface BadRequestCase {
  readonly method: "GET" | "POST" | "DELETE" | "PUT" | "PATCH"
  readonly path: string
  readonly body?: string
  readonly contentType?: string
}

/** Malformed or wrongly shaped for every endpoint. */
const malformed = [
  "",
  "{",
  "{\"agent\":",
  "null",
  "[]",
  "42",
  "\"text\"",
  "true",
  "{}",
  "not json at all",
  "{\"agent\": undefined}",
  "\u0000\u0001\u0002"
]

const badCreate = [
  "{\"agent\":null}",
  "{\"agent\":1}",
  "{\"agent\":\"\"}",
  "{\"agent\":[\"claude\"]}",
  JSON.stringify({ agent: "a".repeat(300) }),
  JSON.stringify({ agent: "no-such-agent" }),
  JSON.stringify({ agent: "'; DROP TABLE sessions; --" }),
  JSON.stringify({ agent: "claude", meta: "text" }),
  JSON.stringify({ agent: "claude", meta: [1, 2] }),
  JSON.stringify({ agent: "claude", permission_mode: "yolo" }),
  JSON.stringify({ agent: "claude", cwd: "../../../etc" }),
  JSON.stringify({ agent: "claude", cwd: "/etc" }),
  JSON.stringify({ agent: "claude", cwd: "" })
]

const badPrompt = [
  JSON.stringify({ prompt: 1 }),
  JSON.stringify({ prompt: null }),
  JSON.stringify({ prompt: "" }),
  JSON.stringify({ prompt: ["x"] }),
  JSON.stringify({ prompt: { text: "x" } })
]

const badTurn = [
  ...badPrompt,
  JSON.stringify({ prompt: "x", files: "a.txt" }),
  JSON.stringify({ prompt: "x", files: [1] }),
  JSON.stringify({ prompt: "x", files: [""] })
]

const badRun = [
  ...badPrompt,
  JSON.stringify({ prompt: "x", timeout_secs: -1 }),
  JSON.stringify({ prompt: "x", timeout_secs: "10" }),
  JSON.stringify({ prompt: "x", model: 7 }),
  JSON.stringify({ prompt: "x", system_prompt: false })
]

const hostileIds = [
  "..%2F..%2Fetc%2Fpasswd",
  "%00",
  "'%20OR%201%3D1%20--",
  "a".repeat(3000),
  "%F0%9F%92%A5",
  "x",
  "AAAAAAAAAAAAAAAAAAAAAAAA",
  "%3Cscript%3Ealert(1)%3C%2Fscript%3E"
]

const contentTypes = [undefined, "application/json", "text/plain", "application/x-www-form-urlencoded"]

/** Bodies that must be refused for the endpoint they are sent to. */
const cases = (sid: string): Array<BadRequestCase> => {
  const all: Array<BadRequestCase> = []
  for (const contentType of contentTypes) {
    const withType = contentType === undefined ? {} : { contentType }
    for (const body of [...malformed, ...badCreate]) all.push({ method: "POST", path: "/sessions", body, ...withType })
    for (const body of [...malformed, ...badTurn]) all.push({ method: "POST", path: `/sessions/${sid}/turn`, body, ...withType })
    for (const body of [...malformed, ...badRun]) all.push({ method: "POST", path: "/run", body, ...withType })
  }
  for (const id of hostileIds) {
    all.push({ method: "GET", path: `/sessions/${id}` })
    all.push({ method: "DELETE", path: `/sessions/${id}` })
    all.push({ method: "POST", path: `/sessions/${id}/turn`, body: JSON.stringify({ prompt: "hi" }) })
  }
  for (const query of ["limit=0", "limit=-5", "limit=abc", "limit=100000", "status=weird", "limit=1.5"]) {
    all.push({ method: "GET", path: `/sessions?${query}` })
  }
  all.push(
    { method: "PUT", path: "/sessions" },
    { method: "PATCH", path: `/sessions/${sid}` },
    { method: "GET", path: "/run" },
    { method: "DELETE", path: "/run" },
    { method: "GET", path: "/nope" },
    { method: "POST", path: "/sessions/" + sid + "/turn/extra", body: "{}" },
    { method: "POST", path: "/run", body: JSON.stringify({ prompt: "x".repeat(2 * 1024 * 1024) }) }
  )
  return all
}

const send = (c: BadRequestCase) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    let req = HttpClientRequest.make(c.method)(c.path).pipe(HttpClientRequest.bearerToken(appToken))
    if (c.body !== undefined) req = HttpClientRequest.bodyText(req, c.body, c.contentType ?? "application/json")
    const response = yield* client.execute(req)
    const text = yield* response.text
    return { status: response.status, text }
  }).pipe(Effect.scoped)

const ledgerCounts = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ sessions: number; events: number; turns: number }>`
    SELECT (SELECT count(*) FROM sessions) AS sessions, (SELECT count(*) FROM session_events) AS events,
           (SELECT coalesce(sum(turn_count), 0) FROM sessions) AS turns`
  return row
})

describe("bad input", () => {
  it.scopedLive("every bad request is a 4xx with {ok:false, error, message} and the ledger is unchanged", () =>
    Effect.gen(function*() {
      const sid = (yield* request("POST", "/sessions", { token: appToken, body: { agent: "claude" } })).body.session_id
      const before = yield* ledgerCounts
      const all = cases(sid)
      expect(all.length).toBeGreaterThan(300)
      const results = yield* Effect.forEach(all, (c) => Effect.map(send(c), (r) => ({ ...r, c })), {
        concurrency: 8
      })
      for (const { c, status, text } of results) {
        const where = `${c.method} ${c.path.slice(0, 80)} ${String(c.body).slice(0, 80)} -> ${status} ${text.slice(0, 200)}`
        expect(status, where).toBeGreaterThanOrEqual(400)
        expect(status, where).toBeLessThan(500)
        const body = JSON.parse(text)
        expect(body.ok, where).toBe(false)
        expect(typeof body.error, where).toBe("string")
        expect(typeof body.message, where).toBe("string")
      }
      expect(yield* ledgerCounts).toEqual(before)
      const health = yield* request("GET", "/healthz")
      expect(health.status).toBe(200)
      const stillThere = yield* request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt: "hi" } })
      expect(stillThere.status).toBe(200)
    }).pipe(Effect.provide(layerTestGateway({ pool: makeFakePool().layer }))))
})
