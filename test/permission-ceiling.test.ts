/**
 * Two per-app limits of the isolation issue: `permission_modes`, the permission ceiling a create
 * is held to (400 `permission_mode_not_allowed`, nothing made), and `network`, what the app's
 * agents reach (checked as CLAWDFORGE_AGENT_NETWORK is). Each through CLAWDFORGE_APP_LIMITS, the
 * ledger (`AppLimits.set`), the admin API and the CLI, and shown by `GET /limits`.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { ConfigError, ConfigProvider, Effect, Either, Option } from "effect"
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { afterAll } from "vitest"
import { AppName } from "../src/domain/Ids.js"
import { AppConfig, describeConfigError } from "../src/services/config/AppConfig.js"
import { AppLimits } from "../src/services/tenancy/AppLimits.js"
import { api, dataDir, runToExit, startGateway } from "./support/GatewayProcess.js"
import { ledgerIn } from "./support/Ledgers.js"
import { agentLogFile, startedPids } from "./support/ScriptedAgent.js"
import { layerTenancy } from "./support/Tenancy.js"
import { appName, appToken, layerScriptedGateway, otherApp, otherToken, request } from "./support/TestGateway.js"

const app = AppName.make(appName)
const other = AppName.make(otherApp)
const limitsEnv = (limits: unknown) => ({ CLAWDFORGE_APP_LIMITS: JSON.stringify(limits) })
const adminToken = "admin-token-0123456789abcdef"

// The workspace roots of this file's gateways, removed when it ends.
const roots: Array<string> = []
const workspaceRoot = () => {
  const root = mkdtempSync(join(tmpdir(), "clawdforge-ceiling-"))
  roots.push(root)
  return root
}
afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true, maxRetries: 5 })
})

const create = (body: Record<string, unknown>, token = appToken) =>
  request("POST", "/sessions", { token, body: { agent: "scripted", ...body } })

/** The session folders under an app's workspace root (its `.home` aside). */
const sessionDirs = (root: string, name: string) =>
  existsSync(join(root, name)) ? readdirSync(join(root, name)).filter((entry) => !entry.startsWith(".")) : []

const sessionRows = (name: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ n: unknown }>`SELECT count(*) AS n FROM sessions WHERE app_name = ${name}`.pipe(
      Effect.map((rows) => Number(rows[0]!.n)),
      Effect.orDie
    ))

