import { type Duration, Effect, Schedule } from "effect"

/** Asks again every 20 ms until the answer is as wanted (for `timeout` at most), and gives that answer. */
export const poll = <A, E, R>(ask: Effect.Effect<A, E, R>, until: (a: A) => boolean, timeout: Duration.DurationInput = "10 seconds") =>
  ask.pipe(
    Effect.repeat(Schedule.recurUntil(until).pipe(Schedule.addDelay(() => "20 millis"))),
    Effect.timeoutFail({ duration: timeout, onTimeout: () => new Error(`no answer as wanted within ${String(timeout)}`) })
  )
