import type { HttpClient } from "@effect/platform/HttpClient"
import { SqlClient } from "@effect/sql"
import { Cause, Clock, Context, Duration, Either, Effect, Layer, Option, Queue, Redacted } from "effect"
import { createHmac } from "node:crypto"
import { AppConfig } from "../config/AppConfig.js"
import { maskCredentials, staticRefusal, Webhooks } from "./Webhooks.js"
import { AppSecrets } from "./AppSecrets.js"

/** Tries per delivery before it is given up. */
export const maxAttempts = 12
/** How long one attempt may wait for its answer. */
export const attemptTimeout = Duration.seconds(10)
/**
 * How often an idle sender looks at the outbox anyway: events enqueued by another process (the
 * admin CLI's `sessions close`) are sent within this long.
 */
const idleRecheck = Duration.seconds(5)
/**
 * How many deliveries of one endpoint (an app's webhook) are in flight at once: each endpoint has
 * its own queue, so a receiver that hangs holds only its own app's deliveries back.
 */
export const perEndpointConcurrency = 4

/** The wait after the `attempt`th failed try: 1 s, doubling, at most 300 s. */
export const retryDelayMs = (attempt: number) => Math.min(1000 * 2 ** (attempt - 1), 300_000)

/** `sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`. */
export const signature = (secret: string, timestamp: number, body: string) =>
  `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`, "utf8").digest("hex")}`

interface DueRow {
  readonly delivery_id: number
  readonly app_name: string
  readonly event: string
  readonly body: string
  readonly attempts: number
  readonly url: string
  readonly secret: string
}

/**
 * The webhook sender: a fiber for the life of the layer that sends the outbox's due deliveries,
 * woken when one is enqueued and when the next retry is due, and every few seconds when idle
 * (one indexed query: events the admin CLI enqueued).
 * The HTTP client is imported only once there is something to send. Every attempt is recorded;
 * a 2xx marks the delivery delivered, never sent again; deliveries pending when a gateway stopped
 * are due when the next one starts.
 */
export const WebhookDeliveryLoop = Layer.scopedDiscard(
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const webhooks = yield* Webhooks
    const secrets = yield* AppSecrets
    const { webhookAllowPrivate } = yield* AppConfig
    const scope = yield* Effect.scope
    const inFlight = new Set<number>()

    // Loaded on first use: a gateway without webhooks loads none of it.
    const loadClient = yield* Effect.cached(Effect.gen(function*() {
      const [NodeHttpClient, HttpClientModule, HttpClientRequest, { publicOnlyLookup }] = yield* Effect.promise(() =>
        Promise.all([
          import("@effect/platform-node/NodeHttpClient"),
          import("@effect/platform/HttpClient"),
          import("@effect/platform/HttpClientRequest"),
          import("../net/Addresses.js")
        ])
      )
      // The name is resolved once per connection, every address checked, and the socket opened to
      // a checked one (TLS still verifies the name): a DNS answer cannot lead it to the host's networks.
      const agent = NodeHttpClient.makeAgentLayer(webhookAllowPrivate ? {} : { lookup: publicOnlyLookup })
      const context = yield* Layer.buildWithScope(
        NodeHttpClient.layerWithoutAgent.pipe(Layer.provide(agent)),
        scope
      )
      const client: HttpClient = Context.get(context, HttpClientModule.HttpClient)
      return { client, HttpClientRequest } as const
    }))

    const attempt = (row: DueRow) =>
      Effect.gen(function*() {
        const { HttpClientRequest, client } = yield* loadClient
        const startedMs = yield* Clock.currentTimeMillis
        // Set before the check existed, or while private targets were allowed: checked again now
        // (an address in the URL is connected to without any lookup).
        const refusal = staticRefusal(new URL(row.url), webhookAllowPrivate)
        // Checked at start-up: a key changed since is a failed attempt, retried as any other.
        const secret = yield* secrets.openWebhookSecret(row.app_name, row.secret)
        const timestamp = Math.floor(startedMs / 1000)
        const request = HttpClientRequest.post(row.url).pipe(
          HttpClientRequest.setHeaders({
            "clawdforge-event": row.event,
            "clawdforge-timestamp": String(timestamp),
            "clawdforge-signature": signature(Redacted.value(secret), timestamp, row.body)
          }),
          HttpClientRequest.bodyText(row.body, "application/json")
        )
        const result = refusal !== undefined
          ? Either.left(`refused: ${refusal}`)
          : yield* client.execute(request).pipe(
            Effect.map((response) => response.status),
            Effect.scoped,
            Effect.timeoutFail({ duration: attemptTimeout, onTimeout: () => "no answer within 10 s" }),
            Effect.mapError((error) =>
              typeof error === "string"
                ? error
                // The cause says why (a refused address, a reset); the message names the URL, masked.
                : error.cause instanceof Error
                ? error.cause.message
                : maskCredentials(error.message)
            ),
            Effect.either
          )
        const endedMs = yield* Clock.currentTimeMillis
        const status = result._tag === "Right" ? result.right : null
        const error = result._tag === "Left"
          ? result.left
          : status !== null && status >= 200 && status < 300
          ? null
          : `HTTP ${status}`
        const ok = error === null
        const n = row.attempts + 1
        yield* Effect.all([
          sql`INSERT INTO webhook_attempts (delivery_id, attempt, at, status, error, duration_ms)
            VALUES (${row.delivery_id}, ${n}, ${Math.floor(endedMs / 1000)}, ${status}, ${error}, ${endedMs - startedMs})`,
          sql`UPDATE webhook_deliveries SET attempts = ${n},
              delivered_at = ${ok ? endedMs : null},
              given_up_at = ${!ok && n >= maxAttempts ? endedMs : null},
              next_attempt_at = ${endedMs + retryDelayMs(n)}
            WHERE delivery_id = ${row.delivery_id}`
        ], { discard: true }).pipe(sql.withTransaction)
        if (!ok && n >= maxAttempts) {
          yield* Effect.logWarning(`Webhook delivery ${row.delivery_id} (${row.event}) given up after ${n} tries`)
        }
      }).pipe(
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logWarning("Webhook delivery failed", cause)
        ),
        Effect.ensuring(Effect.suspend(() => {
          inFlight.delete(row.delivery_id)
          return Queue.offer(webhooks.wake, undefined)
        }))
      )

    /** Starts the due deliveries; the time (ms) the next pending one is due, if any. */
    const pass = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      // Each endpoint's first few due deliveries (those in flight among them): one app's backlog
      // never fills the page another app's deliveries are read from.
      const due = yield* sql<DueRow>`
        SELECT delivery_id, app_name, event, body, attempts, url, secret FROM (
          SELECT d.delivery_id, d.app_name, d.event, d.body, d.attempts, w.url, w.secret, d.next_attempt_at,
            row_number() OVER (PARTITION BY d.app_name ORDER BY d.next_attempt_at, d.delivery_id) AS place
          FROM webhook_deliveries d JOIN app_webhooks w ON w.app_name = d.app_name
          WHERE d.delivered_at IS NULL AND d.given_up_at IS NULL AND d.next_attempt_at <= ${now}
        ) queue WHERE place <= ${perEndpointConcurrency}
        ORDER BY next_attempt_at LIMIT 1000`
      for (const row of due) {
        if (inFlight.has(row.delivery_id)) continue
        inFlight.add(row.delivery_id)
        yield* Effect.forkIn(attempt(row), scope)
      }
      const next = yield* sql<{ next: number | null }>`
        SELECT min(d.next_attempt_at) AS next
        FROM webhook_deliveries d JOIN app_webhooks w ON w.app_name = d.app_name
        WHERE d.delivered_at IS NULL AND d.given_up_at IS NULL AND d.next_attempt_at > ${now}`
      return Option.fromNullable(next[0]?.next ?? null)
    })

    const loop = Effect.gen(function*() {
      const next = yield* pass.pipe(
        Effect.catchAllCause((cause) =>
          Effect.as(Effect.logWarning("Could not read the webhook outbox", cause), Option.some(Date.now() + 1000))
        )
      )
      const now = yield* Clock.currentTimeMillis
      const wait = Option.match(next, {
        onNone: () => idleRecheck,
        onSome: (at) => Duration.min(idleRecheck, Duration.millis(Math.max(0, at - now)))
      })
      yield* Effect.timeoutOption(Queue.take(webhooks.wake), wait)
      yield* Queue.takeAll(webhooks.wake)
    })

    yield* Effect.forever(loop).pipe(Effect.forkScoped)
  })
)

