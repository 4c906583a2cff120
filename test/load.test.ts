/**
 * Load: 20 sessions × 50 turns at once (each session's turns one after another, the sessions
 * in parallel) over HTTP on loopback, each session with its own scripted agent process.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { AgentPool } from "../src/services/sessions/AgentPool.js"
import { Ledger } from "../src/services/ledger/Ledger.js"
import { agentLogFile, agentText, isAlive, startedPids } from "./support/ScriptedAgent.js"
import { appToken, layerScriptedGateway, request } from "./support/TestGateway.js"

const sessionCount = 20
const turnsPerSession = 50

describe("load", () => {
  it.scopedLive(`${sessionCount} sessions × ${turnsPerSession} turns concurrently, with zero errors`, () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const createdAt = Date.now()
      const created = yield* Effect.forEach(
        Array.from({ length: sessionCount }),
        () => request("POST", "/sessions", { token: appToken, body: { agent: "scripted" } }),
        { concurrency: "unbounded" }
      )
      expect(created.map((r) => r.status)).toEqual(Array(sessionCount).fill(200))
      const sids = created.map((r) => r.body.session_id as string)
      const createMs = Date.now() - createdAt

      const errors: Array<string> = []
      const started = Date.now()
      const results = yield* Effect.forEach(
        sids,
        (sid, s) =>
          Effect.forEach(
            Array.from({ length: turnsPerSession }, (_, t) => t),
            (t) =>
              request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt: `s${s} t${t + 1}` } }).pipe(
                Effect.map((r) => {
                  if (r.status !== 200) errors.push(`session ${s} turn ${t + 1}: ${r.status} ${JSON.stringify(r.body)}`)
                  return r
                }),
                Effect.catchAllCause((cause) =>
                  Effect.sync(() => {
                    errors.push(`session ${s} turn ${t + 1}: ${cause}`)
                    return undefined
                  })
                )
              ),
            { concurrency: 1 }
          ),
        { concurrency: "unbounded" }
      )
      const elapsed = Date.now() - started
      const total = sessionCount * turnsPerSession
      console.log(
        `[load] ${sessionCount} sessions created in ${createMs} ms; ${total} turns in ${elapsed} ms: ` +
          `${(total / (elapsed / 1000)).toFixed(0)} turns/s`
      )
      expect(errors).toEqual([])

      // Each reply is its own session's turn, in order, with the agent's answer to that prompt.
      for (const [s, replies] of results.entries()) {
        expect(replies.map((r) => r?.body.turn_index)).toEqual(Array.from({ length: turnsPerSession }, (_, t) => t + 1))
        for (const [t, r] of replies.entries()) {
          expect(r!.body.session_id).toBe(sids[s])
          expect(r!.body.stop_reason).toBe("end_turn")
          expect(agentText(r!.body.events)).toBe(`echo: s${s} t${t + 1}`)
        }
      }

      // The ledger: turn_count 50 each, turn events 1..50 in order.
      const ledger = yield* Ledger
      for (const sid of sids) {
        const state = yield* request("GET", `/sessions/${sid}`, { token: appToken })
        expect(state.body).toMatchObject({ status: "open", turn_count: turnsPerSession })
        const turns = (yield* ledger.sessionEvents(sid)).filter((e) => e.event === "turn")
        expect(turns.map((e) => (e.detail as any).turn_index)).toEqual(
          Array.from({ length: turnsPerSession }, (_, t) => t + 1)
        )
      }
      const sql = yield* SqlClient.SqlClient
      const [sum] = yield* sql<{ turns: number }>`SELECT sum(turn_count) AS turns FROM sessions`
      expect(sum!.turns).toBe(total)
      // One warm agent per session served all its turns.
      const pids = startedPids(log)
      expect(pids).toHaveLength(sessionCount)

      for (const sid of sids) expect((yield* request("DELETE", `/sessions/${sid}`, { token: appToken })).body).toEqual({ ok: true })
      expect(yield* Effect.flatMap(AgentPool, (pool) => pool.live)).toBe(0)
      const deadline = Date.now() + 5_000
      while (pids.some(isAlive) && Date.now() < deadline) yield* Effect.sleep("20 millis")
      expect(pids.filter(isAlive)).toEqual([])
    }).pipe(Effect.provide(layerScriptedGateway(log, { CLAWDFORGE_MAX_LIVE_SESSIONS: String(sessionCount) })))
  }, 60_000)
})
