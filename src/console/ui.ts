/** Small pieces every page uses: formatting, polling, the two charts. */
import { html } from "htm/preact"
import { useEffect, useState } from "preact/hooks"
import { ApiError } from "./api.js"

export { html }

export const time = (seconds: number | null | undefined) =>
  seconds === null || seconds === undefined ? "–" : new Date(seconds * 1000).toLocaleString()

export const ago = (seconds: number | null | undefined) => {
  if (seconds === null || seconds === undefined) return "–"
  const d = Math.max(0, Math.floor(Date.now() / 1000 - seconds))
  return d < 60 ? `${d}s ago` : d < 3600 ? `${Math.floor(d / 60)}m ago` : d < 86400 ? `${Math.floor(d / 3600)}h ago` : `${Math.floor(d / 86400)}d ago`
}

export const usd = (value: number) => `$${value.toFixed(value !== 0 && value < 1 ? 4 : 2)}`

export const orNone = (value: number | null) => value === null ? "none" : String(value)

export const messageOf = (error: unknown) =>
  error instanceof ApiError ? `${error.message} (${error.code})` : error instanceof Error ? error.message : String(error)

/**
 * `load()` now and every `everyMs` while the page shows it; `reload` runs it at once. A failed
 * load keeps what was shown and says why.
 */
export const usePoll = <A>(load: () => Promise<A>, everyMs: number, deps: ReadonlyArray<unknown> = []) => {
  const [data, setData] = useState<A | undefined>(undefined)
  const [error, setError] = useState<string | undefined>(undefined)
  const [tick, setTick] = useState(0)
  useEffect(() => {
    let live = true
    const run = () =>
      load().then(
        (value) => live && (setData(value), setError(undefined)),
        (e) => live && setError(messageOf(e))
      )
    void run()
    const timer = setInterval(run, everyMs)
    return () => {
      live = false
      clearInterval(timer)
    }
  }, [...deps, tick])
  return { data, error, reload: () => setTick((n) => n + 1) }
}

export const Failure = ({ error }: { error: string | undefined }) =>
  error === undefined ? null : html`<p class="failure" role="alert">${error}</p>`

/** Vertical bars, one per value, labelled by their tooltips. */
export const BarChart = ({ values, labels, title }: { values: ReadonlyArray<number>; labels: ReadonlyArray<string>; title: string }) => {
  const width = 300
  const height = 80
  const max = Math.max(1, ...values)
  const step = width / Math.max(1, values.length)
  return html`<svg class="chart" viewBox="0 0 ${width} ${height + 2}" role="img" aria-label=${title}>
    <line x1="0" y1=${height + 1} x2=${width} y2=${height + 1} class="axis" />
    ${values.map((value, i) => {
      const h = (value / max) * height
      return html`<rect x=${i * step + 1} y=${height - h} width=${Math.max(1, step - 2)} height=${h} class="bar">
        <title>${labels[i]}: ${value}</title>
      </rect>`
    })}
  </svg>`
}

/** A horizontal gauge: `value` of `max`; a capacity (`warn`) turns red once nearly used up. */
export const Gauge = ({ value, max, label, warn = false }: { value: number; max: number; label: string; warn?: boolean }) => {
  const share = max === 0 ? 0 : Math.min(1, value / max)
  return html`<svg class="gauge" viewBox="0 0 200 12" role="img" aria-label=${label}>
    <rect x="0" y="0" width="200" height="12" rx="3" class="gauge-back" />
    <rect x="0" y="0" width=${200 * share} height="12" rx="3" class=${warn && share >= 0.9 ? "gauge-full" : "gauge-fill"} />
  </svg>`
}
