/**
 * Steering agents (issue 10): model, mode and config options on create and with PATCH, and
 * `permission_mode: "ask"`, where a person answers the agent's permission requests and
 * elicitations. The scripted ACP agent runs as a real child process behind a real loopback server.
 */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { Ledger } from "../src/services/ledger/Ledger.js"
import { agentLogFile, agentText, isAlive, startedPids } from "./support/ScriptedAgent.js"
import { poll } from "./support/Poll.js"
import { appToken, layerScriptedGateway, otherToken, request } from "./support/TestGateway.js"

const create = (body: Record<string, unknown>) =>
  request("POST", "/sessions", { token: appToken, body: { agent: "scripted", ...body } })
const turn = (sid: string, prompt: string) =>
  request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt } })
const queue = (sid: string, prompt: string) =>
  Effect.map(request("POST", `/sessions/${sid}/turns`, { token: appToken, body: { prompt } }), (r) => {
    expect(r.status).toBe(202)
    return r.body.turn_index as number
  })
const patch = (sid: string, body: unknown, token = appToken) =>
  request("PATCH", `/sessions/${sid}`, { token, body })
const permissions = (sid: string, token = appToken) =>
  request("GET", `/sessions/${sid}/permissions`, { token })
const answer = (sid: string, requestId: string, body: unknown, token = appToken) =>
  request("POST", `/sessions/${sid}/permissions/${requestId}`, { token, body })
const audit = (sid: string) => Effect.flatMap(Ledger, (ledger) => ledger.sessionEvents(sid))
const configOf = (reply: { body: any }) => JSON.parse(agentText(reply.body.events).replace(/^config: /, ""))

/** The session's pending requests once there is one. */
const pending = (sid: string) => poll(Effect.map(permissions(sid), (r) => r.body), (body) => body.count >= 1)

/** A turn once it is over. */
const ended = (sid: string, n: number) =>
  poll(
    Effect.map(request("GET", `/sessions/${sid}/turns/${n}`, { token: appToken }), (r) => r.body),
    (t) => t.status !== "queued" && t.status !== "running"
  )

/** A stored turn's stream, read to its end, as `{event, id, data}` records. */
const readStream = (sid: string, n: number) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.execute(
      HttpClientRequest.get(`/sessions/${sid}/turns/${n}/stream`).pipe(HttpClientRequest.bearerToken(appToken))
    )
    return (yield* response.text).split("\n\n").filter((b) => b.trim() !== "").map((block) => {
      const field = (name: string) => block.split("\n").find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2)
      return { event: field("event"), id: field("id"), data: JSON.parse(field("data")!) }
    })
  }).pipe(Effect.scoped)

