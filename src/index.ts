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
export * from "./domain/Turn.js"

// Clients: a typed Effect client over the Api, and an openapi-fetch one from the document.
export { type Client, makeClient } from "./client/EffectClient.js"
export { createFetchClient, type FetchClient } from "./client/FetchClient.js"

// Services.
export { AcpDriver } from "./services/agents/AcpDriver.js"
export * from "./services/agents/AcpMessages.js"
export { AgentPool } from "./services/sessions/AgentPool.js"
export type { AgentDriver, AgentHandle, AgentLaunch, PromptInput, TurnOutcome } from "./services/agents/AgentDriver.js"
export { AgentRegistry, builtinAgents, scriptedAgentPath } from "./services/agents/AgentRegistry.js"
export { AppConfig, describeConfigError } from "./services/config/AppConfig.js"
export { AppTokens } from "./services/ledger/AppTokens.js"
export { Auth } from "./services/tenancy/Auth.js"
export { ClaudeRunner, parseResultText } from "./services/agents/ClaudeRunner.js"
export { Ledger, SessionEvent } from "./services/ledger/Ledger.js"
export { renderPrometheus, scrapeMetrics } from "./services/observability/Metrics.js"
export { answerPermission } from "./services/agents/Permissions.js"
export { type AcceptedTurn, Sessions, SessionsDrain, type TurnError } from "./services/sessions/Sessions.js"
export { LiveTurn, type TurnFeed, type TurnStreamEnd } from "./services/sessions/runtime/TurnFeed.js"
export { type SweepCounts, Sweeper, SweeperLoop, sweepOnce } from "./services/sessions/Sweeper.js"
export { Workspaces } from "./services/sessions/Workspaces.js"

// Layers: the services without HTTP, the HTTP app over them, and the whole gateway.
export { GatewayLive, layerServices, serveGateway, ServicesLive } from "./Gateway.js"
export { LoggingLive, TracingLive } from "./services/observability/Telemetry.js"
export { ApiLive, HttpAppLive, HttpLive } from "./http/Server.js"
