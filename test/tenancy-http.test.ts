/**
 * Tenancy over HTTP (issue 13): usage and cost per turn, `GET /usage` and `GET /limits`, each
 * per-app limit refused with its code while another app goes on, the 30-create race, a budget
 * crossed by a running turn, and per-app agent environments reaching only their app's agents.
 * The scripted ACP agent runs as a real child process behind a real loopback server.
 */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { AppSecrets } from "../src/services/tenancy/AppSecrets.js"
import { agentLogFile, agentText, readAgentLog } from "./support/ScriptedAgent.js"
import { appName, appToken, layerScriptedGateway, otherToken, request } from "./support/TestGateway.js"
import { tempDir } from "./support/TempDirs.js"

const create = (token = appToken) => request("POST", "/sessions", { token, body: { agent: "scripted" } })
const turn = (sid: string, prompt: string, token = appToken) =>
  request("POST", `/sessions/${sid}/turn`, { token, body: { prompt } })
const limitsConfig = (limits: unknown, extra: Record<string, string> = {}) =>
  layerScriptedGateway(agentLogFile(), { CLAWDFORGE_APP_LIMITS: JSON.stringify(limits), ...extra })

describe("usage", () => {
  it.scopedLive("a turn's cost is what the session's usage_update total grew by; GET /usage sums the caller's own", () =>
    Effect.gen(function*() {
      const sid = (yield* create()).body.session_id
      const first = yield* turn(sid, "cost 0.25")
      expect(first.body.usage).toEqual({ input_tokens: 9, output_tokens: 10, total_tokens: 19, cost_usd: 0.25 })
      // The agent reports 0.75 in all: this turn cost 0.5.
      expect((yield* turn(sid, "cost 0.5")).body.usage.cost_usd).toBe(0.5)
      // No usage_update: no cost reported.
      expect((yield* turn(sid, "hello")).body.usage.cost_usd).toBeNull()
      const stored = (yield* request("GET", `/sessions/${sid}/turns/2`, { token: appToken })).body
      expect(stored.usage).toEqual({ input_tokens: 8, output_tokens: 10, total_tokens: 18, cost_usd: 0.5 })
      // Another app's use does not count.
      const other = (yield* create(otherToken)).body.session_id
      yield* turn(other, "cost 3", otherToken)

      const usage = yield* request("GET", "/usage", { token: appToken })
      expect(usage.status).toBe(200)
      expect(usage.body).toMatchObject({
        ok: true,
        totals: { turns: 3, sessions: 1, runs: 0, input_tokens: 9 + 8 + 5, output_tokens: 10 + 10 + 11, cost_usd: 0.75 },
        groups: []
      })
      const byAgent = (yield* request("GET", "/usage?group_by=agent", { token: appToken })).body.groups
      expect(byAgent).toEqual([expect.objectContaining({ agent: "scripted", turns: 3, cost_usd: 0.75 })])
      const byDay = (yield* request("GET", "/usage?group_by=day", { token: appToken })).body.groups
      expect(byDay).toEqual([expect.objectContaining({ day: new Date().toISOString().slice(0, 10), turns: 3 })])
      // A window in the past holds nothing.
      expect((yield* request("GET", "/usage?from=0&to=1000", { token: appToken })).body.totals.turns).toBe(0)
      for (const query of ["group_by=week", "from=-1", "from=abc", "to=1.5"]) {
        const bad = yield* request("GET", `/usage?${query}`, { token: appToken })
        expect(bad.status, query).toBe(400)
        expect(bad.body.ok).toBe(false)
      }

      const metrics = yield* Effect.flatMap(HttpClient.HttpClient, (client) =>
        client.execute(HttpClientRequest.get("/metrics").pipe(HttpClientRequest.bearerToken(appToken))).pipe(
          Effect.flatMap((r) => r.text),
          Effect.scoped
        ))
      expect(metrics).toMatch(new RegExp(`clawdforge_app_cost_usd_total\\{app="${appName}"\\} 0\\.75`))
      expect(metrics).toMatch(new RegExp(`clawdforge_app_tokens_total\\{app="${appName}",kind="input"\\} 22`))
    }).pipe(Effect.provide(layerScriptedGateway(agentLogFile()))))
})

