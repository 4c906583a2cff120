/**
 * `SessionActor` driven directly, without HTTP or a ledger: a fake agent whose turns the test
 * holds and releases, a ledger that keeps what it is told in memory, and a commit that records
 * how each turn ended (as the real one stores it: `storedEnd`).
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, ExecutionStrategy, Exit, Fiber, Option, Scope } from "effect"
import { AgentFailed } from "../src/domain/Errors.js"
import { AppName, SessionId } from "../src/domain/Ids.js"
import { type AcpMessage, Session, type TurnReply } from "../src/domain/Session.js"
import type { AgentHandle } from "../src/services/agents/AgentDriver.js"
import { noSettings } from "../src/services/agents/AgentSettings.js"
import { noUsage } from "../src/services/agents/UsageMeter.js"
import type { TurnError } from "../src/services/sessions/SessionErrors.js"
import { PermissionDesk } from "../src/services/sessions/runtime/PermissionDesk.js"
import { makeSessionActor } from "../src/services/sessions/runtime/SessionActor.js"
import { storedEnd } from "../src/services/sessions/runtime/TurnCommit.js"
import type { LiveTurn } from "../src/services/sessions/runtime/TurnFeed.js"

const result = (stopReason: string): AcpMessage => ({ jsonrpc: "2.0", id: 1, result: { stopReason } })

/** What a fake agent does with a prompt. */
type Behaviour = "answer" | "hang" | "crash"

/** An agent in the test's hands: `hang` turns wait until cancelled (or interrupted). */
const fakeAgent = (name: string, behave: (prompt: string) => Behaviour) => {
  const agent = { prompts: [] as Array<string>, cancels: 0, alive: true, release: undefined as undefined | (() => void) }
  const handle: AgentHandle = {
    agentSessionId: name,
    origin: "new",
    capabilities: undefined,
    pid: undefined,
    settings: () => noSettings,
    configure: () => Effect.void,
    isAlive: Effect.sync(() => agent.alive),
    cancel: Effect.sync(() => {
      agent.cancels++
      agent.release?.()
    }),
    prompt: (input) =>
      Effect.suspend(() => {
        agent.prompts.push(input.text)
        switch (behave(input.text)) {
          case "answer": {
            input.onMessage?.(result("end_turn"))
            return Effect.succeed({ stopReason: "end_turn", usage: noUsage, events: [result("end_turn")] })
          }
          case "crash": {
            agent.alive = false
            return Effect.fail(new AgentFailed({ message: "the agent exited" }))
          }
          case "hang":
            return Effect.async<{ stopReason: string; usage: typeof noUsage; events: Array<AcpMessage> }>((resume) => {
              agent.release = () => resume(Effect.succeed({ stopReason: "cancelled", usage: noUsage, events: [result("cancelled")] }))
            })
        }
      })
  }
  return { agent, handle }
}

const session = new Session({
  session_id: SessionId.make("actor-test-session-0001"),
  app_name: AppName.make("app"),
  agent: "fake",
  meta: {},
  cwd: "/nonexistent",
  permission_mode: "approve-all",
  created_at: 0,
  last_turn_at: null,
  closed_at: null,
  turn_count: 0,
  status: "open",
  ...noSettings
})

/** An actor of `session` over `first`, running on a fiber of the test's scope. */
const startActor = (
  first: AgentHandle,
  options: { readonly turnTimeout?: Duration.DurationInput; readonly restart?: AgentHandle } = {}
) =>
  Effect.gen(function*() {
    let turnCount = 0
    const events: Array<{ readonly event: string; readonly detail: unknown }> = []
    const ended: Array<{ readonly turnIndex: number; readonly status: string; readonly exit: Exit.Exit<TurnReply, TurnError> }> = []
    const restarts: Array<Option.Option<string>> = []
    let slotClosed = false
    let stoppedCalls = 0
    const slot = yield* Scope.make()
    yield* Scope.addFinalizer(slot, Effect.sync(() => void (slotClosed = true)))
    const agentScope = yield* Scope.fork(slot, ExecutionStrategy.sequential)
    const actor = yield* makeSessionActor({
      session,
      slot,
      agent: { handle: first, scope: agentScope },
      desk: new PermissionDesk({ timeoutMs: 1000, currentTurn: () => undefined, onHeld: () => {}, onAnswered: () => {} }),
      turnTimeout: Duration.decode(options.turnTimeout ?? "10 seconds"),
      ledger: {
        acceptTurn: () => Effect.succeed(Option.some(++turnCount)),
        recordEvent: (_id, event, detail) => Effect.sync(() => void events.push({ event, detail })),
        setSettings: () => Effect.void
      },
      commit: (_session, live: LiveTurn, exit, interrupted) =>
        Effect.clockWith((clock) =>
          Effect.sync(() => {
            const end = storedEnd(exit, live, interrupted, clock.unsafeCurrentTimeMillis())
            ended.push({ turnIndex: live.turnIndex, status: end.status, exit })
          })
        ),
      restart: (previous) =>
        Effect.sync(() => {
          restarts.push(previous)
          if (options.restart === undefined) throw new Error("no agent to restart")
          return options.restart
        }),
      stoppedByGateway: () => false,
      handingOver: () => false,
      onStopped: Effect.sync(() => void stoppedCalls++)
    })
    const fiber = yield* Effect.forkScoped(actor.run)
    return {
      actor,
      fiber,
      events,
      ended,
      restarts,
      slotClosed: () => slotClosed,
      stoppedCalls: () => stoppedCalls
    }
  })

/** Waits (real time, up to 2 s) until `check` holds. */
const until = (check: () => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 400 && !check(); i++) yield* Effect.sleep("5 millis")
    expect(check()).toBe(true)
  })

