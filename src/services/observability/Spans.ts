import { Effect, FiberRef } from "effect"

/**
 * A span for the turn's hot path, made only while spans are exported (see `TracingLive`).
 * `Effect.fn` captures a call-site stack trace on every call, spans or not, which on a turn's
 * path costs more than the work it traces.
 */
export const spanWhenTraced = (name: string) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.withFiberRuntime((fiber) =>
    fiber.getFiberRef(FiberRef.currentTracerEnabled) ? Effect.withSpan(self, name, { captureStackTrace: false }) : self
  )
