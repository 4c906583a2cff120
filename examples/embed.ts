/**
 * Embedding clawdforge in another Effect program: its services without the HTTP server.
 * The program opens a session with the demo agent, holds a two-turn conversation through
 * the `Sessions` service, reads the audit trail, and closes the session.
 *
 *   node --import tsx examples/embed.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { ConfigProvider, Console, Effect, Layer, Logger, LogLevel } from "effect"
import { AppName, Ledger, Sessions, ServicesLive } from "../src/index.js"

const app = AppName.make("embedded")

/** The agent's text in a turn's events. */
const said = (events: ReadonlyArray<Record<string, any>>) =>
  events
    .filter((e) => e.params?.update?.sessionUpdate === "agent_message_chunk")
    .map((e) => e.params.update.content.text)
    .join("")

const program = Effect.gen(function*() {
  const sessions = yield* Sessions
  const ledger = yield* Ledger

  const session = yield* sessions.create(app, { agent: "echo", meta: { from: "examples/embed.ts" } })
  yield* Console.log(`session ${session.session_id} with ${session.agent}`)

  for (const prompt of ["hello from an embedding program", "history"]) {
    const turn = yield* sessions.turn(app, session.session_id, { prompt })
    yield* Console.log(`turn ${turn.turn_index} (${turn.stop_reason}): ${said(turn.events)}`)
  }

  yield* sessions.close(app, session.session_id)
  const trail = yield* ledger.sessionEvents(session.session_id)
  yield* Console.log(`audit: ${trail.map((event) => event.event).join(", ")}`)
})

// The gateway reads its configuration from the ConfigProvider: here, in code.
const config = ConfigProvider.fromMap(
  new Map([
    ["CLAWDFORGE_DB", ":memory:"],
    ["CLAWDFORGE_WORKSPACE_ROOT", "./data/embedded-workspaces"]
  ])
)

program.pipe(
  Effect.provide(ServicesLive.pipe(Layer.provide(Layer.setConfigProvider(config)))),
  Effect.provide(Logger.minimumLogLevel(LogLevel.Error)),
  NodeRuntime.runMain
)
