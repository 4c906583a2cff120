import { SqlClient } from "@effect/sql"
import { Clock, ConfigError, Duration, Effect, Layer, Option, Redacted, Schema } from "effect"
import { createCipheriv, createDecipheriv, randomBytes, scrypt } from "node:crypto"
import type { AppName } from "../../domain/Ids.js"
import { AppConfig } from "../config/AppConfig.js"
import { DatabaseLive } from "../ledger/Database.js"
import { makeLedgerCopy } from "../ledger/LedgerCopy.js"

/** How stale the gateway's copy of the apps' environments may be (the CLI changes them). */
export const appEnvTtl = Duration.seconds(2)

/** What an environment variable's name must look like. */
export const envNamePattern = /^[A-Za-z_][A-Za-z0-9_]*$/
const maxValueBytes = 64 * 1024

export class InvalidAppEnv extends Schema.TaggedError<InvalidAppEnv>()("InvalidAppEnv", {
  message: Schema.String
}) {}

/** The secrets cannot be read or written: no CLAWDFORGE_SECRET_KEY, or not the one they were set with. */
export class SecretsUnavailable extends Schema.TaggedError<SecretsUnavailable>()("SecretsUnavailable", {
  message: Schema.String
}) {}

const checkName = (name: string) =>
  envNamePattern.test(name)
    ? Effect.void
    // A name is not secret, but a mistyped `VALUE=KEY` would put the value here: never echo it.
    : Effect.fail(new InvalidAppEnv({ message: "An environment variable's name is a letter or _, then letters, digits or _" }))

// The AES-256 key is scrypt of CLAWDFORGE_SECRET_KEY (any string of 16 characters or more, so
// a passphrase is slow to guess too) under a fixed salt: one key per ledger, whatever the process.
const kdfSalt = "clawdforge app env v1"
const deriveKey = (secret: Redacted.Redacted) =>
  Effect.async<Buffer>((resume) => {
    scrypt(Redacted.value(secret), kdfSalt, 32, { N: 1 << 14, r: 8, p: 1 }, (error, key) =>
      resume(error === null ? Effect.succeed(key) : Effect.die(error)))
  })

const ivBytes = 12
const tagBytes = 16
const version = "v1:"
/** Binds a value to its app and name: a blob moved to another row does not decrypt. */
const aad = (app: string, name: string) => Buffer.from(`${app}\u0000${name}`, "utf8")

/** `v1:` + base64 of a fresh random IV, the GCM tag and the ciphertext. */
const seal = (key: Buffer, app: string, name: string, value: string) => {
  const iv = randomBytes(ivBytes)
  const cipher = createCipheriv("aes-256-gcm", key, iv).setAAD(aad(app, name))
  const ciphertext = Buffer.concat([cipher.update(value, "utf8"), cipher.final()])
  return version + Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString("base64")
}

/** The value, or undefined when the key (or the row) is not the one it was sealed with. */
const open = (key: Buffer, app: string, name: string, blob: string): string | undefined => {
  if (!blob.startsWith(version)) return undefined
  const bytes = Buffer.from(blob.slice(version.length), "base64")
  if (bytes.length < ivBytes + tagBytes) return undefined
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, bytes.subarray(0, ivBytes))
      .setAAD(aad(app, name))
      .setAuthTag(bytes.subarray(ivBytes, ivBytes + tagBytes))
    return Buffer.concat([decipher.update(bytes.subarray(ivBytes + tagBytes)), decipher.final()]).toString("utf8")
  } catch {
    return undefined
  }
}

interface EnvRow {
  readonly app_name: string
  readonly name: string
  readonly value: string
}

/**
 * Apps' own agent environments (`app_env`): what `clawdforge apps env set` stores, each value
 * AES-256-GCM under CLAWDFORGE_SECRET_KEY with a fresh IV, its app and name as associated data.
 * No value is ever logged or put in an error. Names are readable (and removable) without the key;
 * values need it, and the wrong key is told apart by the GCM tag.
 */
