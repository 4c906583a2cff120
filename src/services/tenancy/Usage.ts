import { SqlClient, type Statement } from "@effect/sql"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import type { AppName } from "../../domain/Ids.js"
import type { UsageGroup, UsageQuery, UsageReport, UsageTotals } from "../../domain/Tenancy.js"
import { DatabaseLive } from "../ledger/Database.js"

/** A `/run` as it is stored: when, how it ended, and what claude reported it used. */
export interface RunRecord {
  readonly at: number
  readonly status: "completed" | "failed"
  readonly durationMs: number | null
  readonly usage: {
    readonly input_tokens: number | null
    readonly output_tokens: number | null
    readonly total_tokens: number | null
    readonly cost_usd: number | null
  }
}

const daySeconds = 86400

const count = (value: unknown) => typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : null

/**
 * What `claude -p --output-format json` reports a run used: its `usage` (input and output tokens;
 * the total adds the cache's reads and writes, as ACP's `totalTokens` does) and `total_cost_usd`.
 * Null where it says nothing.
 */
export const claudeRunUsage = (output: unknown): RunRecord["usage"] => {
  const result = typeof output === "object" && output !== null ? output as Record<string, unknown> : {}
  const usage = typeof result["usage"] === "object" && result["usage"] !== null
    ? result["usage"] as Record<string, unknown>
    : {}
  const input = count(usage["input_tokens"])
  const output_ = count(usage["output_tokens"])
  const cached = (count(usage["cache_read_input_tokens"]) ?? 0) + (count(usage["cache_creation_input_tokens"]) ?? 0)
  return {
    input_tokens: input,
    output_tokens: output_,
    total_tokens: input === null && output_ === null ? null : (input ?? 0) + (output_ ?? 0) + cached,
    cost_usd: count(result["total_cost_usd"])
  }
}

/** PostgreSQL gives COUNT and SUM of integers as strings (bigint, numeric); SQLite as numbers. */
const num = (value: unknown) => value === null || value === undefined ? 0 : Number(value)

const emptyTotals = (): { -readonly [K in keyof UsageTotals]: number } => ({
  turns: 0,
  sessions: 0,
  runs: 0,
  input_tokens: 0,
  output_tokens: 0,
  cost_usd: 0
})

interface Row {
  readonly grp?: unknown
  readonly n?: unknown
  /** `usage_history`'s: turns, sessions and runs in one row. */
  readonly turns?: unknown
  readonly sessions?: unknown
  readonly runs?: unknown
  readonly input_tokens?: unknown
  readonly output_tokens?: unknown
  readonly cost_usd?: unknown
}

/**
 * What apps used, from the ledger: sessions' turns (their usage columns, by when they ended, with
 * their session's app and agent) and `/run` jobs (`runs`). The SQL is portable to SQLite and
 * PostgreSQL: a day is the integer division of Unix seconds by 86400 in both.
 */