describe("SessionActor", () => {
  it.scopedLive("runs its mailbox in arrival order, one turn at a time, with indexes in that order", () =>
    Effect.gen(function*() {
      const { agent, handle } = fakeAgent("a", (prompt) => prompt === "first" ? "hang" : "answer")
      const { actor, ended } = yield* startActor(handle)
      const first = yield* actor.accept({ prompt: "first", files: [] })
      const second = yield* actor.accept({ prompt: "second", files: [] })
      const third = yield* actor.accept({ prompt: "third", files: [] })
      expect([first.turnIndex, second.turnIndex, third.turnIndex]).toEqual([1, 2, 3])
      yield* until(() => agent.release !== undefined)
      // The first holds the agent: the others wait in the mailbox.
      expect(agent.prompts).toEqual(["first"])
      expect(yield* actor.isRunning).toBe(true)
      agent.release!()
      const replies = yield* Effect.all([first.reply, second.reply, third.reply])
      expect(replies.map((reply) => reply.turn_index)).toEqual([1, 2, 3])
      expect(agent.prompts).toEqual(["first", "second", "third"])
      expect(ended.map((end) => [end.turnIndex, end.status])).toEqual([[1, "cancelled"], [2, "completed"], [3, "completed"]])
      // Each turn's feed saw its end.
      expect(second.feed.follow(() => {}, () => {}).end?.event).toBe("done")
    }))

  it.scopedLive("a turn past its timeout is cancelled and answers 504; the next turn runs", () =>
    Effect.gen(function*() {
      const { agent, handle } = fakeAgent("a", (prompt) => prompt === "slow" ? "hang" : "answer")
      const { actor, ended } = yield* startActor(handle, { turnTimeout: "150 millis" })
      const slow = yield* actor.accept({ prompt: "slow", files: [] })
      const error = yield* Effect.flip(slow.reply)
      expect(error._tag).toBe("TurnTimeout")
      expect(agent.cancels).toBe(1)
      expect(ended[0]).toMatchObject({ turnIndex: 1, status: "failed" })
      const next = yield* actor.accept({ prompt: "next", files: [] })
      expect((yield* next.reply).stop_reason).toBe("end_turn")
    }))

  it.scopedLive("cancel stops the running turn (true), and is false when nothing runs", () =>
    Effect.gen(function*() {
      const { agent, handle } = fakeAgent("a", () => "hang")
      const { actor, ended } = yield* startActor(handle)
      expect(yield* actor.cancel).toBe(false)
      const turn = yield* actor.accept({ prompt: "long", files: [] })
      yield* until(() => agent.release !== undefined)
      expect(yield* actor.cancel).toBe(true)
      expect((yield* turn.reply).stop_reason).toBe("cancelled")
      expect(ended[0]).toMatchObject({ turnIndex: 1, status: "cancelled" })
      expect(yield* actor.isRunning).toBe(false)
      expect(yield* actor.cancel).toBe(false)
    }))

  it.scopedLive("a crashed agent fails its turn (502, audited) and the next turn restarts and resumes it", () =>
    Effect.gen(function*() {
      const { agent: firstAgent, handle } = fakeAgent("agent-session-1", () => "crash")
      const { agent: secondAgent, handle: restarted } = fakeAgent("agent-session-1", () => "answer")
      const { actor, ended, events, restarts } = yield* startActor(handle, { restart: restarted })
      const crashed = yield* actor.accept({ prompt: "boom", files: [] })
      const error = yield* Effect.flip(crashed.reply)
      expect(error._tag).toBe("AgentFailed")
      expect(ended[0]).toMatchObject({ turnIndex: 1, status: "failed" })
      expect(events.map((e) => e.event)).toEqual(["turn_failed", "agent_exit"])
      const next = yield* actor.accept({ prompt: "again", files: [] })
      expect((yield* next.reply).turn_index).toBe(2)
      // Restarted once, resuming the agent's own session.
      expect(restarts).toEqual([Option.some("agent-session-1")])
      expect(firstAgent.prompts).toEqual(["boom"])
      expect(secondAgent.prompts).toEqual(["again"])
      expect(actor.state.current).toBe(restarted)
    }))

  it.scopedLive("closed under a running turn: that turn and the queued ones answer 410, the slot is freed", () =>
    Effect.gen(function*() {
      const { agent, handle } = fakeAgent("a", () => "hang")
      const { actor, ended, fiber, slotClosed, stoppedCalls } = yield* startActor(handle)
      const running = yield* actor.accept({ prompt: "running", files: [] })
      const queued = yield* actor.accept({ prompt: "queued", files: [] })
      const settings = yield* Effect.fork(actor.configure({ model: "m" }))
      yield* until(() => agent.release !== undefined)
      yield* Fiber.interrupt(fiber)
      expect((yield* Effect.flip(running.reply))._tag).toBe("SessionClosed")
      expect((yield* Effect.flip(queued.reply))._tag).toBe("SessionClosed")
      expect(Exit.isFailure(yield* Fiber.await(settings))).toBe(true)
      // Both stored as cancelled (closed by the app, not stopped by the gateway), in order.
      expect(ended.map((end) => [end.turnIndex, end.status])).toEqual([[1, "cancelled"], [2, "cancelled"]])
      expect(agent.prompts).toEqual(["running"])
      expect(yield* Deferred.isDone(actor.stopped)).toBe(true)
      expect(slotClosed()).toBe(true)
      expect(stoppedCalls()).toBe(1)
      // Nothing is accepted once it has stopped.
      expect((yield* Effect.flip(actor.accept({ prompt: "late", files: [] })))._tag).toBe("SessionClosed")
    }))
})