describe("model, mode and config options", () => {
  it.scopedLive("create applies them through ACP; the session shows what the agent offers and runs", () =>
    Effect.gen(function*() {
      const created = yield* create({ model: "demo-large", mode: "plan" })
      expect(created.status).toBe(200)
      expect(created.body).toMatchObject({ model: "demo-large", mode: "plan" })
      const byId = Object.fromEntries(created.body.config_options.map((o: any) => [o.id, o]))
      expect(byId["model"]).toEqual({
        id: "model",
        name: "Model",
        category: "model",
        current_value: "demo-large",
        options: [{ value: "demo-small", name: "Demo small" }, { value: "demo-large", name: "Demo large" }]
      })
      expect(byId["mode"]).toMatchObject({ category: "mode", current_value: "plan" })
      expect(byId["mode"].options.map((o: any) => o.value)).toEqual(["default", "plan"])
      const sid = created.body.session_id
      // The agent runs with them.
      expect(configOf(yield* turn(sid, "config"))).toEqual({ mode: "plan", model: "demo-large" })
      const state = (yield* request("GET", `/sessions/${sid}`, { token: appToken })).body
      expect(state).toMatchObject({ model: "demo-large", mode: "plan" })

      // Without settings: what the agent starts with.
      const plain = (yield* create({})).body
      expect(plain).toMatchObject({ model: "demo-small", mode: "default" })
    }).pipe(Effect.provide(layerScriptedGateway(agentLogFile()))))

  it.scopedLive("a value the agent does not offer is 400 invalid_config naming what it offers; nothing is kept", () => {
    const log = agentLogFile()
    return Effect.gen(function*() {
      const before = (yield* request("GET", "/sessions", { token: appToken })).body.count
      for (const body of [{ model: "gpt-9" }, { mode: "yolo" }, { config: { temperature: "hot" } }]) {
        const refused = yield* create(body)
        expect(refused.status).toBe(400)
        expect(refused.body).toMatchObject({ ok: false, error: "invalid_config" })
        expect(refused.body.message).toContain("demo-small, demo-large")
        expect(refused.body.offered).toEqual({ model: ["demo-small", "demo-large"], mode: ["default", "plan"] })
      }
      expect((yield* request("GET", "/sessions", { token: appToken })).body.count).toBe(before)
      // Every agent that started for them is gone.
      const pids = startedPids(log)
      expect(pids).toHaveLength(3)
      for (const pid of pids) expect(isAlive(pid)).toBe(false)
    }).pipe(Effect.provide(layerScriptedGateway(log)))
  })

  it.scopedLive("PATCH changes them between turns, in mailbox order, and answers the new state", () =>
    Effect.gen(function*() {
      const sid = (yield* create({})).body.session_id
      // A PATCH waits behind the turn before it.
      const first = yield* queue(sid, "sleep 300")
      const changed = yield* patch(sid, { model: "demo-large", mode: "plan" })
      expect(changed.status).toBe(200)
      expect(changed.body).toMatchObject({ ok: true, session_id: sid, model: "demo-large", mode: "plan" })
      expect((yield* request("GET", `/sessions/${sid}/turns/${first}`, { token: appToken })).body.status).toBe("completed")
      expect(configOf(yield* turn(sid, "config"))).toEqual({ mode: "plan", model: "demo-large" })
      // `config` by id works as well.
      expect((yield* patch(sid, { config: { model: "demo-small" } })).body.model).toBe("demo-small")
      expect(configOf(yield* turn(sid, "config"))).toEqual({ mode: "plan", model: "demo-small" })

      // Refused: nothing changes.
      const refused = yield* patch(sid, { model: "demo-small", mode: "yolo" })
      expect(refused.status).toBe(400)
      expect(refused.body).toMatchObject({ ok: false, error: "invalid_config" })
      expect(refused.body.message).toContain("default, plan")
      expect((yield* patch(sid, { config: { nope: "x" } })).body.error).toBe("invalid_config")
      expect(configOf(yield* turn(sid, "config"))).toEqual({ mode: "plan", model: "demo-small" })
      expect((yield* request("GET", `/sessions/${sid}`, { token: appToken })).body).toMatchObject({ model: "demo-small", mode: "plan" })

      // The agent changing its mode of its own accord: the session shows it after the turn.
      expect(agentText((yield* turn(sid, "switch-mode default")).body.events)).toBe("mode: default")
      expect((yield* request("GET", `/sessions/${sid}`, { token: appToken })).body).toMatchObject({ mode: "default" })
      expect((yield* patch(sid, { mode: "plan" })).body.mode).toBe("plan")

      // Bad input, another app's session, a closed one.
      for (const body of [{ model: 5 }, { config: ["model"] }, { mode: "" }]) {
        const bad = yield* patch(sid, body)
        expect(bad.status).toBe(400)
        expect(bad.body.ok).toBe(false)
      }
      expect((yield* patch(sid, { model: "demo-large" }, otherToken)).status).toBe(404)
      expect((yield* patch("no-such-session", { model: "demo-large" })).status).toBe(404)
      expect((yield* request("DELETE", `/sessions/${sid}`, { token: appToken })).status).toBe(200)
      expect((yield* patch(sid, { model: "demo-large" })).status).toBe(410)
    }).pipe(Effect.provide(layerScriptedGateway(agentLogFile()))))
})

