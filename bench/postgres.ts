/**
 * What does the ledger on PostgreSQL cost a turn? The same gateway on a throwaway local server
 * (test/support/Postgres.ts: initdb in a temp folder, stopped and removed at the end) beside the
 * shared gateway on its SQLite file, measured now, one after the other: sequential turn latency and
 * turns/s with 10 sessions. The "direct" column holds the SQLite figures. Neither ledger waits
 * for an fsync per commit (SQLite: WAL with synchronous=NORMAL; the test server: fsync off).
 */
import { createDatabase, startPostgres } from "../test/support/Postgres.js"
import { type Bench, ms, type Question, ratio } from "./support/bench.js"
import { startClawdforge, stopGateway } from "./support/gateways.js"
import { overHttp } from "./throughput.js"
import { sequentialTurns } from "./turn.js"

const sessions = 10

export const postgres: Question = {
  name: "postgres",
  run: async (bench: Bench) => {
    const { sizes } = bench
    const pg = await startPostgres()
    // Stopped however the run ends (the bench's SIGINT handler exits the process).
    process.once("exit", pg.stop)
    try {
      const db = await createDatabase(pg.server)
      const onPostgres = await startClawdforge({ env: { CLAWDFORGE_DB: db } })
      const onSqlite = await bench.gateway()
      try {
        bench.note("turn latency, SQLite then PostgreSQL ledger")
        const sqliteTurn = await sequentialTurns(onSqlite, sizes.turnWarmup, sizes.turnsLogOff)
        const pgTurn = await sequentialTurns(onPostgres, sizes.turnWarmup, sizes.turnsLogOff)
        bench.note(`throughput, ${sessions} sessions, SQLite then PostgreSQL ledger`)
        const sqliteRate = await overHttp(onSqlite, sessions, sizes.throughputWindow)
        const pgRate = await overHttp(onPostgres, sessions, sizes.throughputWindow)
        return {
          results: {
            postgres: { turn: pgTurn, throughput: pgRate, startMs: onPostgres.startMs },
            sqlite: { turn: sqliteTurn, throughput: sqliteRate }
          },
          rows: [
            {
              metric: "turn p50 ms, PostgreSQL ledger",
              gateway: ms(pgTurn.p50),
              direct: ms(sqliteTurn.p50),
              ratio: ratio(pgTurn.p50, sqliteTurn.p50, "SQLite"),
              note: `direct column: the same gateway on SQLite; p99 ${ms(pgTurn.p99)} vs ${ms(sqliteTurn.p99)}, ` +
                `${ms(pgTurn.serverCpuMs!)} vs ${ms(sqliteTurn.serverCpuMs!)} ms CPU/turn`
            },
            {
              metric: `turns/s, ${sessions} sessions, PostgreSQL ledger`,
              gateway: String(pgRate.turnsPerSecond),
              direct: String(sqliteRate.turnsPerSecond),
              ratio: ratio(pgRate.turnsPerSecond, sqliteRate.turnsPerSecond, "SQLite"),
              note: `direct column: SQLite; CPU/turn in window: ${ms(pgRate.serverCpuMsPerTurn!)} gw on PostgreSQL ` +
                `(the server's own not counted), ${ms(sqliteRate.serverCpuMsPerTurn!)} on SQLite`
            }
          ]
        }
      } finally {
        await stopGateway(onPostgres)
      }
    } finally {
      process.removeListener("exit", pg.stop)
      pg.stop()
    }
  }
}
