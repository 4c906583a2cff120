/**
 * Warm starts (`warm: {"agent": N}`): ready sessions of a demo agent that takes 1 s to start, over a
 * real loopback gateway with real agent processes. A create takes one in milliseconds (its settings
 * applied), the pool refills, the app sees nothing of ready sessions, a create needing a slot takes
 * it from one, an environment change replaces them, revoking the app stops them, and stopping the
 * gateway leaves none behind.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { AppName } from "../src/domain/Ids.js"
import { scriptedAgentPath } from "../src/services/agents/AgentRegistry.js"
import { AppTokens } from "../src/services/ledger/AppTokens.js"
import { AgentPool } from "../src/services/sessions/AgentPool.js"
import { Sessions } from "../src/services/sessions/Sessions.js"
import { AppLimits } from "../src/services/tenancy/AppLimits.js"
import { AppSecrets } from "../src/services/tenancy/AppSecrets.js"
import { bwrapAvailable } from "./support/Bubblewrap.js"
import { poll } from "./support/Poll.js"
import { agentLogFile, agentText, isAlive, readAgentLog, startedPids } from "./support/ScriptedAgent.js"
import { claudeAdapterBin, claudeAdapterProcesses } from "./support/ClaudeAdapter.js"
import { tempDir } from "./support/TempDirs.js"
import { appName, appToken, layerTestGateway, otherToken, request } from "./support/TestGateway.js"

const startDelayMs = 1_000

// The real Claude ACP adapter, installed once into the cache the tests and the bench share.
const adapterBin = claudeAdapterBin()
const adapterProcesses = claudeAdapterProcesses

const gateway = (log: string, config: Record<string, string>) =>
  layerTestGateway({
    pool: AgentPool.Default,
    config: {
      CLAWDFORGE_AGENTS: JSON.stringify({
        slow: {
          command: [process.execPath, scriptedAgentPath],
          env: { SCRIPTED_AGENT_LOG: log, CLAWDFORGE_DEMO_START_DELAY_MS: String(startDelayMs) }
        },
        quick: { command: [process.execPath, scriptedAgentPath], env: { SCRIPTED_AGENT_LOG: log } }
      }),
      CLAWDFORGE_SECRET_KEY: "secret-key-0123456789abcdef",
      ...config
    }
  })

/** Pids of the agents that answered `session/new` (ready or taken), in order. */
const newSessionPids = (log: string) => readAgentLog(log).filter((line) => line.event === "session/new").map((line) => line.pid)
const alivePids = (log: string) => startedPids(log).filter(isAlive)
const readyCount = Effect.flatMap(Sessions, (sessions) => Effect.map(sessions.admin.pool, (pool) => pool.ready ?? 0))

const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const started = performance.now()
    const result = yield* effect
    return { result, ms: performance.now() - started }
  })

