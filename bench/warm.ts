/**
 * Warm starts: how long does `POST /sessions` take when the app keeps a ready session of the agent
 * (`warm: {"agent": 1}`)? The real `claude-agent-acp` adapter (test/support/ClaudeAdapter.ts, run
 * without credentials: `session/new` works without them), and the demo agent made to take 1 s
 * to start, warm against cold (the other app, which keeps none). Between creates the bench waits
 * until the pool has refilled (GET /admin/overview's `pool.ready`), as a gateway between two
 * users' creates would be.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type Bench, ms, type Question } from "./support/bench.js"
import { claudeAdapterBin } from "../test/support/ClaudeAdapter.js"
import { type ClawdforgeGateway, otherToken, startClawdforge, stopGateway, token } from "./support/gateways.js"
import { expectOk } from "./support/http.js"
import { demoAgent } from "./support/paths.js"
import { now, summary } from "./support/stats.js"

const startDelayMs = 1000
const adminToken = "bench-admin-token-0123456789"
const creates = { demo: 10, claude: 8 }
const warmup = 2

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms))

/** Waits until the gateway holds `count` ready sessions (60 s at most). */
const untilReady = async (gateway: ClawdforgeGateway, count: number) => {
  const deadline = Date.now() + 60_000
  for (;;) {
    const overview = expectOk(await gateway.call("GET", "/admin/overview", undefined, adminToken), "overview")
    if ((overview.pool.ready ?? 0) >= count) return
    if (Date.now() > deadline) throw new Error(`warm: no ${count} ready sessions within 60 s`)
    await sleep(100)
  }
}

/**
 * Times `count` creates of `agent` by the app of `bearer` after `warmup` untimed ones (a fresh gateway's
 * first creates pay for its JIT), each closed outside the timing; `before` runs first each time.
 */
const timeCreates = async (
  gateway: ClawdforgeGateway,
  agent: string,
  bearer: string,
  count: number,
  before: () => Promise<void>
) => {
  const samples: Array<number> = []
  for (let i = 0; i < warmup + count; i++) {
    await before()
    const t0 = now()
    const created = expectOk(await gateway.call("POST", "/sessions", { agent }, bearer), `create ${agent}`)
    if (i >= warmup) samples.push(now() - t0)
    expectOk(await gateway.call("DELETE", `/sessions/${created.session_id}`, undefined, bearer), "close")
  }
  return summary(samples)
}

export const warm: Question = {
  name: "warm",
  run: async (bench: Bench) => {
    const adapter = claudeAdapterBin(bench.note)
    // A throwaway HOME for the adapter (its ~/.claude), never the user's.
    const home = mkdtempSync(join(tmpdir(), "clawdforge-bench-claude-home-"))
    const gateway = await startClawdforge({
      env: {
        CLAWDFORGE_ADMIN_TOKEN: adminToken,
        CLAWDFORGE_AGENTS: JSON.stringify({
          slow: { command: [process.execPath, demoAgent], env: { CLAWDFORGE_DEMO_START_DELAY_MS: String(startDelayMs) } },
          claude: { command: [adapter], env: { HOME: home, IS_SANDBOX: "1" } }
        }),
        CLAWDFORGE_APP_LIMITS: JSON.stringify({ bench: { warm: { slow: 1, claude: 1 } } })
      }
    })
    try {
      // Ready and settled (the last create's close and the refill's start are over; the adapter's Claude
      // Code goes on starting for a while after session/new) before each create.
      const refilled = (settleMs: number) => async () => {
        await untilReady(gateway, 2)
        await sleep(settleMs)
      }
      bench.note("warm: demo agent with a 1 s start-up, warm then cold")
      const demoWarm = await timeCreates(gateway, "slow", token, creates.demo, refilled(1000))
      const demoCold = await timeCreates(gateway, "slow", otherToken, creates.demo, refilled(0))
      bench.note("warm: claude-agent-acp, warm")
      const claudeWarm = await timeCreates(gateway, "claude", token, creates.claude, refilled(2000))
      return {
        results: { demoWarm, demoCold, claudeWarm, startDelayMs },
        rows: [
          {
            metric: "create p50 ms, claude-agent-acp, warm",
            gateway: ms(claudeWarm.p50),
            target: "< 100 ms",
            pass: claudeWarm.p50 < 100,
            note: `p99 ${ms(claudeWarm.p99)}, ${creates.claude} creates (cold about 1.5 s)`
          },
          {
            metric: "create p50 ms, demo 1 s start, warm vs cold",
            gateway: ms(demoWarm.p50),
            direct: `${ms(demoCold.p50)} cold`,
            target: "< 50 ms vs >= 1 s",
            pass: demoWarm.p50 < 50 && demoCold.p50 >= startDelayMs,
            note: `warm p99 ${ms(demoWarm.p99)}, ${creates.demo} creates each`
          }
        ]
      }
    } finally {
      await stopGateway(gateway)
      rmSync(home, { recursive: true, force: true })
    }
  }
}
