import { Clock, Duration, Effect } from "effect"

/**
 * A copy of something the ledger holds (app tokens, limits, webhooks, environments), read again
 * at most every `ttl` by whichever caller finds it stale: no query per request, and nothing polls
 * an idle gateway. Until the first read has answered every caller reads; after it, the first
 * caller to find the copy stale reads and the others go on with the last copy. A read that fails
 * keeps the last copy (and says so). A plain value and a timestamp, for the request's path: a
 * cached effect's lock costs more than the check.
 */
export const makeLedgerCopy = <A, E, R>(options: {
  readonly read: Effect.Effect<A, E, R>
  readonly initial: A
  readonly ttl: Duration.DurationInput
  /** What it holds, for the warning of a failed read. */
  readonly what: string
}) => {
  const ttl = Duration.toMillis(options.ttl)
  let value = options.initial
  let readAt = Number.NEGATIVE_INFINITY
  const warn = (cause: unknown) =>
    Effect.as(Effect.logWarning(`Could not read ${options.what} from the ledger`, cause), value)
  const refresh = options.read.pipe(
    Effect.map((read) => value = read),
    Effect.catchAll(warn),
    Effect.catchAllDefect(warn),
    Effect.tap(() => Clock.currentTimeMillis.pipe(Effect.map((now) => readAt = Math.max(readAt, now))))
  )
  /** The copy, read again first when it is older than `ttl`. */
  const get = Effect.flatMap(Clock.currentTimeMillis, (now) => {
    if (now - readAt < ttl) return Effect.succeed(value)
    // Others go on with the last copy while this caller reads; before the first read, they read too.
    if (readAt !== Number.NEGATIVE_INFINITY) readAt = now
    return refresh
  })
  /** The next `get` reads (after a change this process made itself). */
  const invalidate = Effect.sync(() => readAt = Number.NEGATIVE_INFINITY)
  return { get, invalidate } as const
}
