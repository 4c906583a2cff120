/**
 * The admin CLI (`bin/clawdforge.mjs`, as `npx clawdforge` runs it) against the ledger of a
 * running gateway, and the ledger tokens' cache in-process.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option, Redacted, TestClock } from "effect"
import { join, resolve } from "node:path"
import { AppName } from "../src/domain/Ids.js"
import { AppConfig } from "../src/services/config/AppConfig.js"
import { AppTokens, tokenDigest } from "../src/services/ledger/AppTokens.js"
import { Auth, ledgerTokensTtl } from "../src/services/tenancy/Auth.js"
import { DatabaseLive } from "../src/services/ledger/Database.js"
import { api, dataDir, runToExit, startGateway } from "./support/GatewayProcess.js"
import { ledgerIn } from "./support/Ledgers.js"
import { appName, appToken, layerTestConfig, otherApp, otherToken } from "./support/TestGateway.js"

const root = resolve(import.meta.dirname, "..")

/** One `clawdforge ...` process on the given ledger. */
const clawdforge = (db: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  runToExit([join(root, "bin", "clawdforge.mjs"), ...args], { CLAWDFORGE_DB: db, CLAWDFORGE_APP_TOKENS: "", ...env })

describe("clawdforge CLI", () => {
  it("apps add/list/revoke and sessions list/show/close work on a running gateway's ledger", async () => {
    const data = dataDir()
    const db = await ledgerIn(data)

    const added = await clawdforge(db, ["apps", "add", "ledger-app"])
    expect(added.code, added.stderr).toBe(0)
    const token = added.stdout.trim()
    expect(token).toMatch(/^cf_[A-Za-z0-9_-]{43}$/)
    expect(added.stderr).not.toContain(token)
    const hash = tokenDigest(token).toString("hex")

    // The env tokens name another app only: the ledger's token must be accepted on its own.
    const [listed, gateway] = await Promise.all([
      clawdforge(db, ["apps", "list"]),
      startGateway({ CLAWDFORGE_APP_TOKENS: `${otherApp}=${otherToken}` }, data)
    ])
    try {
      expect(listed.code, listed.stderr).toBe(0)
      expect(listed.stdout).toMatch(/ledger-app\s+active/)
      expect(listed.stdout + listed.stderr).not.toContain(token)
      expect(listed.stdout + listed.stderr).not.toContain(hash)

      const created = await api(gateway, "POST", "/sessions", { agent: "echo" }, token)
      expect(created.status, JSON.stringify(created.body)).toBe(200)
      const id: string = created.body.session_id
      const turn = await api(gateway, "POST", `/sessions/${id}/turn`, { prompt: "hello" }, token)
      expect(turn.status, JSON.stringify(turn.body)).toBe(200)
      expect((await api(gateway, "GET", "/sessions", undefined, otherToken)).body.count).toBe(0)

      const open = await clawdforge(db, ["sessions", "list", "--status", "open", "--json"])
      expect(open.code, open.stderr).toBe(0)
      expect(JSON.parse(open.stdout)).toMatchObject([{ session_id: id, app_name: "ledger-app", status: "open" }])

      const closed = await clawdforge(db, ["sessions", "close", id])
      expect(closed.code, closed.stderr).toBe(0)
      expect(closed.stdout).toContain(`Closed session ${id}`)
      expect((await api(gateway, "POST", `/sessions/${id}/turn`, { prompt: "again" }, token)).status).toBe(410)

      // Revoke and read the audit trail at once; the revocation must bite within 5 s.
      const [revoked, shown] = await Promise.all([
        clawdforge(db, ["apps", "revoke", "ledger-app"]),
        clawdforge(db, ["sessions", "show", id])
      ])
      expect(revoked.code, revoked.stderr).toBe(0)
      const deadline = Date.now() + 5_000
      let status = 200
      while (Date.now() < deadline) {
        status = (await api(gateway, "GET", "/sessions", undefined, token)).status
        if (status === 401) break
        await new Promise((r) => setTimeout(r, 100))
      }
      expect(status).toBe(401)
      expect((await api(gateway, "GET", "/sessions", undefined, otherToken)).status).toBe(200)

      expect(shown.code, shown.stderr).toBe(0)
      const detail = JSON.parse(shown.stdout)
      expect(detail.session).toMatchObject({ session_id: id, app_name: "ledger-app", status: "closed", turn_count: 1 })
      const events: Array<string> = detail.events.map((e: { event: string }) => e.event)
      expect(events[0]).toBe("create")
      expect(events).toContain("turn")
      expect(events.at(-1)).toBe("close")

      expect(gateway.output()).not.toContain(token)
      expect(gateway.output()).not.toContain(hash)
    } finally {
      await gateway.stop("SIGKILL")
    }
  }, 60_000)

  it("a refusal or a bad configuration is one line on stderr and exit code 1", async () => {
    const db = await ledgerIn(dataDir())
    const [unknownSession, badConfig] = await Promise.all([
      clawdforge(db, ["sessions", "close", "x".repeat(24)]),
      // `serve` starts up as the gateway does: an invalid variable is one line naming it.
      clawdforge(db, ["serve"], { CLAWDFORGE_PORT: "not-a-port" })
    ])
    expect(unknownSession.code).toBe(1)
    expect(unknownSession.stderr.trim()).toBe(`clawdforge: No session ${"x".repeat(24)}`)
    expect(badConfig.code).toBe(1)
    expect(badConfig.stderr.trim().split("\n")).toHaveLength(1)
    expect(badConfig.stderr).toContain("CLAWDFORGE_PORT")
  })
})

describe("ledger tokens in Auth", () => {
  const layer = Auth.DefaultWithoutDependencies.pipe(
    Layer.provideMerge(
      Layer.mergeAll(AppConfig.Default, AppTokens.DefaultWithoutDependencies.pipe(Layer.provideMerge(DatabaseLive)))
    ),
    Layer.provide(layerTestConfig())
  )

  it.scoped("a ledger token is accepted after the cache TTL and refused within one TTL of its revocation", () =>
    Effect.gen(function*() {
      const apps = yield* AppTokens
      const auth = yield* Auth
      const name = AppName.make("ledger-app")
      const { token } = yield* apps.add(name)
      expect(yield* apps.lookup(tokenDigest(Redacted.value(token)))).toEqual(Option.some(name))

      yield* TestClock.adjust(ledgerTokensTtl)
      expect(yield* auth.authenticate(token)).toBe(name)
      expect(yield* auth.authenticate(Redacted.make(appToken))).toBe(appName)

      expect((yield* Effect.flip(apps.add(name)))._tag).toBe("AppExists")
      expect((yield* Effect.flip(apps.revoke(AppName.make("no-such-app"))))._tag).toBe("AppNotFound")
      expect(yield* apps.revoke(name)).toEqual({ alreadyRevoked: false, closedSessions: [] })
      expect(yield* apps.revoke(name)).toEqual({ alreadyRevoked: true, closedSessions: [] })
      expect(yield* apps.lookup(tokenDigest(Redacted.value(token)))).toEqual(Option.none())
      yield* TestClock.adjust(ledgerTokensTtl)
      const refused = yield* Effect.flip(auth.authenticate(token))
      expect(refused._tag).toBe("Unauthorized")
      expect(refused.message).not.toContain(Redacted.value(token))

      // Adding a revoked app again issues a new token; the old one stays refused.
      const reissued = yield* apps.add(name)
      yield* TestClock.adjust(ledgerTokensTtl)
      expect(yield* auth.authenticate(reissued.token)).toBe(name)
      expect((yield* Effect.flip(auth.authenticate(token)))._tag).toBe("Unauthorized")
      expect(yield* apps.list()).toMatchObject([{ name, revoked_at: null }])
      expect(JSON.stringify(yield* apps.list())).not.toContain(tokenDigest(Redacted.value(reissued.token)).toString("hex"))
    }).pipe(Effect.provide(layer)))
})
