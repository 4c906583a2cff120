/**
 * The operators' API (`/admin/*`, issue 16) over a real loopback server with the scripted ACP
 * agent: the admin guard (off without CLAWDFORGE_ADMIN_TOKEN, an app token refused), apps added
 * with their token shown once and revoked, limits replaced, every app's sessions, turns, audit
 * trail and usage, and an ask-mode request answered by an operator (`by: "admin"`).
 */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { poll } from "./support/Poll.js"
import { agentLogFile } from "./support/ScriptedAgent.js"
import { appName, appToken, layerScriptedGateway, otherApp, otherToken, request } from "./support/TestGateway.js"

const adminToken = "admin-token-0123456789abcdef"
const gateway = () => layerScriptedGateway(agentLogFile(), { CLAWDFORGE_ADMIN_TOKEN: adminToken })

const admin = (method: "GET" | "POST" | "PUT" | "DELETE", path: string, body?: unknown, token = adminToken) =>
  // The shared helper's methods are the app API's; PUT is the same request.
  request(method as "POST", path, body === undefined ? { token } : { token, body })

const create = (token: string, body: Record<string, unknown> = {}) =>
  Effect.map(
    request("POST", "/sessions", { token, body: { agent: "scripted", ...body } }),
    (r) => {
      expect(r.status).toBe(200)
      return r.body.session_id as string
    }
  )
const turn = (sid: string, prompt: string, token = appToken) =>
  request("POST", `/sessions/${sid}/turn`, { token, body: { prompt } })

describe("the admin guard", () => {
  it.scopedLive("without CLAWDFORGE_ADMIN_TOKEN every admin route is 404 and says the admin API is off", () =>
    Effect.gen(function*() {
      for (const path of ["/admin/apps", "/admin/sessions", "/admin/overview"]) {
        const reply = yield* request("GET", path, { token: appToken })
        expect(reply.status, path).toBe(404)
        expect(reply.body).toMatchObject({ ok: false, error: "not_found" })
        expect(reply.body.message).toContain("the admin API is off: set CLAWDFORGE_ADMIN_TOKEN")
      }
      const client = yield* HttpClient.HttpClient
      const page = yield* client.execute(HttpClientRequest.get("/console")).pipe(Effect.scoped)
      expect(page.status).toBe(404)
      expect(page.headers["content-security-policy"]).toContain("default-src 'none'")
    }).pipe(Effect.provide(layerScriptedGateway(agentLogFile()))))

  it.scopedLive("an app token, a wrong token or none is 401 with the admin realm; the admin token passes", () =>
    Effect.gen(function*() {
      const cases = [
        { token: appToken, challenge: `Bearer realm="clawdforge-admin", error="invalid_token"` },
        { token: `${adminToken}x`, challenge: `Bearer realm="clawdforge-admin", error="invalid_token"` },
        { token: undefined, challenge: `Bearer realm="clawdforge-admin"` }
      ]
      for (const { challenge, token } of cases) {
        const reply = yield* request("GET", "/admin/apps", token === undefined ? {} : { token })
        expect(reply.status).toBe(401)
        expect(reply.body).toMatchObject({ ok: false, error: "unauthorized" })
        expect(reply.response.headers["www-authenticate"]).toBe(challenge)
      }
      // The admin token is no app token either.
      expect((yield* request("GET", "/sessions", { token: adminToken })).status).toBe(401)
      expect((yield* admin("GET", "/admin/apps")).status).toBe(200)
    }).pipe(Effect.provide(gateway())))
})