export class AppSecrets extends Effect.Service<AppSecrets>()("clawdforge/AppSecrets", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { secretKey } = yield* AppConfig

    // Derived once, when first needed: the commands that never touch a value do not pay scrypt.
    const key = yield* Effect.cached(
      Option.match(secretKey, {
        onNone: () =>
          Effect.fail(
            new SecretsUnavailable({ message: "CLAWDFORGE_SECRET_KEY is not set: apps' agent environments need it" })
          ),
        onSome: deriveKey
      })
    )

    const wrongKey = (app: string) =>
      new SecretsUnavailable({
        message: `CLAWDFORGE_SECRET_KEY does not decrypt the agent environment of app ${app}: ` +
          `it is not the key it was set with`
      })

    /** The app's environment, decrypted: fails when a value cannot be. */
    const decrypt = (app: string, rows: ReadonlyArray<EnvRow>) =>
      Effect.flatMap(key, (aesKey) => {
        const env: Record<string, string> = {}
        for (const row of rows) {
          const value = open(aesKey, app, row.name, row.value)
          if (value === undefined) return Effect.fail(wrongKey(app))
          env[row.name] = value
        }
        return Effect.succeed(env as Readonly<Record<string, string>>)
      })

    // Every app's rows; an app's decrypted environment is kept until its rows change.
    const decrypted = new Map<string, { readonly rows: ReadonlyArray<EnvRow>; readonly env: Readonly<Record<string, string>> }>()
    const readAll = sql<EnvRow>`SELECT app_name, name, value FROM app_env ORDER BY app_name, name`.pipe(
      Effect.map((rows) => {
        const byApp = new Map<string, Array<EnvRow>>()
        for (const row of rows) {
          const list = byApp.get(row.app_name)
          if (list === undefined) byApp.set(row.app_name, [row])
          else list.push(row)
        }
        return byApp as ReadonlyMap<string, ReadonlyArray<EnvRow>>
      }),
      Effect.orDie
    )
    const envRows = makeLedgerCopy({
      read: readAll,
      initial: new Map() as ReadonlyMap<string, ReadonlyArray<EnvRow>>,
      ttl: appEnvTtl,
      what: "apps' environments"
    })
    const sameRows = (a: ReadonlyArray<EnvRow>, b: ReadonlyArray<EnvRow>) =>
      a.length === b.length && a.every((row, i) => row.name === b[i]!.name && row.value === b[i]!.value)

    /**
     * The app's agent environment (decrypted), to merge over its agent's registry env when it
     * starts. `{}` at the cost of a map lookup for an app without one; fails with
     * `SecretsUnavailable` when the app has one and the key is missing or wrong.
     */
    const envFor = Effect.fn("AppSecrets.envFor")(function*(app: AppName) {
      const rows = (yield* envRows.get).get(app)
      if (rows === undefined) return {} as Readonly<Record<string, string>>
      const known = decrypted.get(app)
      if (known !== undefined && sameRows(known.rows, rows)) return known.env
      const env = yield* decrypt(app, rows)
      decrypted.set(app, { rows, env })
      return env
    })

    /**
     * At the gateway's start: when the ledger holds any app's environment, the key must be set and
     * be the one it was set with. Returns how many apps have one.
     */
    const verify = Effect.fn("AppSecrets.verify")(function*() {
      const byApp = yield* readAll
      if (byApp.size > 0 && Option.isNone(secretKey)) {
        return yield* new SecretsUnavailable({
          message: `CLAWDFORGE_SECRET_KEY is not set, but the ledger holds the agent environment of ` +
            `app${byApp.size === 1 ? "" : "s"} ${[...byApp.keys()].join(", ")}`
        })
      }
      for (const [app, rows] of byApp) yield* decrypt(app, rows)
      const sealed = yield* sql<{ app_name: string; secret: string }>`
        SELECT app_name, secret FROM app_webhooks WHERE secret LIKE ${version + "%"} ORDER BY app_name`.pipe(Effect.orDie)
      if (sealed.length > 0 && Option.isNone(secretKey)) {
        return yield* new SecretsUnavailable({
          message: `CLAWDFORGE_SECRET_KEY is not set, but the ledger holds the sealed webhook signing secret of ` +
            `app${sealed.length === 1 ? "" : "s"} ${sealed.map((row) => row.app_name).join(", ")}`
        })
      }
      for (const row of sealed) yield* openWebhookSecret(row.app_name, row.secret)
      return byApp.size
    })

    // ---- webhook signing secrets ----

    // A webhook's secret is sealed as if it were a variable of this name, which no variable can have.
    const webhookSecretName = "webhook signing secret"

    /**
     * The app's webhook signing secret as the ledger keeps it: sealed under CLAWDFORGE_SECRET_KEY
     * when it is set, as it is otherwise (it is needed to sign, so it cannot be a digest).
     */
    const sealWebhookSecret = (app: AppName, secret: Redacted.Redacted) =>
      Option.isNone(secretKey)
        ? Effect.succeed(Redacted.value(secret))
        : Effect.map(Effect.orDie(key), (aesKey) => seal(aesKey, app, webhookSecretName, Redacted.value(secret)))

    /** The signing secret from what the ledger keeps; a sealed one needs the key it was sealed with. */
    const openWebhookSecret = (app: string, stored: string): Effect.Effect<Redacted.Redacted, SecretsUnavailable> =>
      !stored.startsWith(version)
        ? Effect.succeed(Redacted.make(stored))
        : Effect.flatMap(key, (aesKey) => {
          const secret = open(aesKey, app, webhookSecretName, stored)
          return secret === undefined
            ? Effect.fail(
              new SecretsUnavailable({
                message: `CLAWDFORGE_SECRET_KEY does not decrypt the webhook signing secret of app ${app}: ` +
                  `it is not the key it was set with`
              })
            )
            : Effect.succeed(Redacted.make(secret))
        })

    // ---- the admin's (CLI) ----

    /** Sets one variable of the app's agent environment (encrypted; needs the key). */
    const set = Effect.fn("AppSecrets.set")(function*(app: AppName, name: string, value: string) {
      yield* checkName(name)
      if (Buffer.byteLength(value, "utf8") > maxValueBytes) {
        return yield* new InvalidAppEnv({ message: `The value of ${name} is over ${maxValueBytes / 1024} KiB` })
      }
      const blob = seal(yield* key, app, name, value)
      const at = Math.floor((yield* Clock.currentTimeMillis) / 1000)
      yield* sql`INSERT INTO app_env (app_name, name, value, updated_at) VALUES (${app}, ${name}, ${blob}, ${at})
        ON CONFLICT (app_name, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`.pipe(
          Effect.orDie
        )
      yield* envRows.invalidate
    })

    /** Removes one variable (no key needed: a lost key's secrets can still be removed); false when unset. */
    const unset = Effect.fn("AppSecrets.unset")(function*(app: AppName, name: string) {
      yield* checkName(name)
      const rows = yield* sql`DELETE FROM app_env WHERE app_name = ${app} AND name = ${name} RETURNING name`.pipe(
        Effect.orDie
      )
      yield* envRows.invalidate
      return rows.length > 0
    })

    /** The names of the app's variables (never their values; no key needed). */
    const names = Effect.fn("AppSecrets.names")(
      function*(app: AppName) {
        const rows = yield* sql<{ name: string }>`SELECT name FROM app_env WHERE app_name = ${app} ORDER BY name`
        return rows.map((row) => row.name)
      },
      Effect.orDie
    )

    return { envFor, verify, set, unset, names, sealWebhookSecret, openWebhookSecret } as const
  }),
  dependencies: [DatabaseLive, AppConfig.Default]
}) {}

/**
 * For the gateway's layers: start-up fails, as an invalid configuration (one line naming
 * CLAWDFORGE_SECRET_KEY), when the ledger holds apps' environments the key cannot decrypt.
 */
export const AppSecretsCheck = Layer.effectDiscard(
  Effect.flatMap(AppSecrets, (secrets) => secrets.verify()).pipe(
    Effect.mapError((error) =>
      ConfigError.InvalidData(["CLAWDFORGE_SECRET_KEY"], error.message.replace(/^CLAWDFORGE_SECRET_KEY /, ""))
    )
  )
)
