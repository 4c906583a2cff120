/**
 * Per-app agent environments (issue 13): AES-256-GCM under CLAWDFORGE_SECRET_KEY in a real SQLite
 * file; the wrong key and no key are refused with one line naming the variable, and no value is in
 * the ledger's file or its WAL in plaintext.
 */
import { describe, expect, it } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { ConfigError, ConfigProvider, Effect, Exit, Layer } from "effect"
import { existsSync, readFileSync } from "node:fs"
import { AppName } from "../src/domain/Ids.js"
import { AppConfig, describeConfigError } from "../src/services/config/AppConfig.js"
import { DatabaseLive } from "../src/services/ledger/Database.js"
import { AppSecrets, AppSecretsCheck } from "../src/services/tenancy/AppSecrets.js"
import { ledgerFile } from "./support/Tenancy.js"

const app = AppName.make("app-a")
const other = AppName.make("app-b")
const key = "correct horse battery staple"
const value = "sk-ant-PLAINTEXT-never-in-the-ledger-0123456789"

/** AppSecrets on a given ledger file, with the given key (none when undefined). */
const layerOn = (db: string, secretKey: string | undefined) =>
  AppSecrets.DefaultWithoutDependencies.pipe(
    Layer.provideMerge(DatabaseLive),
    Layer.provideMerge(AppConfig.Default),
    Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries({
      CLAWDFORGE_DB: db,
      ...(secretKey === undefined ? {} : { CLAWDFORGE_SECRET_KEY: secretKey })
    })))))
  )

const failureMessage = (exit: Exit.Exit<unknown, { readonly message: string }>) =>
  Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error.message : undefined

