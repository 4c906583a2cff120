/**
 * The ledger on PostgreSQL (the `postgres` project only): start-up on an empty database shared by
 * several gateways, and what start-up says about a URL it cannot use.
 */
import { beforeAll, describe, expect, it } from "vitest"
import { join, resolve } from "node:path"
import { api, dataDir, freePort, runGatewayToExit, runToExit, startGateway } from "./support/GatewayProcess.js"
import { postgres } from "./support/Ledgers.js"
import { agentLogFile, scriptedAgents } from "./support/ScriptedAgent.js"
import { createDatabase, databaseUrl, passwordRole, pgQuery } from "./support/Postgres.js"

const server = postgres!
const cli = join(resolve(import.meta.dirname, ".."), "bin", "clawdforge.mjs")

describe("the ledger on PostgreSQL", () => {
  beforeAll(async () => {
    await pgQuery(databaseUrl(server, "postgres"), `DROP ROLE IF EXISTS ${passwordRole}`)
    await pgQuery(databaseUrl(server, "postgres"), `CREATE ROLE ${passwordRole} LOGIN PASSWORD 'the-right-one'`)
  })

  it("several gateways started together on one empty database all come up; the migrations ran once", async () => {
    const db = await createDatabase(server)
    const env = { CLAWDFORGE_DB: db, CLAWDFORGE_AGENTS: scriptedAgents(agentLogFile()) }
    const gateways = await Promise.all([1, 2, 3, 4].map(() => startGateway(env, dataDir())))
    try {
      const migrations = await pgQuery(db, "SELECT migration_id, name FROM effect_sql_migrations ORDER BY migration_id")
      expect(migrations.length).toBeGreaterThanOrEqual(6)
      expect(new Set(migrations.map((m) => m.migration_id)).size).toBe(migrations.length)
      // Every gateway serves the same ledger: a session created on one is seen by another.
      const created = await api(gateways[0]!, "POST", "/sessions", { agent: "scripted" })
      expect(created.status).toBe(200)
      const turn = await api(gateways[0]!, "POST", `/sessions/${created.body.session_id}/turn`, { prompt: "hello" })
      expect(turn.body).toMatchObject({ ok: true, turn_index: 1 })
      const seen = await api(gateways[3]!, "GET", `/sessions/${created.body.session_id}`)
      expect(seen.body).toMatchObject({ session_id: created.body.session_id, status: "open", turn_count: 1 })
    } finally {
      await Promise.all(gateways.map((gateway) => gateway.stop("SIGKILL")))
    }
  }, 60_000)

  it("a wrong password stops start-up, and the error does not show it", async () => {
    const password = "Sup3r-Secret-Passw0rd"
    const url = databaseUrl(server, "postgres", `${passwordRole}:${password}`)
    const { code, stdout, stderr } = await runGatewayToExit({ CLAWDFORGE_DB: url, CLAWDFORGE_PORT: String(await freePort()) })
    expect(code).toBe(1)
    // One line naming the variable and the URL without its password.
    const lines = stderr.split("\n").filter((l) => l.trim().length > 0)
    expect(lines, stderr).toHaveLength(1)
    expect(lines[0]).toContain("CLAWDFORGE_DB")
    expect(lines[0]).toContain("password authentication failed")
    expect(lines[0]).toContain(`postgres://${passwordRole}@${server.host}:${server.port}/postgres`)
    expect(stdout + stderr).not.toContain(password)
  })

  it("the admin CLI works on it, and says the same one line, without the password, when it cannot get in", async () => {
    const db = await createDatabase(server)
    const added = await runToExit([cli, "apps", "add", "pg-app"], { CLAWDFORGE_DB: db })
    expect(added.code, added.stderr).toBe(0)
    const listed = await runToExit([cli, "apps", "list", "--json"], { CLAWDFORGE_DB: db })
    expect(JSON.parse(listed.stdout)).toMatchObject([{ name: "pg-app", revoked_at: null }])
    const password = "Cli-Secret-123"
    const refused = await runToExit([cli, "apps", "list"], {
      CLAWDFORGE_DB: databaseUrl(server, "postgres", `${passwordRole}:${password}`)
    })
    expect(refused.code).toBe(1)
    expect(refused.stderr.trim().split("\n"), refused.stderr).toHaveLength(1)
    expect(refused.stderr).toContain("CLAWDFORGE_DB")
    expect(refused.stdout + refused.stderr).not.toContain(password)
  })

  it("an unreachable server stops start-up, and the error does not show the password", async () => {
    const password = "An0ther-Secret"
    const { code, stdout, stderr } = await runGatewayToExit({
      CLAWDFORGE_DB: `postgresql://someone:${password}@127.0.0.1:1/ledger`,
      CLAWDFORGE_PORT: String(await freePort())
    })
    expect(code).toBe(1)
    expect(stderr).toContain("ECONNREFUSED")
    expect(stdout + stderr).not.toContain(password)
  })
})