describe("warm starts", () => {
  it.scopedLive("a create takes a ready session in milliseconds, settings applied, and the pool refills", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      yield* poll(readyCount, (n) => n === 1)
      expect(newSessionPids(log)).toHaveLength(1)
      // The app sees nothing of it.
      const listed = yield* request("GET", "/sessions", { token: appToken })
      expect(listed.body.sessions).toEqual([])
      const limits = yield* request("GET", "/limits", { token: appToken })
      expect(limits.body.limits.warm).toEqual({ slow: 1 })
      expect(limits.body.use.live_sessions).toBe(0)

      // Cold, for the other app (no warm limit): the agent's start-up is in it.
      const cold = yield* timed(request("POST", "/sessions", { token: otherToken, body: { agent: "slow" } }))
      expect(cold.result.status, JSON.stringify(cold.result.body)).toBe(200)
      expect(cold.ms).toBeGreaterThanOrEqual(startDelayMs)

      // Warm: the ready one, with the settings asked for.
      const warm = yield* timed(request("POST", "/sessions", {
        token: appToken,
        body: { agent: "slow", model: "demo-large", mode: "plan", meta: { ticket: 7 }, permission_mode: "deny-all" }
      }))
      expect(warm.result.status, JSON.stringify(warm.result.body)).toBe(200)
      expect(warm.ms).toBeLessThan(500)
      const session = warm.result.body
      expect(session).toMatchObject({
        ok: true,
        app_name: appName,
        agent: "slow",
        model: "demo-large",
        mode: "plan",
        meta: { ticket: 7 },
        permission_mode: "deny-all",
        turn_count: 0,
        status: "open"
      })
      const turn = yield* request("POST", `/sessions/${session.session_id}/turn`, { token: appToken, body: { prompt: "config" } })
      expect(turn.status, JSON.stringify(turn.body)).toBe(200)
      expect(JSON.parse(agentText(turn.body.events).replace(/^config: /, ""))).toMatchObject({ mode: "plan", model: "demo-large" })
      // A deny-mode session: the agent's permission request is answered by the session's policy.
      const asked = yield* request("POST", `/sessions/${session.session_id}/turn`, { token: appToken, body: { prompt: "permission edit" } })
      expect(agentText(asked.body.events)).toContain("permission: reject")

      // It is the app's like any other, and only it is listed.
      const after = yield* request("GET", "/sessions", { token: appToken })
      expect(after.body.sessions.map((s: any) => s.session_id)).toEqual([session.session_id])

      // The pool refills: a third agent process starts and gets its session/new.
      yield* poll(readyCount, (n) => n === 1, "5 seconds")
      expect(newSessionPids(log)).toHaveLength(3)
    }).pipe(Effect.provide(gateway(log, { CLAWDFORGE_APP_LIMITS: JSON.stringify({ [appName]: { warm: { slow: 1 } } }) })))
  }, 30_000)

  it.scopedLive("ready sessions give up their slots, are replaced on an env change, stop on revocation and shutdown", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      yield* Effect.gen(function*() {
        // Two slots, both held by the app's ready sessions.
        yield* poll(readyCount, (n) => n === 2)
        const firstReady = alivePids(log)
        expect(firstReady).toHaveLength(2)

        // A create of another app needs a slot: a ready session gives it up.
        const other = yield* request("POST", "/sessions", { token: otherToken, body: { agent: "quick" } })
        expect(other.status, JSON.stringify(other.body)).toBe(200)
        yield* poll(Effect.sync(() => firstReady.filter(isAlive).length), (n) => n === 1)
        // No refill takes the slot back while the pool is full.
        yield* Effect.sleep("1500 millis")
        expect(yield* readyCount).toBe(1)
        yield* request("DELETE", `/sessions/${other.body.session_id}`, { token: otherToken })
        yield* poll(readyCount, (n) => n === 2)

        // The app's environment changes: the ready sessions are replaced.
        const before = alivePids(log)
        yield* (yield* AppSecrets).set(AppName.make(appName), "WARM_TEST", "one")
        yield* poll(Effect.sync(() => before.filter(isAlive).length), (n) => n === 0, "10 seconds")
        yield* poll(readyCount, (n) => n === 2, "10 seconds")
        const replaced = yield* request("POST", "/sessions", { token: appToken, body: { agent: "slow" } })
        const env = yield* request("POST", `/sessions/${replaced.body.session_id}/turn`, { token: appToken, body: { prompt: "env WARM_TEST" } })
        expect(agentText(env.body.events)).toMatch(/^env: WARM_TEST sha256:/)

        // An app from the ledger, revoked: its ready sessions stop.
        const tokens = yield* AppTokens
        const appC = AppName.make("app-c")
        yield* tokens.add(appC)
        yield* request("DELETE", `/sessions/${replaced.body.session_id}`, { token: appToken })
        yield* (yield* AppLimits).set(appC, { warm: { quick: 1 } })
        yield* (yield* AppLimits).set(AppName.make(appName), { warm: { slow: 0 } })
        yield* poll(readyCount, (n) => n === 1, "10 seconds")
        const appCPids = alivePids(log)
        expect(appCPids).toHaveLength(1)
        yield* tokens.revoke(appC)
        yield* poll(Effect.sync(() => appCPids.filter(isAlive).length), (n) => n === 0, "5 seconds")
        expect(yield* readyCount).toBe(0)

        // Ready again, then the gateway stops with them.
        yield* (yield* AppLimits).set(AppName.make(appName), { warm: { slow: 2 } })
        yield* poll(readyCount, (n) => n === 2, "10 seconds")
        expect(alivePids(log).length).toBe(2)
      }).pipe(
        Effect.provide(gateway(log, {
          CLAWDFORGE_MAX_LIVE_SESSIONS: "2",
          CLAWDFORGE_APP_LIMITS: JSON.stringify({ [appName]: { warm: { slow: 2 } } })
        }))
      )
      // The gateway's scope is closed: nothing of the ready sessions is left.
      expect(startedPids(log).length).toBeGreaterThanOrEqual(7)
      yield* poll(Effect.sync(() => alivePids(log).length), (n) => n === 0, "5 seconds")
    })
  }, 60_000)

  it.scopedLive("the real claude-agent-acp adapter, taken warm: created in milliseconds, a working session", () =>
    Effect.gen(function*() {
      yield* Effect.gen(function*() {
        // Spawn, initialize and the first session/new take the adapter 1.5 s or so: all before the create.
        yield* poll(readyCount, (n) => n === 1, "60 seconds")
        expect((yield* request("GET", "/sessions", { token: appToken })).body.sessions).toEqual([])
        // Let the adapter settle (its Claude Code process goes on starting after session/new), as a ready session does.
        yield* Effect.sleep("3 seconds")
        const created = yield* timed(request("POST", "/sessions", { token: appToken, body: { agent: "claude" } }))
        expect(created.result.status, JSON.stringify(created.result.body)).toBe(200)
        expect(created.ms).toBeLessThan(500)
        const turn = yield* request("POST", `/sessions/${created.result.body.session_id}/turn`, {
          token: appToken,
          body: { prompt: "hello" }
        })
        expect(turn.body).toMatchObject({ ok: false, error: "agent_auth_required" })
        // The next one is on its way.
        yield* poll(readyCount, (n) => n === 1, "60 seconds")
      }).pipe(Effect.provide(layerTestGateway({
        pool: AgentPool.Default,
        config: {
          CLAWDFORGE_SANDBOX: bwrapAvailable ? "bwrap" : "off",
          CLAWDFORGE_AGENTS: JSON.stringify({
            claude: { command: [adapterBin], env: { HOME: tempDir("clawdforge-claude-home-"), IS_SANDBOX: "1" } }
          }),
          CLAWDFORGE_APP_LIMITS: JSON.stringify({ [appName]: { warm: { claude: 1 } } })
        }
      })))
      // Stopped with the gateway: no adapter process is left.
      yield* poll(Effect.sync(() => adapterProcesses().length), (n) => n === 0, "10 seconds")
    }), 120_000)
})
