import { SqlClient } from "@effect/sql"
import { Clock, Duration, Effect, Queue, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import { lookup } from "node:dns/promises"
import * as net from "node:net"
import type { AppName, SessionId } from "../../domain/Ids.js"
import type { PermissionRequest } from "../../domain/Permission.js"
import { WebhookUrlRefused } from "../../domain/Webhooks.js"
import { AppConfig } from "../config/AppConfig.js"
import { DatabaseLive } from "../ledger/Database.js"
import { makeLedgerCopy } from "../ledger/LedgerCopy.js"
import type { StoredTurnEnd } from "../ledger/Ledger.js"
import { addressRange, canonicalHost, isPublicAddress } from "../net/Addresses.js"
import { AppSecrets } from "./AppSecrets.js"

/** How stale the gateway's copy of which apps have a webhook may be (the CLI changes it). */
export const webhookConfigTtl = Duration.seconds(2)

/** The events a webhook receives. */
export type WebhookEvent = "turn.completed" | "turn.failed" | "session.closed" | "permission.requested"

/** A webhook as the admin sees it: never its secret, credentials in its URL masked. */
export interface WebhookInfo {
  readonly app: AppName
  readonly url: string
  readonly created_at: number
}

/** The URL with its user and password (if any) as `***`: what people see. */
export const maskCredentials = (href: string): string => {
  try {
    const url = new URL(href)
    if (url.username === "" && url.password === "") return href
    url.username = url.username === "" ? "" : "***"
    url.password = url.password === "" ? "" : "***"
    return url.href
  } catch {
    return href
  }
}

/** Names that are loopback whatever DNS says (RFC 6761). */
const isLoopbackName = (host: string) => host === "localhost" || host.endsWith(".localhost")

/**
 * Why the URL may not be a webhook target without resolving anything (undefined: it may): not
 * absolute http(s); unless private targets are allowed, a user or password, or a host that is an
 * address (in any spelling) outside public unicast. Checked when set and when sent.
 */
export const staticRefusal = (url: URL, allowPrivate: boolean): string | undefined => {
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return "A webhook URL must be an absolute http:// or https:// URL"
  }
  if (allowPrivate) return undefined
  if (url.username !== "" || url.password !== "") return "A webhook URL may not carry a user or password"
  const host = canonicalHost(url.hostname)
  if (net.isIP(host) !== 0 && !isPublicAddress(host)) {
    return `A webhook URL may not point at ${host} (${addressRange(host)}): only public addresses`
  }
  return undefined
}

/** How long a set waits for the name's DNS answer: a name that does not resolve yet is checked when sent. */
const setLookupTimeout = Duration.seconds(5)

/**
 * The URL as stored, or why it is refused: `staticRefusal`, then (private targets not allowed) the
 * name's addresses now, every one of which must be public. Nothing connects to it.
 */
export const checkWebhookUrl = (raw: string, allowPrivate: boolean) =>
  Effect.gen(function*() {
    let url: URL
    try {
      url = new URL(raw)
    } catch {
      return yield* new WebhookUrlRefused({ message: "A webhook URL must be an absolute http:// or https:// URL" })
    }
    const refusal = staticRefusal(url, allowPrivate)
    if (refusal !== undefined) return yield* new WebhookUrlRefused({ message: refusal })
    const host = canonicalHost(url.hostname)
    if (!allowPrivate && isLoopbackName(host)) {
      return yield* new WebhookUrlRefused({ message: `A webhook URL may not name ${host} (loopback)` })
    }
    if (!allowPrivate && net.isIP(host) === 0) {
      const addresses = yield* Effect.tryPromise(() => lookup(host, { all: true })).pipe(
        Effect.timeout(setLookupTimeout),
        Effect.orElseSucceed(() => [])
      )
      const refused = addresses.find((entry) => !isPublicAddress(entry.address))
      if (refused !== undefined) {
        return yield* new WebhookUrlRefused({
          message: `A webhook URL may not point at ${host}: it resolves to ${refused.address} ` +
            `(${addressRange(refused.address)}), only public addresses`
        })
      }
    }
    return url.href
  })

/** A new signing secret: `whsec_` and 32 random bytes, base64url. */
const newSecret = () => Redacted.make(`whsec_${randomBytes(32).toString("base64url")}`)
const newEventId = () => `evt_${randomBytes(12).toString("hex")}`

/**
 * Apps' webhooks (`app_webhooks`) and the outbox of their deliveries (`webhook_deliveries`).
 * Enqueueing is one INSERT, and only for an app that has a webhook (an in-memory copy of which
 * apps do, refreshed from the ledger at most every `webhookConfigTtl`); the sending is
 * `WebhookDelivery`'s, on a fiber of its own, woken by `wake`.
 */
