import { SqlClient } from "@effect/sql"
import { Deferred, Duration, Effect, Exit, Fiber, Option, Schedule } from "effect"
import { createHash, randomUUID } from "node:crypto"
import type { AppName } from "../../domain/Ids.js"
import { AppConfig } from "../config/AppConfig.js"
import { DatabaseLive } from "./Database.js"
import { nowSeconds } from "./Ledger.js"

/** A reply as it is kept and replayed: its status and its body (JSON text). */
export interface StoredReply {
  readonly status: number
  readonly body: string
}

/** What became of a request with a key: it ran now, it repeats an earlier one, or its key was used for another. */
export type Outcome<A, E> =
  | { readonly _tag: "Ran"; readonly exit: Exit.Exit<A, E> }
  | { readonly _tag: "Replayed"; readonly reply: StoredReply }
  | { readonly _tag: "Reused" }

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex")

/** JSON with every object's keys in order: two bodies that mean the same are the same text. */
const canonicalJson = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]]))
      : v) ?? ""

/** What makes two requests the same request: method, path and canonical body, as one digest. */
export const requestDigest = (method: string, path: string, body: unknown) =>
  sha256(`${method} ${path}\n${canonicalJson(body)}`)

/** How often a repeat looks at a key that another gateway process is running. */
const pollInterval = Duration.millis(100)
/** How often a process says it still runs its keys; one silent for `holderSilentSecs` is gone. */
const holderRefresh = Duration.seconds(2)
const holderSilentSecs = 10

interface KeyRow {
  readonly request_digest: string
  readonly status: number | null
  readonly body: string | null
  readonly seen_at: unknown
}

/**
 * Idempotency keys, per app, in the ledger's `idempotency_keys` table. The first request with a
 * key inserts its row (the insert is the lock) and runs; repeats in this process wait for it on a
 * Deferred, repeats in another process poll its row. What ran is owned by this service's scope,
 * not by the request: a client that goes away (and retries) does not stop it from being recorded.
 */
