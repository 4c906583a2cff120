/**
 * clawdforge as a library: the API, its clients, and the gateway's services and layers,
 * for Effect programs that embed the gateway (with or without its HTTP server).
 */

// The contract: one HttpApi shared by server and clients, its schemas and errors.
export * from "./domain/Agent.js"
export * from "./domain/Api.js"
export * from "./domain/Errors.js"
export * from "./domain/Ids.js"
export * from "./domain/Run.js"
export * from "./domain/Session.js"

// Clients: a typed Effect client over the Api, and an openapi-fetch one from the document.
export { type Client, makeClient } from "./client/EffectClient.js"
export { createFetchClient, type FetchClient } from "./client/FetchClient.js"

// Services.
export { AcpDriver } from "./services/AcpDriver.js"
export * from "./services/AcpMessages.js"
export { AcpxPool } from "./services/AcpxPool.js"
export type { AgentDriver, AgentHandle, AgentLaunch, PromptInput, TurnOutcome } from "./services/AgentDriver.js"
export { AgentRegistry, builtinAgents, scriptedAgentPath } from "./services/AgentRegistry.js"
export { AppConfig, describeConfigError } from "./services/AppConfig.js"
export { AppTokens } from "./services/AppTokens.js"
export { Auth } from "./services/Auth.js"
export { ClaudeRunner, parseResultText } from "./services/ClaudeRunner.js"
export { Ledger, SessionEvent } from "./services/Ledger.js"
export { renderPrometheus, scrapeMetrics } from "./services/Metrics.js"
export { answerPermission } from "./services/Permissions.js"
export { Sessions, SessionsDrain, type TurnError } from "./services/Sessions.js"
export { type SweepCounts, Sweeper, SweeperLoop, sweepOnce } from "./services/Sweeper.js"
export { Workspaces } from "./services/Workspaces.js"

// Layers: the services without HTTP, the HTTP app over them, and the whole gateway.
export { GatewayLive, layerServices, serveGateway, ServicesLive } from "./services/Gateway.js"
export { LoggingLive, TracingLive } from "./services/Telemetry.js"
export { ApiLive, HttpAppLive, HttpLive } from "./http/Server.js"
