import { NodeRuntime } from "@effect/platform-node"
import { serveGateway } from "./services/Gateway.js"

serveGateway.pipe(NodeRuntime.runMain)
