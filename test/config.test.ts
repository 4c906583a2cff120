import { describe, expect, it } from "@effect/vitest"
import { ConfigError, ConfigProvider, Duration, Effect, Either, Redacted } from "effect"
import { AppConfig, describeConfigError } from "../src/services/config/AppConfig.js"

const load = (env: Record<string, string>) =>
  AppConfig.pipe(
    Effect.provide(AppConfig.Default),
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))),
    Effect.either
  )

describe("AppConfig", () => {
  it.effect("has the documented defaults", () =>
    Effect.gen(function*() {
      const config = Either.getOrThrow(yield* load({}))
      expect(config.host).toBe("127.0.0.1")
      expect(config.port).toBe(8787)
      expect(config.database).toEqual({ _tag: "Sqlite", filename: "./data/clawdforge.db" })
      expect(config.appTokens).toEqual([])
      expect(config.maxLiveSessions).toBe(8)
      expect(Duration.toSeconds(config.sessionTtl)).toBe(3600)
      expect(Duration.toSeconds(config.sessionHardTtl)).toBe(604800)
      expect(Duration.toSeconds(config.sweepInterval)).toBe(60)
      expect(Duration.toSeconds(config.turnTimeout)).toBe(600)
      expect(config.claudeBin).toBe("claude")
      expect(config.workspaceRoot).toBe("./data/workspaces")
    }))

  it.effect("reads app tokens as redacted values", () =>
    Effect.gen(function*() {
      const config = Either.getOrThrow(yield* load({ CLAWDFORGE_APP_TOKENS: "a=tok1, b=tok2" }))
      expect(config.appTokens.map(([app]) => app)).toEqual(["a", "b"])
      expect(config.appTokens.map(([, token]) => Redacted.value(token))).toEqual(["tok1", "tok2"])
      expect(String(config.appTokens[0]![1])).not.toContain("tok1")
    }))

  it.effect("reads a postgres:// or postgresql:// CLAWDFORGE_DB as a redacted URL", () =>
    Effect.gen(function*() {
      for (const scheme of ["postgres", "postgresql"]) {
        const url = `${scheme}://ledger:hunter2@db.internal:5433/clawdforge`
        const config = Either.getOrThrow(yield* load({ CLAWDFORGE_DB: url }))
        if (config.database._tag !== "Postgres") throw new Error("expected PostgreSQL")
        expect(Redacted.value(config.database.url)).toBe(url)
        expect(config.database.display).toBe(`${scheme}://ledger@db.internal:5433/clawdforge`)
        expect(String(config.database.url)).not.toContain("hunter2")
      }
    }))

  it.effect("reads custom agents", () =>
    Effect.gen(function*() {
      const config = Either.getOrThrow(
        yield* load({ CLAWDFORGE_AGENTS: JSON.stringify({ mine: { command: ["my-agent", "--acp"] } }) })
      )
      expect(config.agents["mine"]).toEqual({ command: ["my-agent", "--acp"], driver: "acp", env: {} })
    }))

  it.effect.each([
    ["CLAWDFORGE_PORT", "not-a-port"],
    ["CLAWDFORGE_PORT", "70000"],
    ["CLAWDFORGE_MAX_LIVE_SESSIONS", "0"],
    ["CLAWDFORGE_SESSION_TTL_SECS", "soon"],
    ["CLAWDFORGE_SESSION_HARD_TTL_SECS", "-1"],
    ["CLAWDFORGE_SWEEP_INTERVAL_SECS", "1.5"],
    ["CLAWDFORGE_TURN_TIMEOUT_SECS", "x"],
    ["CLAWDFORGE_AGENTS", "{\"broken\": "],
    ["CLAWDFORGE_AGENTS", "{\"x\": {\"command\": []}}"],
    ["CLAWDFORGE_AGENTS", "{\"x\": {\"command\": [\"a\"], \"driver\": \"magic\"}}"],
    ["CLAWDFORGE_APP_TOKENS", "app-without-token"],
    ["CLAWDFORGE_APP_TOKENS", "=token-without-app"],
    ["CLAWDFORGE_PERMISSION_MODE", "yolo"],
    ["CLAWDFORGE_DB", "ftp://x"],
    ["CLAWDFORGE_DB", "postgres://user:hunter2@/no-host"]
  ])("an invalid %s (%s) is one line naming the variable", ([name, value]) =>
    Effect.gen(function*() {
      const result = yield* load({ [name!]: value! })
      expect(Either.isLeft(result)).toBe(true)
      const error = Either.getLeft(result).pipe((o) => o._tag === "Some" ? o.value : undefined)!
      expect(ConfigError.isConfigError(error)).toBe(true)
      const line = describeConfigError(error as ConfigError.ConfigError)
      expect(line).toContain(name)
      expect(line).not.toContain("\n")
      if (name === "CLAWDFORGE_APP_TOKENS") expect(line).not.toContain("token-without-app")
      if (name === "CLAWDFORGE_DB") expect(line).not.toContain("hunter2")
    }))
})
