import { Schema } from "effect"

/** An opaque session id handed to clients: 24 url-safe characters. */
export const SessionId = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9_-]{16,64}$/),
  Schema.brand("SessionId"),
  Schema.annotations({ description: "Opaque session id (16+ url-safe characters)" })
)
export type SessionId = typeof SessionId.Type

/** The application a bearer token belongs to. */
export const AppName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/),
  Schema.brand("AppName"),
  Schema.annotations({ description: "The app the bearer token names" })
)
export type AppName = typeof AppName.Type

/** Integer Unix seconds. */
export const UnixSeconds = Schema.Int.pipe(Schema.nonNegative()).annotations({
  description: "Unix time, in whole seconds"
})

/**
 * An integer within bounds, written as a string where only strings travel (query parameters): the
 * document calls it an integer, and a bad value's message says what is expected, in one clause.
 */
export const IntFromString = (options: {
  readonly minimum: number
  readonly maximum: number
  readonly description: string
}) =>
  Schema.NumberFromString.pipe(Schema.int(), Schema.between(options.minimum, options.maximum)).annotations({
    jsonSchema: {
      type: "integer",
      minimum: options.minimum,
      maximum: options.maximum,
      description: options.description
    },
    message: (issue) => ({
      message: `Expected an integer from ${options.minimum} to ${options.maximum}, actual ${
        JSON.stringify(issue.actual)
      }`,
      override: true
    })
  })
