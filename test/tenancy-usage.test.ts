/**
 * What apps used (issue 13): turns by when they ended (with their session's app and agent),
 * sessions by when they were created, and `/run` jobs, in a window, in all or by day or agent.
 */
import { describe, expect, it } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import { AppName } from "../src/domain/Ids.js"
import { Ledger } from "../src/services/ledger/Ledger.js"
import { claudeRunUsage, Usage } from "../src/services/tenancy/Usage.js"
import { insertSession, layerTenancy } from "./support/Tenancy.js"

const app = AppName.make("app-a")
const other = AppName.make("app-b")
const day = 86400
// 2026-01-10 00:00 UTC
const d0 = Date.UTC(2026, 0, 10) / 1000

const seed = Effect.gen(function*() {
  yield* insertSession({ id: "a".repeat(24), app, agent: "echo", createdAt: d0 + 10 }, [
    { endedAt: d0 + 20, input: 100, output: 10, cost: 0.01 },
    { endedAt: d0 + day + 5, input: 200, output: 20, cost: 0.02 },
    // Still running: not counted until it ends.
    { endedAt: null }
  ])
  yield* insertSession({ id: "b".repeat(24), app, agent: "claude", createdAt: d0 + day + 1 }, [
    // The agent reported no usage.
    { endedAt: d0 + day + 2 },
    { endedAt: d0 + day + 3, input: 1000, output: 100, cost: 0.5 }
  ])
  yield* insertSession({ id: "c".repeat(24), app: other, agent: "echo", createdAt: d0 + 5 }, [
    { endedAt: d0 + 6, input: 7, output: 7, cost: 7 }
  ])
  const usage = yield* Usage
  yield* usage.recordRun(app, {
    at: d0 + 2 * day,
    status: "completed",
    durationMs: 1200,
    usage: { input_tokens: 50, output_tokens: 5, total_tokens: 55, cost_usd: 0.1 }
  })
  yield* usage.recordRun(app, {
    at: d0 + 2 * day + 1,
    status: "failed",
    durationMs: 10,
    usage: { input_tokens: null, output_tokens: null, total_tokens: null, cost_usd: null }
  })
})

/** What the seed's usage reports, whether its sessions are in the ledger or deleted (by the hour). */
const expectSeededReports = Effect.gen(function*() {
  const usage = yield* Usage

  const all = yield* usage.usage(app, {})
  expect(all.groups).toEqual([])
  expect(all.totals).toMatchObject({ turns: 4, sessions: 2, runs: 2, input_tokens: 1350, output_tokens: 135 })
  expect(all.totals.cost_usd).toBeCloseTo(0.63)

  const byDay = yield* usage.usage(app, { groupBy: "day" })
  expect(byDay.groups.map((g) => [g.day, g.turns, g.sessions, g.runs, g.input_tokens])).toEqual([
    ["2026-01-10", 1, 1, 0, 100],
    ["2026-01-11", 3, 1, 0, 1200],
    ["2026-01-12", 0, 0, 2, 50]
  ])
  expect(byDay.totals).toEqual(all.totals)

  const byAgent = yield* usage.usage(app, { groupBy: "agent" })
  expect(byAgent.groups.map((g) => [g.agent, g.turns, g.sessions, g.runs, g.output_tokens])).toEqual([
    ["claude", 2, 1, 2, 105],
    ["echo", 2, 1, 0, 30]
  ])

  // The window: from included, to excluded.
  const second = yield* usage.usage(app, { from: d0 + day, to: d0 + 2 * day })
  expect(second.totals).toMatchObject({ turns: 3, sessions: 1, runs: 0, input_tokens: 1200 })

  // Every app's.
  const everyone = yield* usage.usage(undefined, { to: d0 + day })
  expect(everyone.totals).toMatchObject({ turns: 2, sessions: 2, runs: 0, input_tokens: 107 })
  expect(everyone.totals.cost_usd).toBeCloseTo(7.01)
  expect((yield* usage.usage(other, {})).totals).toMatchObject({ turns: 1, sessions: 1, runs: 0, cost_usd: 7 })

  // The day's cost by app, as AppLimits seeds it.
  const costs = yield* usage.costByApp(d0 + day)
  expect(costs.get(app)).toBeCloseTo(0.62)
  expect(costs.get(other)).toBeUndefined()
})

describe("Usage", () => {
  it.effect("totals, by day and by agent, for one app or all, within a window", () =>
    Effect.gen(function*() {
      yield* seed
      yield* expectSeededReports
      // To the second while the rows are there.
      expect((yield* (yield* Usage).usage(app, { from: d0 + 2 * day + 1 })).totals).toMatchObject({ turns: 0, runs: 1 })
    }).pipe(Effect.provide(layerTenancy({}))))

  it.effect("sessions and runs deleted past the hard TTL leave their usage: the same reports, for windows on the hour", () =>
    Effect.gen(function*() {
      yield* seed
      const sql = yield* SqlClient.SqlClient
      yield* sql`UPDATE sessions SET closed_at = ${d0 + 3 * day}`
      const deleted = yield* (yield* Ledger).deleteClosedBefore(d0 + 4 * day)
      expect(deleted).toHaveLength(3)
      expect(yield* sql`SELECT session_id FROM turns`).toEqual([])
      expect(yield* sql`SELECT run_id FROM runs`).toEqual([])
      yield* expectSeededReports
      // A second sweep adds nothing twice; a deleted session's hour is kept whole.
      expect(yield* (yield* Ledger).deleteClosedBefore(d0 + 4 * day)).toEqual([])
      yield* expectSeededReports
      expect((yield* (yield* Usage).usage(other, { from: d0 + 1 })).totals).toMatchObject({ turns: 0, sessions: 0 })
      expect((yield* (yield* Usage).usage(app, { from: d0 + 2 * day + 1 })).totals).toMatchObject({ turns: 0, runs: 0 })
      expect((yield* (yield* Usage).usage(app, { from: d0 + 2 * day })).totals).toMatchObject({ turns: 0, runs: 2 })
    }).pipe(Effect.provide(Ledger.DefaultWithoutDependencies.pipe(Layer.provideMerge(layerTenancy({}))))))

  it.effect("an empty ledger reports zeros", () =>
    Effect.gen(function*() {
      const report = yield* (yield* Usage).usage(app, { groupBy: "day" })
      expect(report).toEqual({
        totals: { turns: 0, sessions: 0, runs: 0, input_tokens: 0, output_tokens: 0, cost_usd: 0 },
        groups: []
      })
    }).pipe(Effect.provide(layerTenancy({}))))

  it("a run's usage from claude's JSON: tokens, the cache in the total, total_cost_usd; null when absent", () => {
    expect(claudeRunUsage({
      type: "result",
      total_cost_usd: 0.0123,
      usage: { input_tokens: 4, cache_creation_input_tokens: 100, cache_read_input_tokens: 20, output_tokens: 50 }
    })).toEqual({ input_tokens: 4, output_tokens: 50, total_tokens: 174, cost_usd: 0.0123 })
    expect(claudeRunUsage({ is_error: true, result: "Not logged in" })).toEqual({
      input_tokens: null,
      output_tokens: null,
      total_tokens: null,
      cost_usd: null
    })
    expect(claudeRunUsage("not json")).toMatchObject({ cost_usd: null })
  })
})
