import { type Duration, Effect, Schedule } from "effect"

/** For tests written with promises: checks every 50 ms until `check` holds; fails naming `what` after `timeoutMs`. */
export const until = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Asks again every 20 ms until the answer is as wanted (for `timeout` at most), and gives that answer. */
export const poll = <A, E, R>(ask: Effect.Effect<A, E, R>, until: (a: A) => boolean, timeout: Duration.DurationInput = "10 seconds") =>
  ask.pipe(
    Effect.repeat(Schedule.recurUntil(until).pipe(Schedule.addDelay(() => "20 millis"))),
    Effect.timeoutFail({ duration: timeout, onTimeout: () => new Error(`no answer as wanted within ${String(timeout)}`) })
  )
