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
  Schema.brand("AppName")
)
export type AppName = typeof AppName.Type

/** Integer Unix seconds. */
export const UnixSeconds = Schema.Int.pipe(Schema.nonNegative())