describe("AppLimits: permission_modes and network", () => {
  it.effect("the ledger wins over the app's entry, which wins over \"*\"; a network not set is None", () =>
    Effect.gen(function*() {
      const limits = yield* AppLimits
      expect(yield* limits.permissionModesFor(app)).toEqual(["deny-all"])
      expect(yield* limits.networkFor(app)).toEqual(Option.some({ _tag: "none" }))
      expect(yield* limits.permissionModesFor(other)).toEqual(["deny-all"])
      expect(yield* limits.networkFor(other)).toEqual(Option.none())

      // Stored each once, in the modes' own order.
      yield* limits.set(app, { permission_modes: ["ask", "approve-reads", "ask"], network: " allow:registry.npmjs.org:443,[::1] " })
      const now = yield* limits.configured(app)
      expect(now.limits).toMatchObject({ permission_modes: ["approve-reads", "ask"], network: "allow:registry.npmjs.org:443,[::1]" })
      expect(now.sources).toMatchObject({ permission_modes: "ledger", network: "ledger", max_sessions: "none" })
      expect(yield* limits.permissionModesFor(app)).toEqual(["approve-reads", "ask"])
      expect(yield* limits.networkFor(app)).toEqual(Option.some({
        _tag: "allow",
        hosts: [{ host: "registry.npmjs.org", port: 443 }, { host: "::1", port: undefined }]
      }))
      // Another limit set later keeps these.
      yield* limits.set(app, { max_sessions: 3 })
      expect((yield* limits.configured(app)).limits).toMatchObject({ max_sessions: 3, network: "allow:registry.npmjs.org:443,[::1]" })

      // A network CLAWDFORGE_AGENT_NETWORK would refuse is refused, naming it; nothing is stored.
      for (const network of ["bogus", "allow:bad host!", "allow:example.com:99999"]) {
        const refused = yield* Effect.flip(limits.set(app, { network, max_sessions: 9 }))
        expect(refused).toMatchObject({ _tag: "BadRequest", error: "bad_request" })
        expect(refused.message).toMatch(/^Invalid request: network: /)
      }
      expect(yield* Effect.flip(limits.set(app, { permission_modes: [] }))).toMatchObject({ _tag: "BadRequest" })
      expect((yield* limits.configured(app)).limits).toMatchObject({ max_sessions: 3, permission_modes: ["approve-reads", "ask"] })

      // The ceiling refuses another mode, and the gateway's default when none is asked for.
      expect(yield* Effect.flip(limits.checkPermissionMode(app, "approve-all"))).toMatchObject({
        _tag: "PermissionModeNotAllowed",
        error: "permission_mode_not_allowed",
        allowed: ["approve-reads", "ask"]
      })
      yield* limits.checkPermissionMode(app, "ask")
      yield* limits.checkPermissionMode(app, undefined) // the default, approve-reads

      expect(yield* limits.clear(app)).toBe(true)
      expect((yield* limits.configured(app)).sources).toMatchObject({
        permission_modes: "CLAWDFORGE_APP_LIMITS *",
        network: "CLAWDFORGE_APP_LIMITS"
      })
    }).pipe(Effect.provide(layerTenancy(limitsEnv({
      "*": { permission_modes: ["deny-all"] },
      [appName]: { network: "none" }
    })))))

  it.effect.each<{ readonly what: string; readonly limits: unknown; readonly line: RegExp }>([
    { what: "a network the gateway would refuse", limits: { [appName]: { network: "everywhere" } }, line: /^CLAWDFORGE_APP_LIMITS: app-a\.network: / },
    { what: "a host that is not one", limits: { "*": { network: "allow:no such host" } }, line: /^CLAWDFORGE_APP_LIMITS: \*\.network: / },
    { what: "an empty permission_modes", limits: { [appName]: { permission_modes: [] } }, line: /^CLAWDFORGE_APP_LIMITS: app-a\.permission_modes: / },
    { what: "an unknown mode", limits: { [appName]: { permission_modes: ["root"] } }, line: /^CLAWDFORGE_APP_LIMITS: app-a\.permission_modes: / }
  ])("$what in CLAWDFORGE_APP_LIMITS stops start-up with one line naming it", ({ limits, line }) =>
    Effect.gen(function*() {
      const config = yield* AppConfig.pipe(
        Effect.provide(AppConfig.Default),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(limitsEnv(limits))))),
        Effect.either
      )
      // The schema refuses the modes; AppLimits (its parser is the gateway's) the networks.
      const error = Either.isLeft(config)
        ? config.left
        : yield* Effect.flip(Effect.provide(AppLimits, layerTenancy(limitsEnv(limits))))
      expect(ConfigError.isConfigError(error)).toBe(true)
      const described = describeConfigError(error as ConfigError.ConfigError)
      expect(described).toMatch(line)
      expect(described.split("\n")).toHaveLength(1)
    }))
})