export class IdempotencyKeys extends Effect.Service<IdempotencyKeys>()("clawdforge/IdempotencyKeys", {
  scoped: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const config = yield* AppConfig
    const ttl = Duration.toSeconds(config.idempotencyTtl)
    const scope = yield* Effect.scope
    // This process, as the holder of the keys it runs.
    const self = randomUUID()
    // At start-up, as the ledger's turns: keys that a gateway which died left running have no reply
    // to give, and are released (a retry runs anew) rather than waited for until they expire. The
    // nodes of a cluster share the ledger: there only the keys of silent holders are released.
    yield* (config.cluster
      ? sql`DELETE FROM idempotency_keys WHERE status IS NULL AND seen_at < ${(yield* nowSeconds) - holderSilentSecs}`
      : sql`DELETE FROM idempotency_keys WHERE status IS NULL`).pipe(Effect.orDie)

    /** Keys this process runs now, by app and key digest; `None`: released, try again. */
    const running = new Map<
      string,
      { readonly request: string; readonly done: Deferred.Deferred<Option.Option<StoredReply>> }
    >()

    /** Takes the key: `Some` (with the Deferred its repeats wait on) when this request won it. */
    const claim = (app: AppName, key: string, request: string, slot: string) =>
      Effect.gen(function*() {
        const at = yield* nowSeconds
        const won = yield* sql`
          INSERT INTO idempotency_keys (app_name, key_digest, request_digest, created_at, holder, seen_at)
          VALUES (${app}, ${key}, ${request}, ${at}, ${self}, ${at})
          ON CONFLICT DO NOTHING RETURNING created_at`
        if (won.length === 0) return Option.none()
        // Only the insert's winner is in `running`: a request still inserting (and about to lose
        // to another process's row) must not be taken for the key's holder by its repeats.
        const done = yield* Deferred.make<Option.Option<StoredReply>>()
        running.set(slot, { request, done })
        return Option.some(done)
      }).pipe(Effect.orDie)

    // In a cluster, while this process runs keys, it says so every `holderRefresh` for the other
    // nodes' repeats (an idle one writes nothing). A single gateway's repeats are all its own.
    if (config.cluster) {
      yield* Effect.suspend(() =>
        running.size === 0 ? Effect.void : Effect.flatMap(nowSeconds, (now) =>
          sql`UPDATE idempotency_keys SET seen_at = ${now} WHERE holder = ${self} AND status IS NULL`.pipe(Effect.asVoid))
      ).pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("Could not refresh the idempotency keys this process runs", cause)),
        Effect.repeat(Schedule.spaced(holderRefresh)),
        Effect.forkScoped
      )
    }

    const read = (app: AppName, key: string) =>
      Effect.map(
        sql<KeyRow>`SELECT request_digest, status, body, seen_at FROM idempotency_keys
          WHERE app_name = ${app} AND key_digest = ${key}`,
        (rows) => Option.fromNullable(rows[0])
      ).pipe(Effect.orDie)

    /** Whether the process running the key has not said so for long: it is gone. */
    const silent = (row: KeyRow, now: number) =>
      row.status === null && row.seen_at !== null && Number(row.seen_at) < now - holderSilentSecs

    /** Waits until the key's row has its reply, holds another request, is gone or its holder is. */
    const awaitRow = (app: AppName, key: string, request: string) =>
      Effect.gen(function*() {
        for (;;) {
          const now = yield* nowSeconds
          const row = yield* read(app, key)
          if (Option.isNone(row) || row.value.status !== null || row.value.request_digest !== request) return
          if (silent(row.value, now)) {
            // Released for whoever claims it next (this request, as it tries again).
            return yield* sql`DELETE FROM idempotency_keys WHERE app_name = ${app} AND key_digest = ${key}
              AND status IS NULL AND seen_at < ${now - holderSilentSecs}`.pipe(Effect.orDie, Effect.asVoid)
          }
          yield* Effect.sleep(pollInterval)
        }
      })

    /** Records what the winner answered (or releases the key when there is nothing to replay). */
    const finish = (
      app: AppName,
      key: string,
      slot: string,
      done: Deferred.Deferred<Option.Option<StoredReply>>,
      reply: Option.Option<StoredReply>
    ) =>
      Effect.gen(function*() {
        if (Option.isSome(reply)) {
          yield* sql`UPDATE idempotency_keys SET status = ${reply.value.status}, body = ${reply.value.body}
            WHERE app_name = ${app} AND key_digest = ${key}`
        } else {
          yield* sql`DELETE FROM idempotency_keys WHERE app_name = ${app} AND key_digest = ${key}`
        }
      }).pipe(
        Effect.orDie,
        // Its repeats are let go whatever happened here (a reply not recorded: they try again).
        Effect.onExit((exit) =>
          Effect.suspend(() => {
            running.delete(slot)
            return Deferred.succeed(done, Exit.isSuccess(exit) ? reply : Option.none())
          })
        )
      )

    /**
     * Runs `run` once per app and key: the first request runs it and `store` says what its repeats
     * get (`None`, for a defect: nothing, the key is released). A repeat with the same request waits
     * for the reply and gets it; one with another request is `Reused`.
     */
    // Generic, so a span rather than `Effect.fn` (which would lose the type parameters).
    const once = <A, E, R>(
      app: AppName,
      key: string,
      request: string,
      run: Effect.Effect<A, E, R>,
      store: (exit: Exit.Exit<A, E>) => Option.Option<StoredReply>
    ): Effect.Effect<Outcome<A, E>, never, R> => Effect.gen(function*() {
      const keyDigest = sha256(key)
      const slot = `${app}\n${keyDigest}`
      for (;;) {
        const inFlight = running.get(slot)
        if (inFlight !== undefined) {
          if (inFlight.request !== request) return { _tag: "Reused" } as Outcome<A, E>
          const reply = yield* Deferred.await(inFlight.done)
          if (Option.isSome(reply)) return { _tag: "Replayed", reply: reply.value } as Outcome<A, E>
          continue
        }
        // Taking the key and starting the work are one step: a request interrupted in between would
        // leave its repeats waiting for a reply that never comes.
        const started = yield* Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(claim(app, keyDigest, request, slot), (won) =>
            Option.isNone(won) ? Effect.succeedNone : restore(run).pipe(
              Effect.onExit((exit) =>
                Effect.try(() => Exit.isInterrupted(exit) ? Option.none() : store(exit)).pipe(
                  // A reply that cannot be stored releases the key rather than leave its repeats waiting.
                  Effect.orElseSucceed(() => Option.none()),
                  Effect.flatMap((reply) => finish(app, keyDigest, slot, won.value, reply))
                )
              ),
              Effect.forkIn(scope),
              Effect.asSome
            ))
        )
        if (Option.isSome(started)) {
          return { _tag: "Ran", exit: yield* Fiber.await(started.value) } as Outcome<A, E>
        }
        // Answered before, or running in another process: its row says.
        const row = yield* read(app, keyDigest)
        if (Option.isNone(row)) continue
        if (row.value.request_digest !== request) return { _tag: "Reused" } as Outcome<A, E>
        if (row.value.status === null) {
          // Another process runs it: look again once it has a reply (or is gone).
          yield* awaitRow(app, keyDigest, request)
          continue
        }
        return { _tag: "Replayed", reply: { status: row.value.status, body: row.value.body ?? "" } } as Outcome<A, E>
      }
    }).pipe(Effect.withSpan("IdempotencyKeys.once"))

    /** Deletes the keys older than CLAWDFORGE_IDEMPOTENCY_TTL_SECS: the sweeper's. */
    const purgeExpired = Effect.fn("IdempotencyKeys.purgeExpired")(
      function*(now: number) {
        yield* sql`DELETE FROM idempotency_keys WHERE created_at < ${now - ttl}`
      },
      Effect.orDie
    )

    return { once, purgeExpired } as const
  }),
  dependencies: [DatabaseLive, AppConfig.Default]
}) {}