describe("/run usage", () => {
  const dir = tempDir("clawdforge-claude-")
  const claude = join(dir, "claude")
  const fake = fileURLToPath(new URL("./fixtures/fake-claude.mjs", import.meta.url))
  writeFileSync(claude, `#!/bin/sh\nexec '${process.execPath}' '${fake}' "$@"\n`)
  chmodSync(claude, 0o755)

  it.scopedLive("a run is stored with what claude reported; it counts against the budget", () =>
    Effect.gen(function*() {
      const run = (prompt: string) => request("POST", "/run", { token: appToken, body: { prompt } })
      expect((yield* run("hello cost:0.4")).status).toBe(200)
      expect((yield* run("is-error cost:0.25")).status).toBe(502)
      const usage = (yield* request("GET", "/usage?group_by=agent", { token: appToken })).body
      expect(usage.totals).toMatchObject({ runs: 2, turns: 0, input_tokens: 2, output_tokens: 2, cost_usd: 0.65 })
      expect(usage.groups).toEqual([expect.objectContaining({ agent: "claude", runs: 2 })])
      const refused = yield* run("hello")
      expect(refused.status).toBe(429)
      expect(refused.body).toMatchObject({ ok: false, error: "budget_exhausted" })
      expect((yield* request("POST", "/run", { token: otherToken, body: { prompt: "hello" } })).status).toBe(200)
    }).pipe(Effect.provide(layerScriptedGateway(agentLogFile(), {
      CLAWDFORGE_CLAUDE_BIN: claude,
      CLAWDFORGE_APP_LIMITS: JSON.stringify({ [appName]: { daily_cost_usd: 0.6 } })
    }))))
})

describe("per-app limits", () => {
  it.scopedLive("max_sessions: beyond it a create is 429 app_session_limit; another app is unaffected", () =>
    Effect.gen(function*() {
      const [a, b] = [yield* create(), yield* create()]
      expect([a.status, b.status]).toEqual([200, 200])
      const refused = yield* create()
      expect(refused.status).toBe(429)
      expect(refused.body).toMatchObject({ ok: false, error: "app_session_limit", max_sessions: 2 })
      expect((yield* create(otherToken)).status).toBe(200)
      const limits = (yield* request("GET", "/limits", { token: appToken })).body
      expect(limits).toMatchObject({
        ok: true,
        app: appName,
        limits: { max_sessions: 2, turns_per_minute: null, daily_cost_usd: null },
        use: { live_sessions: 2 }
      })
      // Closing one frees its slot.
      expect((yield* request("DELETE", `/sessions/${a.body.session_id}`, { token: appToken })).status).toBe(200)
      expect((yield* create()).status).toBe(200)
    }).pipe(Effect.provide(limitsConfig({ [appName]: { max_sessions: 2 } }))))

  it.scopedLive("30 racing creates of one app with max_sessions 5 give exactly 5 sessions", () =>
    Effect.gen(function*() {
      const replies = yield* Effect.all(Array.from({ length: 30 }, () => create()), { concurrency: "unbounded" })
      const statuses = replies.map((r) => r.status)
      expect(statuses.filter((s) => s === 200)).toHaveLength(5)
      expect(statuses.filter((s) => s === 429)).toHaveLength(25)
      expect((yield* request("GET", "/sessions", { token: appToken })).body.count).toBe(5)
    }).pipe(Effect.provide(limitsConfig({ "*": { max_sessions: 5 } }, { CLAWDFORGE_MAX_LIVE_SESSIONS: "40" }))), 60_000)

  it.scopedLive("turns_per_minute: RateLimit-* headers, then 429 rate_limited with Retry-After; another app goes on", () =>
    Effect.gen(function*() {
      const sid = (yield* create()).body.session_id
      for (const remaining of [2, 1, 0]) {
        const ok = yield* turn(sid, "hello")
        expect(ok.status).toBe(200)
        expect(ok.response.headers["ratelimit-limit"]).toBe("3")
        expect(ok.response.headers["ratelimit-remaining"]).toBe(String(remaining))
        expect(Number(ok.response.headers["ratelimit-reset"])).toBeGreaterThan(0)
      }
      const refused = yield* turn(sid, "hello")
      expect(refused.status).toBe(429)
      expect(refused.body).toMatchObject({ ok: false, error: "rate_limited", turns_per_minute: 3 })
      const retryAfter = Number(refused.response.headers["retry-after"])
      expect(retryAfter).toBeGreaterThan(0)
      expect(retryAfter).toBeLessThanOrEqual(60)
      // Refused turns are not stored.
      expect((yield* request("GET", `/sessions/${sid}`, { token: appToken })).body.turn_count).toBe(3)
      const queued = yield* request("POST", `/sessions/${sid}/turns`, { token: appToken, body: { prompt: "hi" } })
      expect(queued.status).toBe(429)
      // The other app has no rate: no headers, no refusal.
      const other = (yield* create(otherToken)).body.session_id
      for (let i = 0; i < 4; i++) {
        const ok = yield* turn(other, "hello", otherToken)
        expect(ok.status).toBe(200)
        expect(ok.response.headers["ratelimit-limit"]).toBeUndefined()
      }
      expect((yield* request("GET", "/limits", { token: appToken })).body.use.turns_this_minute).toBe(3)
    }).pipe(Effect.provide(limitsConfig({ [appName]: { turns_per_minute: 3 } }))))

  it.scopedLive("daily_cost_usd: a turn that crosses it completes; then creates and turns are 429 budget_exhausted", () =>
    Effect.gen(function*() {
      const sid = (yield* create()).body.session_id
      const crossing = yield* turn(sid, "cost 1.5 300")
      expect(crossing.status).toBe(200)
      expect(agentText(crossing.body.events)).toBe("cost: 1.5")
      const refused = yield* turn(sid, "hello")
      expect(refused.status).toBe(429)
      expect(refused.body).toMatchObject({ ok: false, error: "budget_exhausted", daily_cost_usd: 1, cost_today_usd: 1.5 })
      expect(refused.body.resets_at % 86400).toBe(0)
      expect(Number(refused.response.headers["retry-after"])).toBeGreaterThan(0)
      expect((yield* create()).body.error).toBe("budget_exhausted")
      // The other app has its own budget.
      const other = (yield* create(otherToken)).body.session_id
      expect((yield* turn(other, "cost 0.5", otherToken)).status).toBe(200)
      expect((yield* turn(other, "hello", otherToken)).status).toBe(200)
      const limits = (yield* request("GET", "/limits", { token: appToken })).body
      expect(limits.use.cost_today_usd).toBe(1.5)
    }).pipe(Effect.provide(limitsConfig({ "*": { daily_cost_usd: 1 } }))))
})

