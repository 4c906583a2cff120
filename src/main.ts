import { NodeRuntime } from "@effect/platform-node"
import { serveGateway } from "./Gateway.js"

// Our logger (JSON by default) replaces the runtime's pretty one.
serveGateway.pipe(NodeRuntime.runMain({ disablePrettyLogger: true }))
