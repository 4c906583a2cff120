/**
 * The ledger on PostgreSQL (the `postgres` project only): start-up on an empty database shared by
 * several gateways, and what start-up says about a URL it cannot use.
 */
import { describe, expect, it } from "vitest"
import { api, dataDir, freePort, runGatewayToExit, startGateway } from "./support/GatewayProcess.js"
import { postgres } from "./support/Ledgers.js"
import { agentLogFile, scriptedAgents } from "./support/ScriptedAgent.js"
import { createDatabase, databaseUrl, passwordRole, pgQuery } from "./support/Postgres.js"

const server = postgres!

describe("the ledger on PostgreSQL", () => {
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
    await pgQuery(databaseUrl(server, "postgres"), `DROP ROLE IF EXISTS ${passwordRole}`)
    await pgQuery(databaseUrl(server, "postgres"), `CREATE ROLE ${passwordRole} LOGIN PASSWORD 'the-right-one'`)
    const url = databaseUrl(server, "postgres", `${passwordRole}:${password}`)
    const { code, stdout, stderr } = await runGatewayToExit({ CLAWDFORGE_DB: url, CLAWDFORGE_PORT: String(await freePort()) })
    expect(code).not.toBe(0)
    expect(stdout + stderr).toContain("password authentication failed")
    expect(stdout + stderr).toContain(`postgres://${passwordRole}@${server.host}:${server.port}/postgres`)
    expect(stdout + stderr).not.toContain(password)
  })

  it("an unreachable server stops start-up, and the error does not show the password", async () => {
    const password = "An0ther-Secret"
    const { code, stdout, stderr } = await runGatewayToExit({
      CLAWDFORGE_DB: `postgresql://someone:${password}@127.0.0.1:1/ledger`,
      CLAWDFORGE_PORT: String(await freePort())
    })
    expect(code).not.toBe(0)
    expect(stdout + stderr).toContain("ECONNREFUSED")
    expect(stdout + stderr).not.toContain(password)
  })
})
