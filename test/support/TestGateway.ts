import { HttpClient, HttpClientRequest, type HttpClientResponse, HttpServer } from "@effect/platform"
import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
import { ConfigProvider, Effect, Layer, Logger, LogLevel } from "effect"
import { createServer } from "node:http"
import { HttpAppLive } from "../../src/http/Server.js"
import { AgentPool } from "../../src/services/sessions/AgentPool.js"
import { ClaudeRunner } from "../../src/services/agents/ClaudeRunner.js"
import { layerServices } from "../../src/Gateway.js"
import { freshLedger } from "./Ledgers.js"
import { scriptedAgents } from "./ScriptedAgent.js"
import { tempDir } from "./TempDirs.js"

export const appToken = "token-app-a-0123456789"
export const otherToken = "token-app-b-9876543210"
export const appName = "app-a"
export const otherApp = "app-b"

/** Gateway configuration as the environment would give it; a fresh `:memory:` ledger. */
export const testConfig = (overrides: Record<string, string> = {}) => {
  const workspaces = tempDir("clawdforge-ws-")
  return ConfigProvider.fromMap(
    new Map(Object.entries({
      CLAWDFORGE_DB: ":memory:",
      CLAWDFORGE_APP_TOKENS: `${appName}=${appToken},${otherApp}=${otherToken}`,
      CLAWDFORGE_WORKSPACE_ROOT: workspaces,
      CLAWDFORGE_SWEEP_INTERVAL_SECS: "3600",
      // The scripted agent's log and pids must be the host's: the sandbox has tests of its own.
      CLAWDFORGE_SANDBOX: "off",
      ...overrides
    }))
  )
}

/** `testConfig` on a fresh ledger of the dialect under test (see `Ledgers.ts`). */
export const layerTestConfig = (overrides: Record<string, string> = {}) =>
  Layer.unwrapScoped(
    Effect.map(
      overrides.CLAWDFORGE_DB === undefined ? freshLedger : Effect.succeed(overrides.CLAWDFORGE_DB),
      (db) => Layer.setConfigProvider(testConfig({ ...overrides, CLAWDFORGE_DB: db }))
    )
  )

/** A real HTTP server on loopback (random port) and a client pointed at it. */
export const LoopbackServer = HttpServer.layerTestClient.pipe(
  Layer.provide(NodeHttpClient.layerUndici),
  Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }))
)

/**
 * The whole gateway over HTTP on loopback, with the given pool (and optionally runner),
 * exposing its services to the test as well.
 */
export const layerTestGateway = <E, R>(options: {
  readonly pool: Layer.Layer<AgentPool, E, R>
  readonly runner?: Layer.Layer<ClaudeRunner, any>
  readonly config?: Record<string, string>
}) => {
  const services = layerServices(options.pool, options.runner ?? ClaudeRunner.Default)
  return HttpAppLive.pipe(
    Layer.provideMerge(services),
    Layer.provideMerge(LoopbackServer),
    Layer.provide(layerTestConfig(options.config)),
    Layer.provide(Logger.minimumLogLevel(LogLevel.Error))
  )
}

/** A JSON request as an app would send it. */
export const request = (
  method: "GET" | "POST" | "PATCH" | "DELETE",
  path: string,
  options: { readonly token?: string; readonly body?: unknown } = {}
) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    let req = HttpClientRequest.make(method)(path)
    if (options.token !== undefined) req = HttpClientRequest.bearerToken(req, options.token)
    if (options.body !== undefined) req = HttpClientRequest.bodyUnsafeJson(req, options.body)
    const response = yield* client.execute(req)
    return { status: response.status, body: (yield* response.json) as any, response }
  }).pipe(Effect.scoped)

export type JsonResponse = { status: number; body: any; response: HttpClientResponse.HttpClientResponse }

/** The gateway over loopback with the real pool and the scripted agents registered. */
export const layerScriptedGateway = (log: string, config: Record<string, string> = {}) =>
  layerTestGateway({ pool: AgentPool.Default, config: { CLAWDFORGE_AGENTS: scriptedAgents(log), ...config } })
