/**
 * Does the ledger stay fast when it is large? The shared gateway's ledger file is filled with
 * 100,000+ sessions (and their audit events), then `GET /sessions` is timed through the gateway
 * and one sweeper pass (no HTTP surface) runs in this process on the same file, with work to do
 * and then with nothing left to do.
 */
import { SqlClient } from "@effect/sql"
import { ConfigProvider, Effect, Layer, Logger, LogLevel, ManagedRuntime } from "effect"
import { randomBytes } from "node:crypto"
import { join } from "node:path"
import { layerServices } from "../src/Gateway.js"
import { ClaudeRunner } from "../src/services/agents/ClaudeRunner.js"
import { AgentPool } from "../src/services/sessions/AgentPool.js"
import { sweepOnce } from "../src/services/sessions/Sweeper.js"
import { type Bench, ms, type Question } from "./support/bench.js"
import { appTokens, type ClawdforgeGateway } from "./support/gateways.js"
import { expectOk } from "./support/http.js"
import { sleep } from "./support/processes.js"
import { now, round } from "./support/stats.js"
import { timeSequential } from "./support/timing.js"

/** The gateway's services in this process, on the gateway's own ledger file. */
const servicesOn = (gateway: ClawdforgeGateway) =>
  ManagedRuntime.make(
    layerServices(AgentPool.Default, ClaudeRunner.Default).pipe(
      Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(
        new Map([
          ["CLAWDFORGE_DB", gateway.db],
          ["CLAWDFORGE_WORKSPACE_ROOT", gateway.workspaces],
          ["CLAWDFORGE_APP_TOKENS", appTokens],
          ["CLAWDFORGE_SWEEP_INTERVAL_SECS", "3600"]
        ])
      ))),
      Layer.provide(Logger.minimumLogLevel(LogLevel.None))
    )
  )

/** Fresh open sessions (80% of them the listing app's), idle ones, expired ones and recently closed ones. */
const sessionRows = (gateway: ClawdforgeGateway, sizes: Bench["sizes"]) => {
  const nowS = Math.floor(Date.now() / 1000)
  const ttl = 3600
  const hardTtl = 604800
  let seq = 0
  const row = (app: string, created: number, lastTurn: number | null, closed: number | null) => {
    const id = `b${(seq++).toString(36).padStart(7, "0")}${randomBytes(9).toString("base64url")}`
    return {
      session_id: id,
      app_name: app,
      agent: "echo",
      meta: JSON.stringify({ ticket: `T-${seq}`, user: "bench" }),
      cwd: join(gateway.workspaces, app, id),
      permission_mode: "approve-reads",
      agent_session_id: `sa-${randomBytes(8).toString("hex")}`,
      created_at: created,
      last_turn_at: lastTurn,
      closed_at: closed,
      turn_count: lastTurn === null ? 0 : 3
    }
  }
  const rows: Array<ReturnType<typeof row>> = []
  for (let i = 0; i < sizes.ledgerFresh; i++) {
    const created = nowS - Math.floor(Math.random() * 1800)
    rows.push(row(i % 5 === 4 ? "other" : "bench", created, i % 2 === 0 ? null : created + 60, null))
  }
  for (let i = 0; i < sizes.ledgerIdle; i++) {
    rows.push(row(i % 2 ? "other" : "bench", nowS - ttl - 7200, nowS - ttl - 60, null))
  }
  for (let i = 0; i < sizes.ledgerExpired; i++) {
    rows.push(row(i % 2 ? "other" : "bench", nowS - hardTtl - 90_000, nowS - hardTtl - 80_000, nowS - hardTtl - 3600))
  }
  for (let i = 0; i < sizes.ledgerRecentlyClosed; i++) {
    rows.push(row(i % 2 ? "other" : "bench", nowS - 7200, nowS - 5000, nowS - 1000))
  }
  return rows
}

export const ledger: Question = {
  name: "ledger",
  run: async (bench: Bench) => {
    const { sizes } = bench
    const gateway = await bench.gateway()
    const runtime = servicesOn(gateway)
    try {
      // The services' start-up sweep runs now, before the stale rows exist.
      await runtime.runPromise(Effect.void)
      await sleep(300)
      const rows = sessionRows(gateway, sizes)
      const events = rows.flatMap((r) => {
        const create = { session_id: r.session_id, at: r.created_at, event: "create", detail: `{"agent":"echo"}` }
        if (r.last_turn_at === null) return [create]
        const turn = { session_id: r.session_id, at: r.last_turn_at, event: "turn", detail: `{"turn_index":3}` }
        return [create, turn, turn]
      })
      const t0 = now()
      await runtime.runPromise(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql.withTransaction(Effect.gen(function*() {
          for (let i = 0; i < rows.length; i += 1000) yield* sql`INSERT INTO sessions ${sql.insert(rows.slice(i, i + 1000))}`
          for (let i = 0; i < events.length; i += 2000) {
            yield* sql`INSERT INTO session_events ${sql.insert(events.slice(i, i + 2000))}`
          }
        }))
        yield* sql`PRAGMA wal_checkpoint(TRUNCATE)`
        yield* sql`ANALYZE`
      }))
      const insertMs = now() - t0
      const [total] = await runtime.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ sessions: number; events: number }>`SELECT (SELECT count(*) FROM sessions) AS sessions,
          (SELECT count(*) FROM session_events) AS events`))

      // Through the gateway process: the app owning ~80% of the rows, default limit.
      const list = async () => {
        const body = expectOk(await gateway.call("GET", "/sessions"), "list")
        if (body.count !== 100) throw new Error(`list returned ${body.count} sessions`)
      }
      const listOpen = async () => expectOk(await gateway.call("GET", "/sessions?status=open"), "list open")
      const listAll = await timeSequential(list, sizes.listWarmup, sizes.lists)
      const listOpenOnly = await timeSequential(listOpen, sizes.listWarmup, sizes.lists)

      let t = now()
      const counts = await runtime.runPromise(sweepOnce)
      const sweepMs = now() - t
      t = now()
      const idleCounts = await runtime.runPromise(sweepOnce)
      const idleSweepMs = now() - t
      const sweep = { ms: round(sweepMs, 1), ...counts }
      return {
        results: {
          rows: total!,
          insertMs: round(insertMs, 0),
          list: listAll,
          listOpen: listOpenOnly,
          sweep,
          sweepNothingToDo: { ms: round(idleSweepMs, 1), ...idleCounts }
        },
        rows: [
          {
            metric: "GET /sessions p50 ms",
            gateway: ms(listAll.p50),
            ratio: `p99 ${ms(listAll.p99)}`,
            note: `${total!.sessions} sessions, ${total!.events} events in the ledger`
          },
          { metric: "GET /sessions?status=open p50", gateway: ms(listOpenOnly.p50), ratio: `p99 ${ms(listOpenOnly.p99)}` },
          {
            metric: "sweeper pass ms",
            gateway: ms(sweep.ms),
            ratio: `${ms(idleSweepMs)} idle pass`,
            target: "< 50 ms",
            pass: sweep.ms < 50,
            note: `soft-closed ${sweep.soft_closed}, hard-deleted ${sweep.hard_deleted}`
          }
        ]
      }
    } finally {
      await runtime.dispose()
    }
  }
}
