/**
 * The real Claude ACP adapter (`@agentclientprotocol/claude-agent-acp`), installed with npm as the
 * README tells users to (once, then cached under ~/.cache/clawdforge-test: it brings a Claude Code
 * binary of a few hundred MB), run without credentials, with a throwaway HOME, behind a real
 * loopback server: create works, its capabilities are learned, a turn asks for authentication
 * (502 agent_auth_required), and close leaves nothing running.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { AgentPool } from "../src/services/sessions/AgentPool.js"
import { bwrapAvailable } from "./support/Bubblewrap.js"
import { appToken, layerTestGateway, request } from "./support/TestGateway.js"
import { claudeAdapterBin, claudeAdapterProcesses } from "./support/ClaudeAdapter.js"
import { tempDir } from "./support/TempDirs.js"

// The real Claude ACP adapter, installed once into the cache the tests and the bench share.
const adapterBin = claudeAdapterBin()
const adapterProcesses = claudeAdapterProcesses

const waitUntil = async (done: () => boolean, ms: number) => {
  const deadline = Date.now() + ms
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
  return done()
}

const gateway = (env: Record<string, string>) =>
  layerTestGateway({
    pool: AgentPool.Default,
    config: {
      // In its sandbox, as users run it (bubblewrap, when this machine has it).
      CLAWDFORGE_SANDBOX: sandbox,
      CLAWDFORGE_AGENTS: JSON.stringify({
        claude: { command: [adapterBin], env: { HOME: tempDir("clawdforge-claude-home-"), ...env } }
      })
    }
  })

const sandbox = bwrapAvailable ? "bwrap" : "off"

describe("the real Claude ACP adapter, without credentials", () => {
  it.scopedLive("create works, a turn asks for authentication, and close leaves no adapter process", () =>
    Effect.gen(function*() {
      const created = yield* request("POST", "/sessions", { token: appToken, body: { agent: "claude" } })
      expect(created.status, JSON.stringify(created.body)).toBe(200)
      const sid = created.body.session_id
      // The models and modes the adapter offers, and the ones the session runs with.
      const byCategory = Object.fromEntries(created.body.config_options.map((o: any) => [o.category, o]))
      const models = byCategory["model"].options.map((o: any) => o.value)
      const modes = byCategory["mode"].options.map((o: any) => o.value)
      expect(models).toContain("default")
      expect(modes).toContain("plan")
      expect(created.body.model).toBe(byCategory["model"].current_value)
      expect(created.body.mode).toBe(byCategory["mode"].current_value)
      const planned = yield* request("PATCH", `/sessions/${sid}`, { token: appToken, body: { mode: "plan" } })
      expect(planned.status, JSON.stringify(planned.body)).toBe(200)
      expect(planned.body.mode).toBe("plan")
      const refused = yield* request("PATCH", `/sessions/${sid}`, { token: appToken, body: { model: "no-such-model" } })
      expect(refused.body).toMatchObject({ ok: false, error: "invalid_config" })
      expect(refused.body.offered["model"]).toEqual(models)

      const agents = yield* request("GET", "/agents", { token: appToken })
      expect(agents.body.sandbox).toBe(sandbox)
      const claude = agents.body.agents.find((a: any) => a.name === "claude")
      expect(claude).toMatchObject({ available: true, capabilities: { load_session: true, resume: true, close: true } })

      const turn = yield* request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt: "hello" } })
      expect(turn.status).toBe(502)
      expect(turn.body).toMatchObject({ ok: false, error: "agent_auth_required" })
      expect(turn.body.message).toContain("Authentication required")

      expect(adapterProcesses().length).toBeGreaterThan(0)
      expect((yield* request("DELETE", `/sessions/${sid}`, { token: appToken })).status).toBe(200)
      expect(yield* Effect.promise(() => waitUntil(() => adapterProcesses().length === 0, 5_000))).toBe(true)
    }).pipe(Effect.provide(gateway({ IS_SANDBOX: "1" }))), 60_000)

})