describe("POST /sessions under the app's permission_modes", () => {
  it.scopedLive("a mode outside them is 400 permission_mode_not_allowed and leaves nothing; those inside work", () => {
    const log = agentLogFile()
    const root = workspaceRoot()
    return Effect.gen(function*() {
      for (const mode of ["approve-all", "ask"]) {
        const refused = yield* create({ permission_mode: mode })
        expect(refused.status, mode).toBe(400)
        expect(refused.body).toMatchObject({
          ok: false,
          error: "permission_mode_not_allowed",
          allowed: ["approve-reads", "deny-all"]
        })
        expect(refused.body.message).toContain(`"${mode}"`)
        expect(refused.body.message).toContain("approve-reads, deny-all")
      }
      // No ledger row, no workspace, no agent.
      expect(yield* sessionRows(appName)).toBe(0)
      expect(sessionDirs(root, appName)).toEqual([])
      expect(startedPids(log)).toEqual([])

      const denyAll = yield* create({ permission_mode: "deny-all" })
      expect(denyAll.status).toBe(200)
      expect(denyAll.body.permission_mode).toBe("deny-all")
      // None asked for: the gateway's default (approve-reads), which the app may use.
      const byDefault = yield* create({})
      expect(byDefault.status).toBe(200)
      expect(byDefault.body.permission_mode).toBe("approve-reads")
      expect(yield* sessionRows(appName)).toBe(2)
      // Another app keeps all four.
      expect((yield* create({ permission_mode: "approve-all" }, otherToken)).status).toBe(200)

      const limits = (yield* request("GET", "/limits", { token: appToken })).body
      expect(limits.limits).toMatchObject({ permission_modes: ["approve-reads", "deny-all"], network: "none" })
      expect((yield* request("GET", "/limits", { token: otherToken })).body.limits).toMatchObject({
        permission_modes: ["approve-all", "approve-reads", "deny-all", "ask"],
        network: null
      })
    }).pipe(Effect.provide(layerScriptedGateway(log, {
      CLAWDFORGE_WORKSPACE_ROOT: root,
      ...limitsEnv({ [appName]: { permission_modes: ["approve-reads", "deny-all"], network: "none" } })
    })))
  })

  it.scopedLive("a gateway default outside an app's modes refuses its creates that name none, saying so", () =>
    Effect.gen(function*() {
      const refused = yield* create({})
      expect(refused.status).toBe(400)
      expect(refused.body).toMatchObject({ error: "permission_mode_not_allowed", allowed: ["approve-reads", "ask"] })
      expect(refused.body.message).toContain("CLAWDFORGE_PERMISSION_MODE")
      expect(refused.body.message).toContain("\"approve-all\"")
      expect(yield* sessionRows(appName)).toBe(0)
      expect((yield* create({ permission_mode: "approve-reads" })).status).toBe(200)
    }).pipe(Effect.provide(layerScriptedGateway(agentLogFile(), {
      CLAWDFORGE_WORKSPACE_ROOT: workspaceRoot(),
      CLAWDFORGE_PERMISSION_MODE: "approve-all",
      ...limitsEnv({ "*": { permission_modes: ["approve-reads", "ask"] } })
    }))))
})

