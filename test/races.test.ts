/**
 * Races with real agents (the scripted ACP agent as child processes through the real pool,
 * HTTP on loopback): the pool cap under a burst of creates, a close racing turns on one
 * session, and the sweeper closing sessions while turns run on them.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { AgentPool } from "../src/services/sessions/AgentPool.js"
import { Ledger } from "../src/services/ledger/Ledger.js"
import { sweepOnce } from "../src/services/sessions/Sweeper.js"
import { Gen } from "./support/Fuzz.js"
import { agentLogFile, isAlive, startedPids } from "./support/ScriptedAgent.js"
import { appToken, layerScriptedGateway, request } from "./support/TestGateway.js"

const seed = Number(process.env.RACES_SEED ?? 7331)

const create = request("POST", "/sessions", { token: appToken, body: { agent: "scripted" } })
const turn = (sid: string, prompt: string) => request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt } })
const close = (sid: string) => request("DELETE", `/sessions/${sid}`, { token: appToken })
const live = Effect.flatMap(AgentPool, (pool) => pool.live)
const events = (sid: string) => Effect.flatMap(Ledger, (ledger) => ledger.sessionEvents(sid))

/** Creates a session and returns it with the pid of the agent it started (creates run one at a time). */
const createWithPid = (log: string) =>
  Effect.gen(function*() {
    const before = startedPids(log).length
    const r = yield* create
    expect(r.status, JSON.stringify(r.body)).toBe(200)
    const pids = startedPids(log).slice(before)
    expect(pids).toHaveLength(1)
    return { sid: r.body.session_id as string, pid: pids[0]! }
  })