describe("apps", () => {
  it.scopedLive("listed by name, never with a token; added with the token shown once; revoked", () =>
    Effect.gen(function*() {
      const listed = yield* admin("GET", "/admin/apps")
      expect(listed.body.apps.map((a: any) => [a.name, a.source])).toEqual([
        [appName, "environment"],
        [otherApp, "environment"]
      ])
      expect(listed.body.apps[0]).toMatchObject({
        limits: { max_sessions: null, turns_per_minute: null, daily_cost_usd: null },
        use: { live_sessions: 0, turns_this_minute: 0, cost_today_usd: 0 }
      })
      expect(JSON.stringify(listed.body)).not.toContain(appToken)

      const added = yield* admin("POST", "/admin/apps", { name: "billing-bot" })
      expect(added.status).toBe(201)
      expect(added.body).toMatchObject({ ok: true, name: "billing-bot", token: expect.stringMatching(/^cf_/) })
      const token = added.body.token as string
      expect(added.response.headers["cache-control"]).toBe("no-store")
      // The new token works at once, and is never shown again.
      expect((yield* request("GET", "/sessions", { token })).status).toBe(200)
      const again = yield* admin("GET", "/admin/apps")
      expect(again.body.apps.find((a: any) => a.name === "billing-bot")).toMatchObject({ source: "ledger", revoked_at: null })
      expect(JSON.stringify(again.body)).not.toContain(token)

      expect((yield* admin("POST", "/admin/apps", { name: "billing-bot" })).body.error).toBe("app_exists")
      expect((yield* admin("POST", "/admin/apps", { name: appName })).status).toBe(409)
      const bad = yield* admin("POST", "/admin/apps", { name: "no spaces" })
      expect(bad.status).toBe(400)
      expect(bad.body).toMatchObject({ ok: false, error: "bad_request" })

      expect((yield* admin("DELETE", "/admin/apps/billing-bot")).body).toEqual({ ok: true })
      expect((yield* admin("DELETE", "/admin/apps/billing-bot")).body).toEqual({ ok: true, already_revoked: true })
      const unknown = yield* admin("DELETE", "/admin/apps/nobody")
      expect(unknown.status).toBe(404)
      expect(unknown.body.error).toBe("app_not_found")
      expect((yield* admin("DELETE", `/admin/apps/${appName}`)).status).toBe(404)
      // Refused once the gateway's copy of the ledger's tokens is renewed (2 s at most).
      yield* poll(request("GET", "/sessions", { token }), (r) => r.status === 401)
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("limits are replaced as a whole and apply at once; bad ones are 400", () =>
    Effect.gen(function*() {
      const set = yield* admin("PUT", `/admin/apps/${appName}/limits`, { max_sessions: 1, daily_cost_usd: 2.5 })
      expect(set.status).toBe(200)
      expect(set.body).toEqual({
        ok: true,
        app: appName,
        limits: {
          max_sessions: 1,
          turns_per_minute: null,
          daily_cost_usd: 2.5,
          permission_modes: ["approve-all", "approve-reads", "deny-all", "ask"],
          network: null,
          max_queued_turns: 32,
          max_streams: 64,
          max_disk_mb: 10240,
          max_stored_mb: null,
          warm: {}
        },
        sources: {
          max_sessions: "ledger",
          turns_per_minute: "none",
          daily_cost_usd: "ledger",
          permission_modes: "none",
          network: "none",
          max_queued_turns: "default",
          max_streams: "default",
          max_disk_mb: "default",
          max_stored_mb: "none",
          warm: "none"
        }
      })
      yield* create(appToken)
      const refused = yield* request("POST", "/sessions", { token: appToken, body: { agent: "scripted" } })
      expect(refused.status).toBe(429)
      expect(refused.body.error).toBe("app_session_limit")

      const cleared = yield* admin("PUT", `/admin/apps/${appName}/limits`, { turns_per_minute: 10 })
      expect(cleared.body.limits).toMatchObject({ max_sessions: null, turns_per_minute: 10, daily_cost_usd: null })
      yield* create(appToken)
      for (const body of [{ max_sessions: -1 }, { daily_cost_usd: "lots" }, { turns_per_minute: 1.5 }]) {
        const reply = yield* admin("PUT", `/admin/apps/${appName}/limits`, body)
        expect(reply.status, JSON.stringify(body)).toBe(400)
        expect(reply.body.ok).toBe(false)
      }
      expect((yield* admin("PUT", "/admin/apps/bad name/limits", {})).status).toBe(400)
    }).pipe(Effect.provide(gateway())))
})

describe("every app's sessions", () => {
  it.scopedLive("listed with filters, read with turns and audit trail, closed; usage, audit and overview by app", () =>
    Effect.gen(function*() {
      const a = yield* create(appToken)
      const b = yield* create(otherToken)
      expect((yield* turn(a, "hello there")).status).toBe(200)
      expect((yield* turn(b, "chunks 2", otherToken)).status).toBe(200)

      const all = yield* admin("GET", "/admin/sessions")
      expect(all.body.count).toBe(2)
      expect(all.body.sessions.map((s: any) => s.session_id).sort()).toEqual([a, b].sort())
      const created = all.body.sessions.map((s: any) => s.created_at)
      expect(created).toEqual([...created].sort((x: number, y: number) => y - x))
      expect(all.body.sessions.every((s: any) => s.live === true && s.pending_permissions === 0)).toBe(true)
      const onlyB = yield* admin("GET", `/admin/sessions?app=${otherApp}`)
      expect(onlyB.body.sessions.map((s: any) => s.session_id)).toEqual([b])
      expect((yield* admin("GET", "/admin/sessions?status=closed")).body.count).toBe(0)
      expect((yield* admin("GET", "/admin/sessions?status=maybe")).status).toBe(400)
      expect((yield* admin("GET", "/admin/sessions?limit=0")).status).toBe(400)

      const detail = yield* admin("GET", `/admin/sessions/${a}`)
      expect(detail.status).toBe(200)
      expect(detail.body.session).toMatchObject({ session_id: a, app_name: appName, live: true, turn_count: 1 })
      expect(detail.body.turns).toMatchObject([{ turn_index: 1, status: "completed", prompt: "hello there" }])
      expect(detail.body.events.map((e: any) => e.event)).toEqual(expect.arrayContaining(["create", "turn"]))
      expect(detail.body.permissions).toEqual([])
      const read = yield* admin("GET", `/admin/sessions/${a}/turns/1`)
      expect(read.body).toMatchObject({ status: "completed", text: "echo: hello there" })
      expect((yield* admin("GET", `/admin/sessions/${a}/turns/9`)).body.error).toBe("turn_not_found")
      expect((yield* admin("GET", "/admin/sessions/nonexistent-session-id")).body.error).toBe("session_not_found")

      const usage = yield* admin("GET", "/admin/usage")
      expect(usage.body.totals).toMatchObject({ turns: 2, sessions: 2 })
      expect(usage.body.apps).toMatchObject([
        { app: appName, turns: 1, sessions: 1 },
        { app: otherApp, turns: 1, sessions: 1 }
      ])
      const trail = yield* admin("GET", `/admin/audit?app=${otherApp}&limit=50`)
      expect(trail.body.events.length).toBeGreaterThan(0)
      expect(trail.body.events.every((e: any) => e.app_name === otherApp && e.session_id === b)).toBe(true)
      const ids = trail.body.events.map((e: any) => e.id)
      expect(ids).toEqual([...ids].sort((x: number, y: number) => y - x))
      const older = yield* admin("GET", `/admin/audit?before=${ids[0]}`)
      expect(older.body.events.every((e: any) => e.id < ids[0])).toBe(true)

      const overview = yield* admin("GET", "/admin/overview")
      expect(overview.body).toMatchObject({
        ok: true,
        pool: { live: 2, capacity: 8 },
        live_by_app: [{ app: appName, live_sessions: 1 }, { app: otherApp, live_sessions: 1 }],
        turns_last_minute: 2,
        turns_today: 2,
        pending_permissions: 0,
        apps: 2
      })
      expect(overview.body.minutes).toHaveLength(30)
      expect(overview.body.minutes.at(-1).turns).toBe(2)

      expect((yield* admin("DELETE", `/admin/sessions/${a}`)).body).toEqual({ ok: true })
      expect((yield* admin("DELETE", `/admin/sessions/${a}`)).body).toEqual({ ok: true, already_closed: true })
      expect((yield* request("GET", `/sessions/${a}`, { token: appToken })).body.status).toBe("closed")
      expect((yield* admin("GET", "/admin/sessions?status=open")).body.sessions.map((s: any) => s.session_id)).toEqual([b])
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("an operator answers an ask-mode request: the turn completes, audited and streamed by admin", () =>
    Effect.gen(function*() {
      const sid = yield* create(appToken, { permission_mode: "ask" })
      const waiting = yield* Effect.fork(turn(sid, "permission edit the readme"))
      const pending = yield* poll(admin("GET", "/admin/permissions"), (r) => r.body.count >= 1)
      const held = pending.body.permissions[0]
      expect(held).toMatchObject({ session_id: sid, app_name: appName, kind: "permission", turn_index: 1 })
      expect((yield* admin("GET", `/admin/sessions/${sid}`)).body).toMatchObject({
        session: { pending_permissions: 1 },
        permissions: [{ request_id: held.request_id, options: [{ option_id: "allow" }, { option_id: "reject" }] }]
      })
      // The live turn, as an operator follows it.
      const client = yield* HttpClient.HttpClient
      const stream = yield* Effect.fork(
        client.execute(
          HttpClientRequest.get(`/admin/sessions/${sid}/turns/1/stream`).pipe(HttpClientRequest.bearerToken(adminToken))
        ).pipe(Effect.flatMap((r) => r.text), Effect.scoped)
      )

      const notOffered = yield* admin("POST", `/admin/sessions/${sid}/permissions/${held.request_id}`, { option_id: "maybe" })
      expect(notOffered.status).toBe(400)
      const answered = yield* admin("POST", `/admin/sessions/${sid}/permissions/${held.request_id}`, { option_id: "allow" })
      expect(answered.body).toEqual({ ok: true })
      const reply = yield* waiting.await.pipe(Effect.flatten)
      expect(reply.status).toBe(200)
      expect(JSON.stringify(reply.body.events)).toContain("permission: allow")

      const text = yield* stream.await.pipe(Effect.flatten)
      expect(text).toContain("event: permission_resolved")
      expect(text).toContain(`"by":"admin"`)
      expect(text).toContain("event: done")
      // The answer's audit event is written beside the turn, not before its reply.
      const trail = (yield* poll(
        admin("GET", `/admin/sessions/${sid}`),
        (r) => r.body.events.some((e: any) => e.event === "permission_answer")
      )).body.events
      expect(trail.find((e: any) => e.event === "permission_answer").detail).toEqual({
        request_id: held.request_id,
        by: "admin",
        outcome: "selected",
        option_id: "allow"
      })
      expect((yield* admin("POST", `/admin/sessions/${sid}/permissions/${held.request_id}`, { option_id: "allow" })).body.error)
        .toBe("permission_not_found")
    }).pipe(Effect.provide(gateway())))
})

describe("bad input to the admin API", () => {
  it.scopedLive("is a 4xx {ok:false, error, message}, and changes nothing", () =>
    Effect.gen(function*() {
      const before = (yield* admin("GET", "/admin/apps")).body
      const injection = "'; DROP TABLE apps; --"
      const cases: ReadonlyArray<readonly ["GET" | "POST" | "PUT" | "DELETE", string, unknown?]> = [
        ["POST", "/admin/apps", {}],
        ["POST", "/admin/apps", { name: 42 }],
        ["POST", "/admin/apps", { name: injection }],
        ["POST", "/admin/apps", { name: "x".repeat(65) }],
        ["POST", "/admin/apps", "not an object"],
        ["POST", "/admin/apps", [{ name: "a" }]],
        ["DELETE", `/admin/apps/${encodeURIComponent(injection)}`],
        ["PUT", `/admin/apps/${appName}/limits`, { max_sessions: "1" }],
        ["PUT", `/admin/apps/${appName}/limits`, { daily_cost_usd: -0.5 }],
        ["PUT", `/admin/apps/${appName}/limits`, { turns_per_minute: 2.5 }],
        ["PUT", `/admin/apps/${appName}/limits`, { max_session: 3 }],
        ["PUT", `/admin/apps/${appName}/limits`, null],
        ["GET", `/admin/sessions?app=${encodeURIComponent(injection)}`],
        ["GET", "/admin/sessions?limit=1001"],
        ["GET", "/admin/sessions?limit=abc"],
        ["GET", "/admin/sessions/..%2F..%2Fetc%2Fpasswd"],
        ["GET", "/admin/sessions/nonexistent-session-id/turns/0"],
        ["GET", "/admin/sessions/nonexistent-session-id/turns/x/stream"],
        ["DELETE", `/admin/sessions/${"x".repeat(300)}`],
        ["POST", "/admin/sessions/nonexistent-session-id/permissions/req_x", { option_id: "" }],
        ["POST", "/admin/sessions/nonexistent-session-id/permissions/req_x", { action: "maybe" }],
        ["POST", "/admin/sessions/nonexistent-session-id/permissions/req_x", { option_id: "allow" }],
        ["GET", "/admin/usage?from=-1"],
        ["GET", "/admin/usage?to=soon"],
        ["GET", "/admin/audit?before=0"],
        ["GET", `/admin/audit?app=${encodeURIComponent(injection)}`],
        ["GET", "/admin/audit?limit=0"],
        ["GET", "/console/%2E%2E%2Fopenapi.json"],
        ["GET", "/console/main.ts"]
      ]
      for (const [method, path, body] of cases) {
        const what = `${method} ${path} ${JSON.stringify(body) ?? ""}`
        const reply = yield* admin(method, path, body)
        expect(reply.status, what).toBeGreaterThanOrEqual(400)
        expect(reply.status, what).toBeLessThan(500)
        expect(reply.body, what).toMatchObject({ ok: false, error: expect.any(String), message: expect.any(String) })
      }
      const misspelt = yield* admin("PUT", `/admin/apps/${appName}/limits`, { max_session: 3 })
      expect(misspelt.body.message).toContain("max_session")
      // Nothing was stored.
      expect((yield* admin("GET", "/admin/apps")).body).toEqual(before)
      expect((yield* admin("GET", "/admin/sessions")).body.count).toBe(0)
      expect((yield* request("GET", "/healthz")).status).toBe(200)
    }).pipe(Effect.provide(gateway())))
})