describe("AppSecrets", () => {
  it.effect("set, names, envFor and unset round-trip; each app sees only its own", () =>
    Effect.gen(function*() {
      const secrets = yield* AppSecrets
      expect(yield* secrets.envFor(app)).toEqual({})
      yield* secrets.set(app, "ANTHROPIC_API_KEY", value)
      yield* secrets.set(app, "_EMPTY", "")
      yield* secrets.set(app, "ANTHROPIC_API_KEY", `${value}-2`)
      yield* secrets.set(other, "OTHER_KEY", "other-value")
      expect(yield* secrets.names(app)).toEqual(["ANTHROPIC_API_KEY", "_EMPTY"])
      expect(yield* secrets.envFor(app)).toEqual({ ANTHROPIC_API_KEY: `${value}-2`, _EMPTY: "" })
      expect(yield* secrets.envFor(other)).toEqual({ OTHER_KEY: "other-value" })
      expect(yield* secrets.unset(app, "_EMPTY")).toBe(true)
      expect(yield* secrets.unset(app, "_EMPTY")).toBe(false)
      expect(yield* secrets.envFor(app)).toEqual({ ANTHROPIC_API_KEY: `${value}-2` })
      expect(yield* secrets.verify()).toBe(2)
    }).pipe(Effect.provide(layerOn(ledgerFile(), key))))

  it.effect.each(["1BAD", "BAD-NAME", "", "A B", "KEY=VALUE", "É"])("the name %j is refused and nothing is stored", (name) =>
    Effect.gen(function*() {
      const secrets = yield* AppSecrets
      const exit = yield* Effect.exit(secrets.set(app, name, value))
      expect(failureMessage(exit)).toMatch(/name is a letter or _/)
      expect(failureMessage(exit)).not.toContain(value)
      expect(yield* secrets.names(app)).toEqual([])
    }).pipe(Effect.provide(layerOn(ledgerFile(), key))))

  it.effect("every value has a fresh IV and is bound to its app and name", () =>
    Effect.gen(function*() {
      const secrets = yield* AppSecrets
      const sql = yield* SqlClient.SqlClient
      yield* secrets.set(app, "A", value)
      yield* secrets.set(app, "B", value)
      const rows = yield* sql<{ name: string; value: string }>`SELECT name, value FROM app_env ORDER BY name`
      expect(rows[0]!.value).not.toBe(rows[1]!.value)
      expect(rows[0]!.value).toMatch(/^v1:/)
      // A blob moved to another name does not decrypt.
      yield* sql`UPDATE app_env SET value = ${rows[0]!.value} WHERE name = 'B'`
      const exit = yield* Effect.exit(secrets.envFor(app))
      expect(failureMessage(exit)).toMatch(/^CLAWDFORGE_SECRET_KEY does not decrypt/)
    }).pipe(Effect.provide(layerOn(ledgerFile(), key)), Effect.orDie))

  it.live("the wrong key and no key are refused with one line naming CLAWDFORGE_SECRET_KEY; names need no key", () =>
    Effect.gen(function*() {
      const db = ledgerFile()
      yield* Effect.flatMap(AppSecrets, (s) => s.set(app, "ANTHROPIC_API_KEY", value)).pipe(
        Effect.provide(layerOn(db, key))
      )

      const wrong = yield* Effect.gen(function*() {
        const secrets = yield* AppSecrets
        return [yield* Effect.exit(secrets.envFor(app)), yield* Effect.exit(secrets.verify())] as const
      }).pipe(Effect.provide(layerOn(db, "another key of 16+ chars")))
      for (const exit of wrong) {
        expect(failureMessage(exit)).toBe(
          "CLAWDFORGE_SECRET_KEY does not decrypt the agent environment of app app-a: it is not the key it was set with"
        )
      }

      yield* Effect.gen(function*() {
        const secrets = yield* AppSecrets
        const set = yield* Effect.exit(secrets.set(app, "OTHER", "x"))
        expect(failureMessage(set)).toBe("CLAWDFORGE_SECRET_KEY is not set: apps' agent environments need it")
        const env = yield* Effect.exit(secrets.envFor(app))
        expect(failureMessage(env)).toMatch(/^CLAWDFORGE_SECRET_KEY is not set/)
        // An app without secrets starts its agents as before; names and unset need no key.
        expect(yield* secrets.envFor(other)).toEqual({})
        expect(yield* secrets.names(app)).toEqual(["ANTHROPIC_API_KEY"])
      }).pipe(Effect.provide(layerOn(db, undefined)))

      // A gateway started without the key on that ledger: one line naming the variable.
      const startUp = yield* Layer.build(AppSecretsCheck.pipe(Layer.provide(layerOn(db, undefined)))).pipe(
        Effect.scoped,
        Effect.flip
      )
      expect(ConfigError.isConfigError(startUp)).toBe(true)
      const line = describeConfigError(startUp as ConfigError.ConfigError)
      expect(line).toBe("CLAWDFORGE_SECRET_KEY: is not set, but the ledger holds the agent environment of app app-a")
      // With the right key it starts.
      yield* Layer.build(AppSecretsCheck.pipe(Layer.provide(layerOn(db, key)))).pipe(Effect.scoped)
      // Without secrets in the ledger, no key is needed.
      yield* Layer.build(AppSecretsCheck.pipe(Layer.provide(layerOn(ledgerFile(), undefined)))).pipe(Effect.scoped)
    }))

  it.effect("a key shorter than 16 characters stops start-up with one line naming the variable", () =>
    Effect.gen(function*() {
      const error = yield* AppConfig.pipe(
        Effect.provide(AppConfig.Default),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["CLAWDFORGE_SECRET_KEY", "short"]]))),
        Effect.flip
      )
      expect(describeConfigError(error)).toBe("CLAWDFORGE_SECRET_KEY: Expected at least 16 characters")
      expect(describeConfigError(error)).not.toContain("short")
    }))

  it.live("neither the SQLite file nor its WAL holds a value in plaintext", () =>
    Effect.gen(function*() {
      const db = ledgerFile()
      yield* Effect.gen(function*() {
        const secrets = yield* AppSecrets
        yield* secrets.set(app, "ANTHROPIC_API_KEY", value)
        yield* secrets.set(other, "ANTHROPIC_API_KEY", value)
        expect((yield* secrets.envFor(app))["ANTHROPIC_API_KEY"]).toBe(value)
        // Read while the connection is open: the WAL holds the last commits.
        expect(existsSync(`${db}-wal`)).toBe(true)
        for (const file of [db, `${db}-wal`]) {
          const bytes = readFileSync(file)
          expect(bytes.length).toBeGreaterThan(0)
          expect(bytes.includes(Buffer.from(value, "utf8"))).toBe(false)
          expect(bytes.includes(Buffer.from("PLAINTEXT", "utf8"))).toBe(false)
        }
      }).pipe(Effect.provide(layerOn(db, key)))
      for (const file of [db, `${db}-wal`]) {
        if (existsSync(file)) expect(readFileSync(file).includes(Buffer.from("PLAINTEXT", "utf8"))).toBe(false)
      }
    }))
})
