import { Effect, Metric, MetricBoundaries, MetricLabel, MetricState } from "effect"
import type { MetricPair } from "effect"
import { AgentPool } from "../sessions/AgentPool.js"

/** Live agents (sessions holding a pool slot), set when scraped. */
export const sessionsLive = Metric.gauge("clawdforge_sessions_live", { description: "Sessions with a live agent" })
export const poolCapacity = Metric.gauge("clawdforge_pool_capacity", { description: "Live agent slots in all" })

/** Turns by `app` and `outcome` (ok, agent_failed, turn_timeout, session_closed, ...). */
export const turnsTotal = Metric.counter("clawdforge_turns_total", {
  description: "Turns run, by app and outcome",
  incremental: true
})

/** Refusals by an app's limit, by `app` and `limit` (max_sessions, turns_per_minute, daily_cost_usd). */
export const limitedTotal = Metric.counter("clawdforge_limited_total", {
  description: "Requests refused by an app's limit, by app and limit",
  incremental: true
})

/** What apps' agents cost, by `app`, as far as they report it. */
export const appCostUsdTotal = Metric.counter("clawdforge_app_cost_usd_total", {
  description: "What apps' agents cost in US dollars, by app",
  incremental: true
})

/** Tokens apps' agents used, by `app` and `kind` (input, output). */
export const appTokensTotal = Metric.counter("clawdforge_app_tokens_total", {
  description: "Tokens apps' agents used, by app and kind",
  incremental: true
})

/**
 * A metric with its labels, tagged in one step: build it once and keep it. Effect finds a tagged
 * metric's state by its label array (a cache keyed by that array); `Metric.tagged` twice unions two
 * arrays into a new one on every update, so each update rebuilt and hashed its metric key.
 */
export const withLabels = <Type, In, Out>(
  metric: Metric.Metric<Type, In, Out>,
  labels: Readonly<Record<string, string>>
): Metric.Metric<Type, In, Out> =>
  Metric.taggedWithLabels(metric, Object.entries(labels).map(([key, value]) => MetricLabel.make(key, value)))

export const turnDuration = Metric.histogram(
  "clawdforge_turn_duration_seconds",
  MetricBoundaries.exponential({ start: 0.001, factor: 4, count: 10 }),
  "Turn duration from the agent's start on it to its answer"
)

const escapeLabel = (value: string) => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, "\\\"")

const labels = (tags: ReadonlyArray<{ readonly key: string; readonly value: string }>, extra?: string) => {
  const parts = tags.map((tag) => `${tag.key}="${escapeLabel(tag.value)}"`)
  if (extra !== undefined) parts.push(extra)
  return parts.length === 0 ? "" : `{${parts.join(",")}}`
}

/** Effect's metric registry in the Prometheus text exposition format (0.0.4). */
export const renderPrometheus = (pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>): string => {
  const families = new Map<string, { type: string; help: string | undefined; lines: Array<string> }>()
  const family = (name: string, type: string, help: string | undefined) => {
    let entry = families.get(name)
    if (entry === undefined) families.set(name, entry = { type, help, lines: [] })
    return entry.lines
  }
  for (const { metricKey: key, metricState: state } of pairs) {
    // Only the gateway's own metrics; Effect's runtime counters are not ours to publish.
    if (!key.name.startsWith("clawdforge_")) continue
    if (MetricState.isCounterState(state)) {
      family(key.name, "counter", key.description._tag === "Some" ? key.description.value : undefined)
        .push(`${key.name}${labels(key.tags)} ${state.count}`)
    } else if (MetricState.isGaugeState(state)) {
      family(key.name, "gauge", key.description._tag === "Some" ? key.description.value : undefined)
        .push(`${key.name}${labels(key.tags)} ${state.value}`)
    } else if (MetricState.isHistogramState(state)) {
      const lines = family(key.name, "histogram", key.description._tag === "Some" ? key.description.value : undefined)
      // Effect's bucket counts are cumulative already, as Prometheus wants them.
      for (const [bound, count] of state.buckets) {
        if (Number.isFinite(bound)) lines.push(`${key.name}_bucket${labels(key.tags, `le="${bound}"`)} ${count}`)
      }
      lines.push(`${key.name}_bucket${labels(key.tags, `le="+Inf"`)} ${state.count}`)
      lines.push(`${key.name}_sum${labels(key.tags)} ${state.sum}`)
      lines.push(`${key.name}_count${labels(key.tags)} ${state.count}`)
    }
  }
  let text = ""
  for (const [name, { type, help, lines }] of families) {
    if (help !== undefined) text += `# HELP ${name} ${help.replace(/\n/g, " ")}\n`
    text += `# TYPE ${name} ${type}\n${lines.join("\n")}\n`
  }
  return text
}

/** What `GET /metrics` serves: the pool's gauges set now, then every registered metric. */
export const scrapeMetrics = Effect.gen(function*() {
  const pool = yield* AgentPool
  yield* Metric.set(sessionsLive, yield* pool.live)
  yield* Metric.set(poolCapacity, pool.capacity)
  return renderPrometheus(yield* Metric.snapshot)
}).pipe(Effect.withSpan("Metrics.scrape"))