export class Usage extends Effect.Service<Usage>()("clawdforge/Usage", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    /** The rows of the app (all apps when undefined) whose `at` is in the window, as a WHERE clause. */
    const within = (at: Statement.Fragment, appColumn: Statement.Fragment, app: AppName | undefined, query: UsageQuery) =>
      sql.and([
        sql`${at} IS NOT NULL`,
        ...(app === undefined ? [] : [sql`${appColumn} = ${app}`]),
        ...(query.from === undefined ? [] : [sql`${at} >= ${query.from}`]),
        ...(query.to === undefined ? [] : [sql`${at} < ${query.to}`])
      ])

    /** The group's key (a day number, or the agent) selected and grouped by; nothing when not grouped. */
    const grouped = (query: UsageQuery, at: Statement.Fragment, agent: Statement.Fragment) => {
      const key = query.groupBy === "day"
        ? sql`${at} / ${sql.literal(String(daySeconds))}`
        : query.groupBy === "agent"
        ? agent
        : undefined
      return key === undefined
        ? { select: sql``, groupBy: sql`` }
        : { select: sql`${key} AS grp,`, groupBy: sql`GROUP BY ${key}` }
    }

    /** `usage(app, {from, to, groupBy})`: the totals, and per group when asked; every app's when `app` is undefined. */
    const usage = Effect.fn("Usage.usage")(
      function*(app: AppName | undefined, query: UsageQuery) {
        const [endedAt, createdAt, at, hour] = [
          sql.literal("t.ended_at"),
          sql.literal("created_at"),
          sql.literal("at"),
          sql.literal("hour")
        ]
        const turnsKey = grouped(query, endedAt, sql.literal("s.agent"))
        const sessionsKey = grouped(query, createdAt, sql.literal("agent"))
        const runsKey = grouped(query, at, sql.literal("agent"))
        const historyKey = grouped(query, hour, sql.literal("agent"))
        const [turns, sessions, runs, history] = yield* Effect.all([
          sql<Row>`SELECT ${turnsKey.select} COUNT(*) AS n, SUM(t.input_tokens) AS input_tokens,
              SUM(t.output_tokens) AS output_tokens, SUM(t.cost_usd) AS cost_usd
            FROM turns t JOIN sessions s ON s.session_id = t.session_id
            WHERE ${within(endedAt, sql.literal("s.app_name"), app, query)} ${turnsKey.groupBy}`,
          sql<Row>`SELECT ${sessionsKey.select} COUNT(*) AS n FROM sessions
            WHERE ${within(createdAt, sql.literal("app_name"), app, query)} ${sessionsKey.groupBy}`,
          sql<Row>`SELECT ${runsKey.select} COUNT(*) AS n, SUM(input_tokens) AS input_tokens,
              SUM(output_tokens) AS output_tokens, SUM(cost_usd) AS cost_usd
            FROM runs WHERE ${within(at, sql.literal("app_name"), app, query)} ${runsKey.groupBy}`,
          // Deleted sessions' and runs' usage, by the hour: a window that does not start on the hour takes an hour whole.
          sql<Row>`SELECT ${historyKey.select} SUM(turns) AS turns, SUM(sessions) AS sessions, SUM(runs) AS runs,
              SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, SUM(cost_usd) AS cost_usd
            FROM usage_history WHERE ${within(hour, sql.literal("app_name"), app, query)} ${historyKey.groupBy}`
        ])

        const totals = emptyTotals()
        const groups = new Map<string, ReturnType<typeof emptyTotals>>()
        const add = (rows: ReadonlyArray<Row>, count: (row: Row) => Partial<Record<"turns" | "sessions" | "runs", unknown>>) => {
          for (const row of rows) {
            const targets = [totals]
            if (query.groupBy !== undefined) {
              const name = query.groupBy === "day"
                ? new Date(num(row.grp) * daySeconds * 1000).toISOString().slice(0, 10)
                : String(row.grp)
              let group = groups.get(name)
              if (group === undefined) groups.set(name, group = emptyTotals())
              targets.push(group)
            }
            const counts = count(row)
            for (const target of targets) {
              target.turns += num(counts.turns)
              target.sessions += num(counts.sessions)
              target.runs += num(counts.runs)
              target.input_tokens += num(row.input_tokens)
              target.output_tokens += num(row.output_tokens)
              target.cost_usd += num(row.cost_usd)
            }
          }
        }
        add(turns, (row) => ({ turns: row.n }))
        add(sessions, (row) => ({ sessions: row.n }))
        add(runs, (row) => ({ runs: row.n }))
        add(history, (row) => ({ turns: row.turns, sessions: row.sessions, runs: row.runs }))
        const groupBy = query.groupBy
        const list: Array<UsageGroup> = groupBy === undefined
          ? []
          : [...groups.entries()].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
            .map(([name, group]) => ({ [groupBy]: name, ...group }))
        return { totals, groups: list } satisfies UsageReport
      },
      Effect.orDie
    )

    /**
     * What each app's agents cost since `from` (Unix seconds), or only `app`'s: seeds the day's
     * cost of `AppLimits` (and is its day's cost in a cluster, where the nodes share the ledger).
     */
    const costByApp = Effect.fn("Usage.costByApp")(
      function*(from: number, app?: AppName) {
        const of = (column: string) => app === undefined ? sql`TRUE` : sql`${sql.literal(column)} = ${app}`
        const rows = yield* sql<{ app_name: string; cost_usd: unknown }>`
          SELECT s.app_name AS app_name, SUM(t.cost_usd) AS cost_usd
            FROM turns t JOIN sessions s ON s.session_id = t.session_id
            WHERE t.ended_at >= ${from} AND t.cost_usd IS NOT NULL AND ${of("s.app_name")} GROUP BY s.app_name
          UNION ALL
          SELECT app_name, SUM(cost_usd) AS cost_usd FROM runs
            WHERE at >= ${from} AND cost_usd IS NOT NULL AND ${of("app_name")} GROUP BY app_name
          UNION ALL
          SELECT app_name, SUM(cost_usd) AS cost_usd FROM usage_history
            WHERE hour >= ${from} AND ${of("app_name")} GROUP BY app_name`
        const costs = new Map<string, number>()
        for (const row of rows) costs.set(row.app_name, (costs.get(row.app_name) ?? 0) + num(row.cost_usd))
        return costs as ReadonlyMap<string, number>
      },
      Effect.orDie
    )

    /** Stores a `/run` of `app` with what claude reported it used. */
    const recordRun = Effect.fn("Usage.recordRun")(
      function*(app: AppName, run: RunRecord) {
        yield* sql`INSERT INTO runs ${
          sql.insert({
            run_id: `run_${randomBytes(12).toString("hex")}`,
            app_name: app,
            agent: "claude",
            at: run.at,
            status: run.status,
            duration_ms: run.durationMs,
            input_tokens: run.usage.input_tokens,
            output_tokens: run.usage.output_tokens,
            total_tokens: run.usage.total_tokens,
            cost_usd: run.usage.cost_usd
          })
        }`
      },
      Effect.orDie
    )

    return { usage, costByApp, recordRun } as const
  }),
  dependencies: [DatabaseLive]
}) {}
