import { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import { Cause, Effect, Exit, Option, Schema } from "effect"
import { CurrentApp } from "../domain/Api.js"
import { IdempotencyKeyReused } from "../domain/Errors.js"
import { IdempotencyKeys, requestDigest, type StoredReply } from "../services/ledger/IdempotencyKeys.js"

/** The header every replayed answer carries. */
export const replayedHeader = "idempotent-replayed"

/** A stored JSON reply, sent again with its status. */
export const replayJson = (reply: StoredReply) =>
  HttpServerResponse.text(reply.body, {
    status: reply.status,
    contentType: "application/json",
    headers: { [replayedHeader]: "true" }
  })

/** A success as the API sends it: the success schema's status and encoding. */
export const storeAs = <A, I>(schema: Schema.Schema<A, I>) => {
  const encode = Schema.encodeSync(schema)
  const status = HttpApiSchema.getStatusSuccess(schema)
  return (value: A): StoredReply => ({ status, body: JSON.stringify(encode(value)) })
}

/** A handler's typed failure as the API sends it: its error schema's status and encoding. */
const storeError = (error: unknown): Option.Option<StoredReply> => {
  const schema: unknown = (error as { constructor?: unknown } | null)?.constructor
  if (!Schema.isSchema(schema)) return Option.none()
  return Option.some({
    status: HttpApiSchema.getStatusErrorAST(schema.ast),
    body: JSON.stringify(Schema.encodeUnknownSync(schema as Schema.Schema<unknown, unknown>)(error))
  })
}

/**
 * Wraps the work of a handler that takes `Idempotency-Key`. Without a key it just runs. With one,
 * the first request runs it (`respond` makes its answer); a repeat with the same method, path and
 * body gets the first one's status and body (`replay`; by default the stored JSON) with
 * `Idempotent-Replayed: true`, waiting for it while it runs; another request under the key is a
 * 422. Typed failures are stored and replayed like successes; a defect stores nothing.
 */
export const makeIdempotent = Effect.map(IdempotencyKeys, (keys) =>
<A, E, R, B, E2 = never, R2 = never>(options: {
  readonly key: string | undefined
  readonly payload: unknown
  readonly run: Effect.Effect<A, E, R>
  readonly store: (value: A) => StoredReply
  readonly respond: (value: A) => B
  readonly replay?: ((reply: StoredReply) => Effect.Effect<HttpServerResponse.HttpServerResponse, E2, R2>) | undefined
}) =>
  Effect.gen(function*() {
    if (options.key === undefined) return options.respond(yield* options.run)
    const app = yield* CurrentApp
    const request = yield* HttpServerRequest.HttpServerRequest
    const digest = requestDigest(request.method, request.url.split("?")[0]!, options.payload)
    const outcome = yield* keys.once(app, options.key, digest, options.run, (exit) =>
      Exit.isSuccess(exit)
        ? Option.some(options.store(exit.value))
        : Option.flatMap(Cause.failureOption(exit.cause), storeError))
    switch (outcome._tag) {
      case "Ran":
        return options.respond(yield* outcome.exit)
      case "Replayed":
        return yield* (options.replay === undefined ? Effect.succeed(replayJson(outcome.reply)) : options.replay(outcome.reply))
      case "Reused":
        return yield* new IdempotencyKeyReused({
          message: "This Idempotency-Key was used for a different request (method, path or body); use a new key"
        })
    }
  }))
