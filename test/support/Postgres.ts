/**
 * A throwaway PostgreSQL server for the tests (and the bench): `initdb` into a temp folder (as the
 * `postgres` OS user when we run as root, which initdb refuses to be), trust on 127.0.0.1 only, a
 * free port, its unix socket inside that folder; `stop` kills it (`-m immediate`: nothing of it is
 * worth keeping) and removes the folder. Used as vitest's global setup of the `postgres` project:
 * one server per run, stopped at the end whatever the tests did; each test gets databases of its own.
 */
import { execFileSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir, userInfo } from "node:os"
import { createRequire } from "node:module"
import { join } from "node:path"
import { pgTypes } from "../../src/services/ledger/Postgres.js"
import { freePort } from "./freePort.js"

export interface PostgresServer {
  readonly host: string
  readonly port: number
  /** The superuser; trusted, so without a password. */
  readonly user: string
}

/** A role that must give its password (scram-sha-256): for the tests of a wrong one. */
export const passwordRole = "clawdforge_pw"

declare module "vitest" {
  export interface ProvidedContext {
    postgres: PostgresServer
  }
}

/** The newest server's binaries (`/usr/lib/postgresql/<version>/bin` on Debian), or `PG_BIN`. */
const binDir = () => {
  if (process.env.PG_BIN) return process.env.PG_BIN
  const root = "/usr/lib/postgresql"
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => +b - +a) : []
  if (versions.length === 0) throw new Error("No PostgreSQL server binaries under /usr/lib/postgresql: apt-get install postgresql")
  return join(root, versions[0]!, "bin")
}

const asRoot = userInfo().uid === 0

/** Runs a server binary, as `postgres` when we are root. */
const run = (bin: string, args: ReadonlyArray<string>) =>
  asRoot
    ? execFileSync("runuser", ["-u", "postgres", "--", bin, ...args], { stdio: "pipe" })
    : execFileSync(bin, args, { stdio: "pipe" })

export const startPostgres = async (): Promise<{ readonly server: PostgresServer; readonly stop: () => void }> => {
  const bin = binDir()
  const dir = mkdtempSync(join(tmpdir(), "clawdforge-pg-"))
  const data = join(dir, "data")
  if (asRoot) chownSync(dir, Number(execFileSync("id", ["-u", "postgres"])), Number(execFileSync("id", ["-g", "postgres"])))
  const stop = () => {
    try {
      if (existsSync(join(data, "postmaster.pid"))) run(join(bin, "pg_ctl"), ["-D", data, "-m", "immediate", "stop"])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
  try {
    run(join(bin, "initdb"), ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"])
    writeFileSync(
      join(data, "pg_hba.conf"),
      [
        "local all all trust",
        `host all ${passwordRole} 127.0.0.1/32 scram-sha-256`,
        "host all all 127.0.0.1/32 trust"
      ].join("\n") + "\n"
    )
    const port = await freePort()
    // A server for tests: durability is the OS's problem here, not the ledger's.
    const options = [
      "-c listen_addresses=127.0.0.1",
      `-c port=${port}`,
      `-c unix_socket_directories=${dir}`,
      "-c fsync=off",
      "-c synchronous_commit=off",
      "-c full_page_writes=off",
      "-c max_connections=300"
    ].join(" ")
    run(join(bin, "pg_ctl"), ["-D", data, "-o", options, "-l", join(dir, "server.log"), "-w", "start"])
    return { server: { host: "127.0.0.1", port, user: "postgres" }, stop }
  } catch (error) {
    stop()
    throw error
  }
}

/** Vitest global setup: one server for the run, given to the tests by `inject("postgres")`. */
export default async function setup(project: { provide: (key: "postgres", value: PostgresServer) => void }) {
  const { server, stop } = await startPostgres()
  project.provide("postgres", server)
  return stop
}

// node-postgres (what @effect/sql-pg drives) has no types of its own here.
interface PgClientLike {
  connect(): Promise<void>
  query(text: string, params?: ReadonlyArray<unknown>): Promise<{ rows: Array<Record<string, any>> }>
  end(): Promise<void>
}
const Pg = createRequire(import.meta.url)("pg") as {
  Client: new(config: { connectionString: string; types?: typeof pgTypes }) => PgClientLike
}

export const databaseUrl = (server: PostgresServer, database: string, user = server.user) =>
  `postgres://${user}@${server.host}:${server.port}/${database}`

/** Runs one statement on the database at `url` (`$1`... parameters). */
export const pgQuery = async (url: string, text: string, params: ReadonlyArray<unknown> = []) => {
  // BIGINT read as numbers, as the gateway reads them.
  const client = new Pg.Client({ connectionString: url, types: pgTypes })
  await client.connect()
  try {
    return (await client.query(text, params)).rows
  } finally {
    await client.end()
  }
}

/** A new empty database on the server: its URL. */
export const createDatabase = async (server: PostgresServer) => {
  const name = `ledger_${randomBytes(6).toString("hex")}`
  await pgQuery(databaseUrl(server, "postgres"), `CREATE DATABASE ${name}`)
  return databaseUrl(server, name)
}

/** Drops the database at `url`, closing whatever is still connected to it. */
export const dropDatabase = async (server: PostgresServer, url: string) => {
  await pgQuery(databaseUrl(server, "postgres"), `DROP DATABASE IF EXISTS ${new URL(url).pathname.slice(1)} WITH (FORCE)`)
}
