/**
 * Refusal pacing (issue 23): an app that sends a refused request again at once, in a loop, is
 * slowed to CLAWDFORGE_REFUSALS_PER_SECOND; another app's refusals, and the app's own requests
 * that are not refused, are answered at once. Over a real loopback server with the scripted agent;
 * the pacing is the HTTP layer's, whatever the ledger (SQLite only).
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber } from "effect"
import { poll } from "./support/Poll.js"
import { agentLogFile } from "./support/ScriptedAgent.js"
import { appToken, layerScriptedGateway, otherToken, request } from "./support/TestGateway.js"

const create = (token: string) =>
  Effect.map(request("POST", "/sessions", { token, body: { agent: "scripted" } }), (reply) => {
    expect(reply.status, JSON.stringify(reply.body)).toBe(200)
    return reply.body.session_id as string
  })

const queue = (sid: string, prompt: string, token: string) =>
  request("POST", `/sessions/${sid}/turns`, { token, body: { prompt } })

describe("refusal pacing", () => {
  it.scopedLive("an app sending refused turns again at once is slowed to CLAWDFORGE_REFUSALS_PER_SECOND; another app's refusals and its own other requests are not", () =>
    Effect.gen(function*() {
      /** A session of the token's app whose one queued place is taken behind a hung turn. */
      const fullSession = (token: string) =>
        Effect.gen(function*() {
          const sid = yield* create(token)
          expect((yield* queue(sid, "hang", token)).status).toBe(202)
          yield* poll(request("GET", `/sessions/${sid}/turns/1`, { token }), (r) => r.body.status === "running")
          expect((yield* queue(sid, "echo", token)).status).toBe(202)
          return sid
        })
      const b = yield* fullSession(otherToken)
      const a = yield* fullSession(appToken)

      // b sends its refused turn again as soon as it is answered, 8 at a time, for 2 s.
      const until = Date.now() + 2000
      let answered = 0
      const resend = Effect.gen(function*() {
        while (Date.now() < until) {
          const refused = yield* queue(b, "echo", otherToken)
          expect(refused.body).toMatchObject({ error: "queue_full" })
          if (Date.now() <= until) answered++
        }
      })
      const flood = yield* Effect.forkScoped(Effect.all(Array.from({ length: 8 }, () => resend), { concurrency: "unbounded", discard: true }))
      yield* Effect.sleep("1 second")
      // Meanwhile b's refusals wait about 2 s each; a's is answered at once, and so is b's list.
      const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
        Effect.map(Effect.timed(effect), ([took, value]) => ({ ms: Duration.toMillis(took), value }))
      const aRefused = yield* timed(queue(a, "echo", appToken))
      expect(aRefused.value.body).toMatchObject({ error: "queue_full" })
      expect(aRefused.ms).toBeLessThan(1000)
      const bList = yield* timed(request("GET", "/sessions", { token: otherToken }))
      expect(bList.value.status).toBe(200)
      expect(bList.ms).toBeLessThan(1000)
      yield* Fiber.join(flood)

      // At 4 a second: 4 at once, then 4 a second (unpaced, an in-process gateway refused 2,150 in 3 s).
      expect(answered).toBeGreaterThanOrEqual(4)
      expect(answered).toBeLessThanOrEqual(4 + 2 * 4 + 2)
      for (const [sid, token] of [[a, appToken], [b, otherToken]]) {
        yield* request("POST", `/sessions/${sid}/cancel`, { token })
      }
    }).pipe(Effect.provide(layerScriptedGateway(agentLogFile(), {
      CLAWDFORGE_MAX_QUEUED_TURNS: "1",
      CLAWDFORGE_REFUSALS_PER_SECOND: "4"
    }))))
})