describe("setting them", () => {
  const admin = (path: string, body: unknown) => request("PUT" as "POST", path, { token: adminToken, body })

  it.scopedLive("PUT /admin/apps/{name}/limits sets both, GET /limits shows them, a create obeys at once", () =>
    Effect.gen(function*() {
      const set = yield* admin(`/admin/apps/${appName}/limits`, {
        permission_modes: ["deny-all"],
        network: "allow:registry.npmjs.org:443"
      })
      expect(set.status).toBe(200)
      expect(set.body).toMatchObject({
        limits: { permission_modes: ["deny-all"], network: "allow:registry.npmjs.org:443", max_sessions: null },
        sources: { permission_modes: "ledger", network: "ledger", max_sessions: "none" }
      })
      const shown = (yield* request("GET", "/limits", { token: appToken })).body
      expect(shown.limits).toMatchObject({ permission_modes: ["deny-all"], network: "allow:registry.npmjs.org:443" })
      expect((yield* create({ permission_mode: "approve-reads" })).body.error).toBe("permission_mode_not_allowed")
      expect((yield* create({ permission_mode: "deny-all" })).status).toBe(200)

      // Bad values are 400s naming the limit, and change nothing.
      for (const [body, named] of [
        [{ network: "bogus" }, "network"],
        [{ network: "allow:bad host!" }, "network"],
        [{ network: "" }, "network"],
        [{ permission_modes: [] }, "permission_modes"],
        [{ permission_modes: ["root"] }, "permission_modes"],
        [{ permission_modes: "deny-all" }, "permission_modes"]
      ] as const) {
        const reply = yield* admin(`/admin/apps/${appName}/limits`, body)
        expect(reply.status, JSON.stringify(body)).toBe(400)
        expect(reply.body).toMatchObject({ ok: false, error: "bad_request" })
        expect(reply.body.message, JSON.stringify(body)).toContain(named)
      }
      expect((yield* request("GET", "/limits", { token: appToken })).body.limits).toMatchObject({
        permission_modes: ["deny-all"],
        network: "allow:registry.npmjs.org:443"
      })
      // `{}` takes them out again: all four modes, the gateway's network.
      expect((yield* admin(`/admin/apps/${appName}/limits`, {})).body.limits).toMatchObject({
        permission_modes: ["approve-all", "approve-reads", "deny-all", "ask"],
        network: null
      })
    }).pipe(Effect.provide(layerScriptedGateway(agentLogFile(), {
      CLAWDFORGE_ADMIN_TOKEN: adminToken,
      CLAWDFORGE_WORKSPACE_ROOT: workspaceRoot()
    }))))

  it("clawdforge apps limits --permission-modes --network reach a running gateway within 5 s", async () => {
    const data = dataDir()
    roots.push(data)
    const db = await ledgerIn(data)
    const clawdforge = (...args: ReadonlyArray<string>) =>
      runToExit([resolve(import.meta.dirname, "..", "bin", "clawdforge.mjs"), "apps", "limits", appName, ...args], {
        CLAWDFORGE_DB: db,
        CLAWDFORGE_APP_TOKENS: `${appName}=${appToken}`
      })
    const gateway = await startGateway({ CLAWDFORGE_SANDBOX: "off" }, data)
    try {
      const set = await clawdforge("--permission-modes", "deny-all, ask", "--network", "none")
      expect(set.code, set.stderr).toBe(0)
      expect(set.stdout).toMatch(/permission_modes\s+deny-all,ask\s+ledger/)
      expect(set.stdout).toMatch(/network\s+none\s+ledger/)
      const json = JSON.parse((await clawdforge("--json")).stdout)
      expect(json.limits).toMatchObject({ permission_modes: ["deny-all", "ask"], network: "none" })

      const deadline = Date.now() + 5_000
      let limits = await api(gateway, "GET", "/limits", undefined, appToken)
      while (limits.body.limits.network !== "none" && Date.now() < deadline) {
        await new Promise((done) => setTimeout(done, 100))
        limits = await api(gateway, "GET", "/limits", undefined, appToken)
      }
      expect(limits.body.limits).toMatchObject({ permission_modes: ["deny-all", "ask"], network: "none" })
      const refused = await api(gateway, "POST", "/sessions", { agent: "echo", permission_mode: "approve-all" }, appToken)
      expect(refused.status).toBe(400)
      expect(refused.body.error).toBe("permission_mode_not_allowed")
      expect(sessionDirs(join(data, "workspaces"), appName)).toEqual([])

      // Bad values: exit 1 with the option named, nothing changed.
      for (const [option, value] of [["--network", "bogus"], ["--permission-modes", "root"], ["--permission-modes", ","]]) {
        const bad = await clawdforge(option!, value!)
        expect(bad.code, `${option} ${value}`).not.toBe(0)
        expect(bad.stderr + bad.stdout).toContain(option)
      }
      expect(JSON.parse((await clawdforge("--json")).stdout).limits).toMatchObject({ network: "none" })
    } finally {
      await gateway.stop()
    }
  }, 60_000)
})
