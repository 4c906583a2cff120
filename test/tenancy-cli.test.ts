/**
 * The tenancy commands of the admin CLI (`bin/clawdforge.mjs`, real processes) on a SQLite ledger:
 * `apps limits`, `apps env set|unset|list`, `usage`; bad input is refused and changes nothing.
 */
import { describe, expect, it } from "vitest"
import { Effect } from "effect"
import { existsSync, readFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { AppName } from "../src/domain/Ids.js"
import { Usage } from "../src/services/tenancy/Usage.js"
import { runToExit } from "./support/GatewayProcess.js"
import { insertSession, layerTenancy, ledgerFile } from "./support/Tenancy.js"

const root = resolve(import.meta.dirname, "..")
const secretKey = "an operator's secret key, 16+"
const value = "sk-ant-PLAINTEXT-cli-0123456789"

/** One `clawdforge ...` process on the given ledger, `app-a` configured by CLAWDFORGE_APP_TOKENS. */
const clawdforge = (db: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  runToExit([join(root, "bin", "clawdforge.mjs"), ...args], {
    CLAWDFORGE_DB: db,
    CLAWDFORGE_APP_TOKENS: "app-a=token-app-a-0123456789",
    CLAWDFORGE_APP_LIMITS: JSON.stringify({ "*": { max_sessions: 3 } }),
    CLAWDFORGE_SECRET_KEY: "",
    ...env
  })

const limitsJson = async (db: string) => {
  const shown = await clawdforge(db, ["apps", "limits", "app-a", "--json"])
  expect(shown.code, shown.stderr).toBe(0)
  return JSON.parse(shown.stdout)
}

describe("clawdforge apps limits", () => {
  it("shows, sets and clears an app's limits; bad numbers and unknown apps change nothing", async () => {
    const db = ledgerFile()
    const shown = await clawdforge(db, ["apps", "limits", "app-a"])
    expect(shown.code, shown.stderr).toBe(0)
    expect(shown.stdout).toMatch(/max_sessions\s+3\s+CLAWDFORGE_APP_LIMITS \*/)
    expect(shown.stdout).toMatch(/turns_per_minute\s+none\s+none/)

    const set = await clawdforge(db, [
      "apps", "limits", "app-a", "--max-sessions", "2", "--turns-per-minute", "30", "--daily-cost-usd", "1.5"
    ])
    expect(set.code, set.stderr).toBe(0)
    expect(set.stderr).toContain("within 5 seconds")
    const after = {
      app: "app-a",
      limits: { max_sessions: 2, turns_per_minute: 30, daily_cost_usd: 1.5 },
      sources: { max_sessions: "ledger", turns_per_minute: "ledger", daily_cost_usd: "ledger" },
      cost_today_usd: 0
    }
    expect(await limitsJson(db)).toEqual(after)

    const refused = await Promise.all([
      ["--max-sessions", "-1"],
      ["--max-sessions", "abc"],
      ["--turns-per-minute", "1.5"],
      ["--daily-cost-usd", "-2"],
      ["--daily-cost-usd", "lots"],
      // One bad value among good ones: nothing is set.
      ["--max-sessions", "9", "--turns-per-minute", "-3"]
    ].map((flags) => clawdforge(db, ["apps", "limits", "app-a", ...flags])))
    for (const result of refused) expect(result.code, result.stdout + result.stderr).toBe(1)
    const unknown = await clawdforge(db, ["apps", "limits", "nope", "--max-sessions", "1"])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr.trim()).toBe("clawdforge: No app nope (neither in CLAWDFORGE_APP_TOKENS nor active in the ledger)")
    expect(await limitsJson(db)).toEqual(after)

    // Only what is given changes.
    expect((await clawdforge(db, ["apps", "limits", "app-a", "--max-sessions", "0"])).code).toBe(0)
    expect((await limitsJson(db)).limits).toEqual({ max_sessions: 0, turns_per_minute: 30, daily_cost_usd: 1.5 })

    const cleared = await clawdforge(db, ["apps", "limits", "app-a", "--clear"])
    expect(cleared.code, cleared.stderr).toBe(0)
    expect((await limitsJson(db)).limits).toEqual({ max_sessions: 3, turns_per_minute: null, daily_cost_usd: null })
  }, 60_000)

  it("a malformed CLAWDFORGE_APP_LIMITS stops the gateway with one line naming it", async () => {
    const result = await clawdforge(ledgerFile(), ["serve"], {
      CLAWDFORGE_APP_LIMITS: JSON.stringify({ "app-a": { max_sessions: -2 } })
    })
    expect(result.code).toBe(1)
    expect(result.stderr.trim().split("\n")).toHaveLength(1)
    expect(result.stderr.trim()).toBe(
      "clawdforge: invalid configuration: CLAWDFORGE_APP_LIMITS: app-a.max_sessions: Expected a whole number, 0 or more, or null for no limit"
    )
  })
})

describe("clawdforge apps env", () => {
  it("set, list and unset an app's agent environment; no key, bad names and unknown apps change nothing", async () => {
    const db = ledgerFile()
    const withKey = { CLAWDFORGE_SECRET_KEY: secretKey }

    const [noKey, badName, noEquals, unknownApp] = await Promise.all([
      clawdforge(db, ["apps", "env", "set", "app-a", `ANTHROPIC_API_KEY=${value}`]),
      clawdforge(db, ["apps", "env", "set", "app-a", `1BAD=${value}`], withKey),
      clawdforge(db, ["apps", "env", "set", "app-a", value], withKey),
      clawdforge(db, ["apps", "env", "set", "nope", `ANTHROPIC_API_KEY=${value}`], withKey)
    ])
    expect(noKey.code).toBe(1)
    expect(noKey.stderr.trim()).toBe("clawdforge: CLAWDFORGE_SECRET_KEY is not set: apps' agent environments need it")
    expect(badName.code).toBe(1)
    expect(badName.stderr.trim().split("\n")).toHaveLength(1)
    expect(noEquals.code).toBe(1)
    expect(unknownApp.code).toBe(1)
    for (const result of [noKey, badName, noEquals, unknownApp]) {
      expect(result.stdout + result.stderr).not.toContain(value)
    }
    const empty = await clawdforge(db, ["apps", "env", "list", "app-a", "--json"])
    expect(JSON.parse(empty.stdout)).toEqual([])

    const set = await Promise.all([
      clawdforge(db, ["apps", "env", "set", "app-a", `ANTHROPIC_API_KEY=${value}`], withKey),
      clawdforge(db, ["apps", "env", "set", "app-a", "MODE=a=b"], withKey)
    ])
    for (const result of set) {
      expect(result.code, result.stderr).toBe(0)
      expect(result.stdout + result.stderr).not.toContain(value)
    }
    // Names need no key, and never show a value.
    const listed = await clawdforge(db, ["apps", "env", "list", "app-a"])
    expect(listed.code, listed.stderr).toBe(0)
    expect(listed.stdout.trim().split("\n")).toEqual(["ANTHROPIC_API_KEY", "MODE"])
    expect(listed.stdout).not.toContain(value)

    for (const file of [db, `${db}-wal`]) {
      if (existsSync(file)) expect(readFileSync(file).includes(Buffer.from("PLAINTEXT"))).toBe(false)
    }

    const unset = await clawdforge(db, ["apps", "env", "unset", "app-a", "MODE"])
    expect(unset.code, unset.stderr).toBe(0)
    expect(unset.stdout).toContain("Removed MODE")
    const again = await clawdforge(db, ["apps", "env", "unset", "app-a", "MODE"])
    expect(again.stdout).toContain("has no MODE")
    expect(JSON.parse((await clawdforge(db, ["apps", "env", "list", "app-a", "--json"])).stdout)).toEqual([
      "ANTHROPIC_API_KEY"
    ])
  }, 60_000)
})

describe("clawdforge usage", () => {
  it("prints what apps used, in all, by day or by agent; a bad option is refused", async () => {
    const db = ledgerFile()
    const d0 = Date.UTC(2026, 0, 10) / 1000
    await Effect.runPromise(Effect.gen(function*() {
      yield* insertSession({ id: "a".repeat(24), app: "app-a", agent: "echo", createdAt: d0 }, [
        { endedAt: d0 + 1, input: 10, output: 1, cost: 0.25 }
      ])
      yield* insertSession({ id: "b".repeat(24), app: "app-b", agent: "claude", createdAt: d0 + 86400 }, [
        { endedAt: d0 + 86401, input: 20, output: 2, cost: 0.5 }
      ])
      yield* (yield* Usage).recordRun(AppName.make("app-a"), {
        at: d0 + 86402,
        status: "completed",
        durationMs: 5,
        usage: { input_tokens: 1, output_tokens: 1, total_tokens: 2, cost_usd: 0.125 }
      })
    }).pipe(Effect.provide(layerTenancy({ CLAWDFORGE_DB: db })), Effect.scoped))

    const [all, byDay, byAgent, window, table, bad] = await Promise.all([
      clawdforge(db, ["usage", "--json"]),
      clawdforge(db, ["usage", "--app", "app-a", "--group-by", "day", "--json"]),
      clawdforge(db, ["usage", "--group-by", "agent", "--json"]),
      clawdforge(db, ["usage", "--from", String(d0 + 86400), "--to", String(d0 + 2 * 86400), "--json"]),
      clawdforge(db, ["usage", "--group-by", "agent"]),
      clawdforge(db, ["usage", "--group-by", "week"])
    ])
    for (const result of [all, byDay, byAgent, window, table]) expect(result.code, result.stderr).toBe(0)
    expect(JSON.parse(all.stdout)).toEqual({
      totals: { turns: 2, sessions: 2, runs: 1, input_tokens: 31, output_tokens: 4, cost_usd: 0.875 },
      groups: []
    })
    expect(JSON.parse(byDay.stdout).groups).toEqual([
      { day: "2026-01-10", turns: 1, sessions: 1, runs: 0, input_tokens: 10, output_tokens: 1, cost_usd: 0.25 },
      { day: "2026-01-11", turns: 0, sessions: 0, runs: 1, input_tokens: 1, output_tokens: 1, cost_usd: 0.125 }
    ])
    expect(JSON.parse(byAgent.stdout).groups.map((g: { agent: string; runs: number }) => [g.agent, g.runs])).toEqual([
      ["claude", 1],
      ["echo", 0]
    ])
    expect(JSON.parse(window.stdout).totals).toMatchObject({ turns: 1, sessions: 1, runs: 1 })
    expect(table.stdout).toMatch(/AGENT\s+TURNS\s+SESSIONS\s+RUNS/)
    expect(table.stdout).toMatch(/total\s+2\s+2\s+1\s+31\s+4\s+0\.8750/)
    expect(bad.code).toBe(1)
  }, 60_000)
})