describe('permission_mode "ask"', () => {
  it.scopedLive("a request waits for the caller, is listed, streamed, answered once, and audited by caller", () =>
    Effect.gen(function*() {
      const sid = (yield* create({ permission_mode: "ask" })).body.session_id
      const n = yield* queue(sid, "permission edit the readme")
      const listed = yield* pending(sid)
      expect(listed.count).toBe(1)
      const held = listed.permissions[0]
      expect(held).toMatchObject({
        kind: "permission",
        turn_index: n,
        tool_call: { toolCallId: "tc-1", title: "write file", kind: "edit" },
        options: [
          { option_id: "allow", name: "Allow", kind: "allow_once" },
          { option_id: "reject", name: "Reject", kind: "reject_once" }
        ]
      })
      expect(held.expires_at - held.requested_at).toBe(300)
      // Its stream, from the start, while it waits.
      const stream = yield* Effect.fork(readStream(sid, n))

      // Another app sees no such session; a wrong id or option changes nothing.
      expect((yield* permissions(sid, otherToken)).status).toBe(404)
      expect((yield* answer(sid, held.request_id, { option_id: "allow" }, otherToken)).status).toBe(404)
      const unknown = yield* answer(sid, "req_nope", { option_id: "allow" })
      expect(unknown.status).toBe(404)
      expect(unknown.body).toMatchObject({ ok: false, error: "permission_not_found" })
      const notOffered = yield* answer(sid, held.request_id, { option_id: "maybe" })
      expect(notOffered.status).toBe(400)
      expect(notOffered.body.message).toContain("allow, reject")
      expect((yield* answer(sid, held.request_id, { option_id: 42 })).status).toBe(400)
      expect((yield* answer(sid, held.request_id, {})).status).toBe(400)
      expect((yield* permissions(sid)).body.count).toBe(1)

      const answered = yield* answer(sid, held.request_id, { option_id: "allow" })
      expect(answered.status).toBe(200)
      expect(answered.body).toEqual({ ok: true })
      expect((yield* answer(sid, held.request_id, { option_id: "reject" })).body.error).toBe("permission_not_found")
      const done = yield* ended(sid, n)
      expect(done).toMatchObject({ status: "completed", text: "permission: allow" })
      expect((yield* permissions(sid)).body).toEqual({ ok: true, count: 0, permissions: [] })

      const events = yield* Fiber.join(stream)
      const names = events.map((e) => e.event)
      expect(names.indexOf("permission")).toBeGreaterThan(-1)
      expect(names.indexOf("permission")).toBeLessThan(names.indexOf("permission_resolved"))
      expect(names.at(-1)).toBe("done")
      expect(events.find((e) => e.event === "permission")!.data).toEqual(held)
      expect(events.find((e) => e.event === "permission_resolved")!.data).toEqual({
        request_id: held.request_id,
        outcome: "selected",
        option_id: "allow",
        by: "caller"
      })

      const trail = yield* audit(sid)
      const asked = trail.find((e) => e.event === "permission_request")!.detail as any
      expect(asked).toMatchObject({ request_id: held.request_id, kind: "permission", tool_call: { id: "tc-1", kind: "edit" } })
      const answer_ = trail.find((e) => e.event === "permission_answer")!.detail as any
      expect(answer_).toEqual({ request_id: held.request_id, by: "caller", outcome: "selected", option_id: "allow" })
    }).pipe(Effect.provide(layerScriptedGateway(agentLogFile()))))

  it.scopedLive("cancelling the turn or closing the session answers what waits `cancelled`", () =>
    Effect.gen(function*() {
      const sid = (yield* create({ permission_mode: "ask" })).body.session_id
      const n = yield* queue(sid, "permission edit")
      yield* pending(sid)
      expect((yield* request("POST", `/sessions/${sid}/cancel`, { token: appToken })).body.cancelled).toBe(true)
      expect(yield* ended(sid, n)).toMatchObject({ status: "cancelled", text: "permission: cancelled" })
      expect((yield* permissions(sid)).body.count).toBe(0)

      const m = yield* queue(sid, "permission edit again")
      const { request_id } = (yield* pending(sid)).permissions[0]
      expect((yield* request("DELETE", `/sessions/${sid}`, { token: appToken })).status).toBe(200)
      expect((yield* ended(sid, m)).status).toBe("cancelled")
      expect((yield* answer(sid, request_id, { option_id: "allow" })).status).toBe(404)

      const answers = (yield* audit(sid)).filter((e) => e.event === "permission_answer").map((e) => e.detail as any)
      expect(answers).toHaveLength(2)
      for (const detail of answers) expect(detail).toMatchObject({ by: "cancel", outcome: "cancelled" })
    }).pipe(Effect.provide(layerScriptedGateway(agentLogFile()))))

  it.scopedLive("unanswered past CLAWDFORGE_PERMISSION_TIMEOUT_SECS, the first reject option answers", () =>
    Effect.gen(function*() {
      const sid = (yield* create({ permission_mode: "ask" })).body.session_id
      const reply = yield* turn(sid, "permission edit")
      expect(reply.status).toBe(200)
      expect(agentText(reply.body.events)).toBe("permission: reject")
      const detail = (yield* audit(sid)).find((e) => e.event === "permission_answer")!.detail
      expect(detail).toMatchObject({ by: "timeout", outcome: "selected", option_id: "reject" })
    }).pipe(Effect.provide(layerScriptedGateway(agentLogFile(), { CLAWDFORGE_PERMISSION_TIMEOUT_SECS: "1" }))))

  it.scopedLive("an elicitation is held like a permission and answered with an action and content", () =>
    Effect.gen(function*() {
      const sid = (yield* create({ permission_mode: "ask" })).body.session_id
      const n = yield* queue(sid, "elicit which branch?")
      const held = (yield* pending(sid)).permissions[0]
      expect(held).toMatchObject({
        kind: "elicitation",
        turn_index: n,
        tool_call: null,
        options: [],
        elicitation: { message: "which branch?", requested_schema: { type: "object" } }
      })
      expect((yield* answer(sid, held.request_id, { option_id: "allow" })).status).toBe(400)
      expect((yield* answer(sid, held.request_id, { action: "maybe" })).status).toBe(400)
      const ok = yield* answer(sid, held.request_id, { action: "accept", content: { branch: "main" } })
      expect(ok.status).toBe(200)
      expect((yield* ended(sid, n)).text).toBe('elicitation: accept {"branch":"main"}')
    }).pipe(Effect.provide(layerScriptedGateway(agentLogFile()))))
})