describe("per-app agent environment", () => {
  const secret = "sk-test-app-a-7f3c9e1d2b"
  const digest = `sha256:${createHash("sha256").update(secret).digest("hex").slice(0, 16)}`
  const dir = tempDir("clawdforge-secrets-")
  const db = join(dir, "ledger.db")
  const log = agentLogFile()

  it.scopedLive("reaches only its app's agents, over the registry's env, and is never stored in plain text", () =>
    Effect.gen(function*() {
      const secrets = yield* AppSecrets
      yield* secrets.set(appName as any, "DEMO_API_KEY", secret)
      yield* secrets.set(appName as any, "SCRIPTED_AGENT_LOG", "/dev/null")
      const mine = (yield* create()).body.session_id
      expect(agentText((yield* turn(mine, "env DEMO_API_KEY")).body.events)).toBe(`env: DEMO_API_KEY ${digest}`)
      const theirs = (yield* create(otherToken)).body.session_id
      expect(agentText((yield* turn(theirs, "env DEMO_API_KEY", otherToken)).body.events)).toBe("env: DEMO_API_KEY unset")
      // Nothing the gateway answers or stores holds the value.
      const state = yield* request("GET", `/sessions/${mine}/turns/1`, { token: appToken })
      expect(JSON.stringify(state.body)).not.toContain(secret)
      for (const file of [db, `${db}-wal`]) {
        if (existsSync(file)) expect(readFileSync(file).includes(Buffer.from(secret)), file).toBe(false)
      }
      // The app's SCRIPTED_AGENT_LOG overrides the registry's: only the other app's agent wrote to the log.
      expect(readAgentLog(log).filter((line) => line.event === "session/prompt")).toHaveLength(1)
    }).pipe(Effect.provide(layerScriptedGateway(log, {
      CLAWDFORGE_DB: db,
      CLAWDFORGE_SECRET_KEY: "a-test-secret-key-of-some-length"
    }))))
})