export class Webhooks extends Effect.Service<Webhooks>()("clawdforge/Webhooks", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const secrets = yield* AppSecrets
    const { webhookAllowPrivate } = yield* AppConfig
    /** Offered once something is enqueued: the sender looks at the outbox then. */
    const wake = yield* Queue.sliding<void>(1)

    // Which apps have a webhook: read on every turn's end.
    const configuredApps = makeLedgerCopy({
      read: Effect.map(sql<{ app_name: string }>`SELECT app_name FROM app_webhooks`, (rows) =>
        new Set(rows.map((row) => row.app_name)) as ReadonlySet<string>),
      initial: new Set<string>() as ReadonlySet<string>,
      ttl: webhookConfigTtl,
      what: "webhooks"
    }).get

    const insert = (app: string, sessionId: string, event: WebhookEvent, fields: Record<string, unknown>) =>
      Effect.gen(function*() {
        const nowMs = yield* Clock.currentTimeMillis
        const at = Math.floor(nowMs / 1000)
        const body = JSON.stringify({ id: newEventId(), event, at, app, session_id: sessionId, ...fields })
        yield* sql`INSERT INTO webhook_deliveries (app_name, session_id, event, body, created_at, next_attempt_at)
          VALUES (${app}, ${sessionId}, ${event}, ${body}, ${at}, ${nowMs})`
      })

    /** Never fails the caller (a turn's end, a close): an event that cannot be enqueued is logged. */
    const guarded = <E, R>(self: Effect.Effect<void, E, R>) =>
      self.pipe(
        Effect.zipRight(Queue.offer(wake, undefined)),
        Effect.catchAllCause((cause) => Effect.logWarning("Could not enqueue a webhook event", cause)),
        Effect.asVoid
      )

    /** A turn's end (already stored): `turn.completed`, or `turn.failed` for any other outcome. */
    const turnEnded = (app: AppName, sessionId: SessionId, turnIndex: number, end: StoredTurnEnd) =>
      Effect.flatMap(configuredApps, (apps) =>
        apps.has(app)
          ? guarded(insert(app, sessionId, end.status === "completed" ? "turn.completed" : "turn.failed", {
            turn_index: turnIndex,
            status: end.status,
            stop_reason: end.stopReason,
            error: end.error,
            duration_ms: end.durationMs,
            // What the turn did to the workspace (null: not seen).
            changes: end.changes ?? null
          }))
          : Effect.void)

    /** A request of the agent held for the app to answer (ask mode): the request as the API lists it. */
    const permissionRequested = (app: AppName, sessionId: SessionId, request: PermissionRequest) =>
      Effect.flatMap(configuredApps, (apps) =>
        apps.has(app) ? guarded(insert(app, sessionId, "permission.requested", { request })) : Effect.void)

    /** Sessions closed (by their app or the sweeper): `session.closed` for those whose app has a webhook. */
    const sessionsClosed = (ids: ReadonlyArray<SessionId>) =>
      Effect.flatMap(configuredApps, (apps) =>
        apps.size === 0 || ids.length === 0 ? Effect.void : guarded(Effect.gen(function*() {
          const rows = yield* sql<{ session_id: string; app_name: string }>`
            SELECT session_id, app_name FROM sessions WHERE session_id IN ${sql.in(ids)}`
          yield* Effect.forEach(
            rows.filter((row) => apps.has(row.app_name)),
            (row) => insert(row.app_name, row.session_id, "session.closed", {}),
            { discard: true }
          )
        })))

    // ---- the admin's (CLI) ----

    /**
     * Sets the app's webhook URL with a new signing secret, returned once (the URL as people see
     * it: credentials masked). A refused URL changes nothing.
     */
    const set = Effect.fn("Webhooks.set")(
      function*(app: AppName, url: string) {
        const href = yield* checkWebhookUrl(url, webhookAllowPrivate)
        const secret = newSecret()
        const at = Math.floor((yield* Clock.currentTimeMillis) / 1000)
        const stored = yield* secrets.sealWebhookSecret(app, secret)
        yield* sql`INSERT INTO app_webhooks (app_name, url, secret, created_at)
          VALUES (${app}, ${href}, ${stored}, ${at})
          ON CONFLICT (app_name) DO UPDATE SET url = excluded.url, secret = excluded.secret,
            created_at = excluded.created_at`
        return { app, url: maskCredentials(href), secret, created_at: at } as const
      },
      Effect.catchTag("SqlError", Effect.die)
    )

    const show = Effect.fn("Webhooks.show")(
      function*(app: AppName) {
        const rows = yield* sql<{ url: string; created_at: number }>`
          SELECT url, created_at FROM app_webhooks WHERE app_name = ${app}`
        const row = rows[0]
        return row === undefined
          ? undefined
          : ({ app, url: maskCredentials(row.url), created_at: row.created_at } as WebhookInfo)
      },
      Effect.orDie
    )

    /** Removes the app's webhook; its pending deliveries are given up. False when it had none. */
    const remove = Effect.fn("Webhooks.remove")(
      function*(app: AppName) {
        const nowMs = yield* Clock.currentTimeMillis
        const rows = yield* sql`DELETE FROM app_webhooks WHERE app_name = ${app} RETURNING app_name`
        yield* sql`UPDATE webhook_deliveries SET given_up_at = ${nowMs}
          WHERE app_name = ${app} AND delivered_at IS NULL AND given_up_at IS NULL`
        return rows.length > 0
      },
      sql.withTransaction,
      Effect.orDie
    )

    /** Forgets deliveries delivered or given up before `cutoff` (Unix seconds), with their attempts. */
    const purgeEndedBefore = Effect.fn("Webhooks.purgeEndedBefore")(
      function*(cutoff: number) {
        const ended = sql`SELECT delivery_id FROM webhook_deliveries
          WHERE delivered_at < ${cutoff * 1000} OR given_up_at < ${cutoff * 1000}`
        yield* sql`DELETE FROM webhook_attempts WHERE delivery_id IN (${ended})`
        yield* sql`DELETE FROM webhook_deliveries WHERE delivery_id IN (${ended})`
      },
      sql.withTransaction,
      Effect.orDie
    )

    return { turnEnded, permissionRequested, sessionsClosed, set, show, remove, purgeEndedBefore, wake } as const
  }),
  dependencies: [DatabaseLive, AppSecrets.Default, AppConfig.Default]
}) {}