/** The pids still alive after waiting up to `ms` for them to exit. */
const stillAlive = (pids: ReadonlyArray<number>, ms = 5_000) =>
  Effect.promise(async () => {
    const deadline = Date.now() + ms
    while (pids.some(isAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    return pids.filter(isAlive)
  })

const countBy = <A>(items: ReadonlyArray<A>, key: (a: A) => string) => {
  const out: Record<string, number> = {}
  for (const item of items) out[key(item)] = (out[key(item)] ?? 0) + 1
  return out
}

describe("races", () => {
  it.scopedLive("the pool cap is exact under 30 concurrent creates, and again once slots are freed", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const burst = Effect.forEach(Array.from({ length: 30 }), () => create, { concurrency: "unbounded" })

      const first = yield* burst
      expect(countBy(first, (r) => String(r.status))).toEqual({ 200: 6, 503: 24 })
      for (const r of first.filter((r) => r.status === 503)) {
        expect(r.body).toMatchObject({ ok: false, error: "pool_full", capacity: 6 })
      }
      expect(yield* live).toBe(6)
      // Only the admitted sessions ever started an agent, and those agents are running.
      const pids = startedPids(log)
      expect(pids).toHaveLength(6)
      expect(pids.filter(isAlive)).toHaveLength(6)
      const admitted = first.filter((r) => r.status === 200).map((r) => r.body.session_id as string)
      expect(new Set(admitted).size).toBe(6)
      const open = yield* request("GET", "/sessions?status=open", { token: appToken })
      expect(open.body.count).toBe(6)

      // Free three slots; a second burst gets exactly those three.
      for (const sid of admitted.slice(0, 3)) expect((yield* close(sid)).body).toEqual({ ok: true })
      expect(yield* live).toBe(3)
      const second = yield* burst
      expect(countBy(second, (r) => String(r.status))).toEqual({ 200: 3, 503: 27 })
      expect(yield* live).toBe(6)
      expect(startedPids(log)).toHaveLength(9)
      const sql = yield* SqlClient.SqlClient
      const [row] = yield* sql<{ n: number; open: number }>`
        SELECT count(*) AS n, count(*) - count(closed_at) AS open FROM sessions`
      expect(row).toEqual({ n: 9, open: 6 })

      const rest = [...admitted.slice(3), ...second.filter((r) => r.status === 200).map((r) => r.body.session_id)]
      for (const sid of rest) expect((yield* close(sid)).body).toEqual({ ok: true })
      expect(yield* live).toBe(0)
      expect(yield* stillAlive(startedPids(log))).toEqual([])
    }).pipe(Effect.provide(layerScriptedGateway(log, { CLAWDFORGE_MAX_LIVE_SESSIONS: "6" })))
  }, 60_000)

  it.scopedLive("a close racing turns on one session: 200 or 410 only, one close, no agent left", () => {
    const log = agentLogFile()
    const g = new Gen(seed)
    return Effect.gen(function*() {
      const rounds = 6
      const outcomes: Array<string> = []
      for (let round = 0; round < rounds; round++) {
        const { pid, sid } = yield* createWithPid(log)
        const warm = yield* turn(sid, "warm up")
        expect(warm.body.turn_index).toBe(1)

        // Several turns queue up (each a few ms in the agent) while two DELETEs land at a
        // random moment among them.
        const turns = Array.from({ length: 6 }, (_, i) => g.bool(0.5) ? `sleep ${g.int(1, 15)}` : `turn ${i}`)
        const delay = g.int(0, 60)
        const [replies, deletes] = yield* Effect.all([
          Effect.forEach(turns, (prompt) => turn(sid, prompt), { concurrency: "unbounded" }),
          Effect.sleep(`${delay} millis`).pipe(
            Effect.zipRight(Effect.all([close(sid), close(sid)], { concurrency: "unbounded" }))
          )
        ], { concurrency: "unbounded" })

        const statuses = replies.map((r) => r.status)
        outcomes.push(`round ${round} (delete after ${delay} ms): ${statuses.join(",")}`)
        for (const r of replies) {
          expect([200, 410], JSON.stringify(r.body)).toContain(r.status)
          if (r.status === 410) expect(r.body).toMatchObject({ ok: false, error: "session_closed" })
        }
        // One DELETE closed it; the other found it closed.
        expect(deletes.map((d) => d.status)).toEqual([200, 200])
        expect(deletes.map((d) => d.body).sort((a, b) => Object.keys(a).length - Object.keys(b).length)).toEqual([
          { ok: true },
          { ok: true, already_closed: true }
        ])
        expect((yield* close(sid)).body).toEqual({ ok: true, already_closed: true })

        // The turns that answered 200 are exactly the ones the ledger counted, in order.
        const ok = replies.filter((r) => r.status === 200).map((r) => r.body.turn_index as number).sort((a, b) => a - b)
        expect(ok).toEqual(Array.from({ length: ok.length }, (_, i) => i + 2))
        // Every accepted turn is stored (issue 11): the 200s completed, those the close caught
        // queued or running cancelled; the session counts them all.
        const stored: Array<any> = (yield* request("GET", `/sessions/${sid}/turns`, { token: appToken })).body.turns
        expect(stored.filter((t) => t.status === "completed").map((t) => t.turn_index)).toEqual([1, ...ok])
        for (const t of stored.filter((t) => t.status !== "completed")) {
          expect(t).toMatchObject({ status: "cancelled", error: { error: "session_closed" } })
        }
        expect(stored.map((t) => t.turn_index)).toEqual(Array.from({ length: stored.length }, (_, i) => i + 1))
        const state = yield* request("GET", `/sessions/${sid}`, { token: appToken })
        expect(state.body).toMatchObject({ status: "closed", turn_count: stored.length })
        const trail = yield* events(sid)
        expect(trail.filter((e) => e.event === "close")).toHaveLength(1)
        expect(trail.filter((e) => e.event === "sweep_close")).toHaveLength(0)
        expect(trail.filter((e) => e.event === "turn")).toHaveLength(1 + ok.length)

        expect(yield* stillAlive([pid])).toEqual([])
        expect(yield* live).toBe(0)
        expect((yield* turn(sid, "too late")).status).toBe(410)
      }
      console.log(`[races] close vs turns (RACES_SEED=${seed}):\n  ${outcomes.join("\n  ")}`)
    }).pipe(Effect.provide(layerScriptedGateway(log)))
  }, 60_000)

  it.scopedLive("the sweeper closing sessions while turns run on them: no lost turn, no double close, no leaked agent", () => {
    const log = agentLogFile()
    const g = new Gen(seed + 1)
    return Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const sessions = []
      for (let i = 0; i < 6; i++) sessions.push(yield* createWithPid(log))
      // The first three go idle past the TTL (backdated while they work); the last three do not.
      const victims = sessions.slice(0, 3)
      const keepers = sessions.slice(3)
      const turnsEach = 20
      // Each victim goes idle past the TTL (is backdated, again and again) once it has taken its
      // own random number of turns: mid-traffic, whatever the machine's speed.
      const startedAt = Date.now()
      const idleFrom = victims.map(() => g.int(2, 14))
      const answered = new Map(sessions.map((s) => [s.sid, 0]))

      let running = true
      let sweeps = 0
      let softClosed = 0
      const drive = (sid: string) =>
        Effect.forEach(
          Array.from({ length: turnsEach }, (_, j) => j % 3 === 0 ? `sleep ${1 + (j % 7)}` : `turn ${j}`),
          (prompt) =>
            turn(sid, prompt).pipe(
              Effect.tap((r) => r.status === 200 && answered.set(sid, answered.get(sid)! + 1)),
              Effect.map((r) => ({ status: r.status, body: r.body }))
            ),
          { concurrency: 1 }
        )
      // Let the victims take some turns first, then keep them idle past the TTL, and sweep.
      const sweepPass = Effect.gen(function*() {
        const idle = victims.filter((v, k) => answered.get(v.sid)! >= idleFrom[k]!).map((v) => v.sid)
        if (idle.length > 0) {
          yield* sql`UPDATE sessions SET created_at = created_at - 7200,
                       last_turn_at = coalesce(last_turn_at, created_at) - 7200
                     WHERE closed_at IS NULL AND session_id IN ${sql.in(idle)}`
        }
        const counts = yield* sweepOnce
        sweeps++
        softClosed += counts.soft_closed
      })
      const sweeper = (who: number) =>
        Effect.gen(function*() {
          while (running) {
            yield* sweepPass
            yield* Effect.sleep(`${g.int(0, 8) + who} millis`)
          }
        })
      // One victim is also closed by its app at about the moment it goes idle, racing the sweeper.
      const racingDelete = Effect.gen(function*() {
        while (answered.get(victims[2]!.sid)! < idleFrom[2]! && running) yield* Effect.sleep("1 millis")
        yield* Effect.sleep(`${g.int(0, 10)} millis`)
        return yield* close(victims[2]!.sid)
      })

      const [replies, , , deleted] = yield* Effect.all([
        Effect.forEach(sessions, (s) => drive(s.sid), { concurrency: "unbounded" }).pipe(
          Effect.ensuring(Effect.sync(() => running = false))
        ),
        sweeper(0),
        sweeper(1),
        racingDelete
      ], { concurrency: "unbounded" })
      expect(deleted.status).toBe(200)
      // A victim whose turns ran back to back until the traffic ended (each one's end making it
      // active again between a backdate and a pass) is idle now: the next pass closes it.
      yield* sweepPass
      console.log(
        `[races] sweeper (RACES_SEED=${seed}, victims idle after ${idleFrom.join("/")} turns, ` +
          `traffic took ${Date.now() - startedAt} ms): ${sweeps} sweeps, ${softClosed} soft-closed; statuses per session: ` +
          replies.map((rs) => rs.map((r) => r.status === 200 ? "." : r.status === 410 ? "x" : String(r.status)).join(""))
            .join(" ")
      )

      let sweepCloses = 0
      for (const [i, s] of sessions.entries()) {
        const rs = replies[i]!
        const statuses = rs.map((r) => r.status)
        const ok = rs.filter((r) => r.status === 200).map((r) => r.body.turn_index as number)
        const trail = yield* events(s.sid)
        const closes = trail.filter((e) => e.event === "close" || e.event === "sweep_close")
        const turnEvents = trail.filter((e) => e.event === "turn").map((e) => (e.detail as any).turn_index as number)
        const state = (yield* request("GET", `/sessions/${s.sid}`, { token: appToken })).body
        // Never anything but a turn or a closed session; once closed, closed for good.
        expect(statuses.every((st) => st === 200 || st === 410), statuses.join(",")).toBe(true)
        expect(statuses.indexOf(410) === -1 || statuses.slice(statuses.indexOf(410)).every((st) => st === 410)).toBe(true)
        // No lost turn: every 200 is in the ledger, in order.
        expect(ok).toEqual(Array.from({ length: ok.length }, (_, j) => j + 1))
        expect(state.turn_count).toBeGreaterThanOrEqual(ok.length)
        // Every accepted turn is stored (issue 11): the 200s completed, each with its `turn` event;
        // one the close caught queued or running is stored cancelled.
        const stored: Array<any> = (yield* request("GET", `/sessions/${s.sid}/turns?limit=1000`, { token: appToken })).body.turns
        expect(stored.map((t) => t.turn_index)).toEqual(Array.from({ length: state.turn_count }, (_, j) => j + 1))
        expect(stored.filter((t) => t.status === "completed").map((t) => t.turn_index)).toEqual(ok)
        expect(turnEvents).toEqual(ok)
        for (const t of stored.filter((t) => t.status !== "completed")) {
          expect(t).toMatchObject({ status: "cancelled", error: { error: "session_closed" } })
        }
        if (keepers.includes(s)) {
          expect(statuses).toEqual(Array(turnsEach).fill(200))
          expect(state).toMatchObject({ status: "open", turn_count: turnsEach })
          expect(closes).toEqual([])
          expect(isAlive(s.pid)).toBe(true)
        } else {
          // No double close: exactly one close of either kind.
          expect(state.status).toBe("closed")
          expect(closes, JSON.stringify(trail)).toHaveLength(1)
          sweepCloses += closes.filter((e) => e.event === "sweep_close").length
          expect(yield* stillAlive([s.pid])).toEqual([])
        }
      }
      // The sweeper did close sessions, and reported each close it made exactly once.
      expect(sweepCloses).toBeGreaterThanOrEqual(2)
      expect(softClosed).toBe(sweepCloses)
      expect(yield* live).toBe(keepers.length)

      for (const s of keepers) expect((yield* close(s.sid)).body).toEqual({ ok: true })
      expect(yield* live).toBe(0)
      expect(yield* stillAlive(startedPids(log))).toEqual([])
    }).pipe(Effect.provide(layerScriptedGateway(log)))
  }, 60_000)
})
