/**
 * The tenancy commands of the admin CLI against a running gateway process (issue 13): what
 * `clawdforge apps limits` and `apps env` change reaches the gateway within 5 s.
 */
import { describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import { join, resolve } from "node:path"
import { api, dataDir, runToExit, startGateway } from "./support/GatewayProcess.js"
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
