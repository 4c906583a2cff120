/** Numbers: rounding, percentiles and the summary every timed series gets. */
import { performance } from "node:perf_hooks"

export const now = () => performance.now()

export const round = (x: number, digits = 3) => Number(x.toFixed(digits))

export const percentile = (samples: ReadonlyArray<number>, p: number) => {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

export const median = (samples: ReadonlyArray<number>) => percentile(samples, 50)

export interface Summary {
  readonly n: number
  readonly p50: number
  readonly p99: number
  readonly mean: number
  readonly min: number
  readonly max: number
}

export const summary = (samples: ReadonlyArray<number>): Summary => ({
  n: samples.length,
  p50: round(percentile(samples, 50)),
  p99: round(percentile(samples, 99)),
  mean: round(samples.reduce((a, b) => a + b, 0) / samples.length),
  min: round(Math.min(...samples)),
  max: round(Math.max(...samples))
})

/** `f` over `items`, at most `limit` at a time, results in order. */
export const mapLimit = async <A, B>(items: ReadonlyArray<A>, limit: number, f: (a: A, i: number) => Promise<B>) => {
  const out: Array<B> = new Array(items.length)
  let next = 0
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await f(items[i]!, i)
    }
  }))
  return out
}
