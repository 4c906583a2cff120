/**
 * The tenancy commands of the admin CLI against a running gateway process (issue 13): what
 * `clawdforge apps limits` and `apps env` change reaches the gateway within 5 s.
 */
import { describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import { join, resolve } from "node:path"
import { api, dataDir, freePort, runGatewayToExit, runToExit, startGateway } from "./support/GatewayProcess.js"
import { ledgerIn } from "./support/Ledgers.js"
import { appName, appToken } from "./support/TestGateway.js"

const root = resolve(import.meta.dirname, "..")
const secretKey = "cli-test-secret-key-0123456789"
const tokens = `${appName}=${appToken}`

const clawdforge = (db: string, args: ReadonlyArray<string>) =>
  runToExit([join(root, "bin", "clawdforge.mjs"), ...args], {
    CLAWDFORGE_DB: db,
    CLAWDFORGE_APP_TOKENS: tokens,
    CLAWDFORGE_SECRET_KEY: secretKey
  })

/** Asks until `done` holds, for at most 5 s; the last answer. */
const within5s = async <A>(ask: () => Promise<A>, done: (a: A) => boolean) => {
  const deadline = Date.now() + 5_000
  let last = await ask()
  while (!done(last) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100))
    last = await ask()
  }
  return last
}

describe("clawdforge apps limits / apps env on a running gateway", () => {
  it("a limit set with the CLI is enforced within 5 s; an env value reaches the app's next agent", async () => {
    const data = dataDir()
    const db = await ledgerIn(data)
    const gateway = await startGateway({ CLAWDFORGE_APP_TOKENS: tokens, CLAWDFORGE_SECRET_KEY: secretKey }, data)
    try {
      const sid = (await api(gateway, "POST", "/sessions", { agent: "echo" }, appToken)).body.session_id
      expect((await api(gateway, "POST", `/sessions/${sid}/turn`, { prompt: "one" }, appToken)).status).toBe(200)

      const set = await clawdforge(db, ["apps", "limits", appName, "--turns-per-minute", "1"])
      expect(set.code, set.stderr).toBe(0)
      const refused = await within5s(
        () => api(gateway, "POST", `/sessions/${sid}/turn`, { prompt: "two" }, appToken),
        (r) => r.status === 429
      )
      expect(refused.body).toMatchObject({ error: "rate_limited", turns_per_minute: 1 })
      const limits = await api(gateway, "GET", "/limits", undefined, appToken)
      expect(limits.body.limits.turns_per_minute).toBe(1)

      // Bad numbers change nothing.
      const bad = await clawdforge(db, ["apps", "limits", appName, "--max-sessions", "-3"])
      expect(bad.code).not.toBe(0)
      expect(bad.stderr).toContain("--max-sessions")
      expect((await clawdforge(db, ["apps", "limits", appName, "--clear"])).code).toBe(0)

      const secret = "sk-cli-app-value-42"
      const env = await clawdforge(db, ["apps", "env", "set", appName, `DEMO_API_KEY=${secret}`])
      expect(env.code, env.stderr).toBe(0)
      expect(env.stdout + env.stderr).not.toContain(secret)
      const listed = await clawdforge(db, ["apps", "env", "list", appName])
      expect(listed.stdout).toContain("DEMO_API_KEY")
      expect(listed.stdout).not.toContain(secret)
      expect((await clawdforge(db, ["apps", "env", "set", appName, "1BAD=x"])).code).not.toBe(0)

      const digest = `sha256:${createHash("sha256").update(secret).digest("hex").slice(0, 16)}`
      const seen = await within5s(async () => {
        const fresh = (await api(gateway, "POST", "/sessions", { agent: "echo" }, appToken)).body.session_id
        const reply = await api(gateway, "POST", `/sessions/${fresh}/turn`, { prompt: "env DEMO_API_KEY" }, appToken)
        await api(gateway, "DELETE", `/sessions/${fresh}`, undefined, appToken)
        return reply
      }, (r) => JSON.stringify(r.body).includes(digest))
      expect(JSON.stringify(seen.body)).toContain(digest)
      expect(gateway.output()).not.toContain(secret)
    } finally {
      await gateway.stop()
    }
  }, 60_000)
})

describe("start-up refusals", () => {
  it("a malformed CLAWDFORGE_APP_LIMITS stops the gateway with one line naming the variable", async () => {
    for (const value of ["{not json", '{"app-a":{"max_sessions":-1}}', '{"*":{"turns_per_minute":"many"}}', '{"*":{"cost":1}}']) {
      const { code, stderr } = await runGatewayToExit({ CLAWDFORGE_APP_LIMITS: value, CLAWDFORGE_PORT: String(await freePort()) })
      expect(code, value).not.toBe(0)
      const lines = stderr.trim().split("\n")
      expect(lines, value).toHaveLength(1)
      expect(lines[0]).toMatch(/^clawdforge: invalid configuration: CLAWDFORGE_APP_LIMITS: /)
    }
  }, 60_000)

  it("a ledger holding an app's agent environment needs CLAWDFORGE_SECRET_KEY: without it the gateway does not start", async () => {
    const data = dataDir()
    const db = await ledgerIn(data)
    expect((await clawdforge(db, ["apps", "env", "set", appName, "DEMO_API_KEY=sk-start-up-secret"])).code).toBe(0)
    const { code, stderr } = await runGatewayToExit({
      CLAWDFORGE_DB: db,
      CLAWDFORGE_APP_TOKENS: tokens,
      CLAWDFORGE_SECRET_KEY: "",
      CLAWDFORGE_PORT: String(await freePort())
    })
    expect(code).not.toBe(0)
    const lines = stderr.trim().split("\n")
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^clawdforge: invalid configuration: CLAWDFORGE_SECRET_KEY: /)
    expect(stderr).not.toContain("sk-start-up-secret")
    // The CLI without the key refuses to write, in one line too.
    const refused = await runToExit([join(root, "bin", "clawdforge.mjs"), "apps", "env", "set", appName, "OTHER=x"], {
      CLAWDFORGE_DB: db,
      CLAWDFORGE_APP_TOKENS: tokens,
      CLAWDFORGE_SECRET_KEY: ""
    })
    expect(refused.code).not.toBe(0)
    expect(refused.stderr).toContain("CLAWDFORGE_SECRET_KEY")
  }, 60_000)
})
