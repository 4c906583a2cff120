import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Effect } from "effect"
import { Api, CurrentApp } from "../domain/Api.js"
import { Sessions } from "../services/sessions/Sessions.js"
import { WorkspaceChanges } from "../services/workspaces/WorkspaceChanges.js"

/**
 * `GET /sessions/{id}/changes`: the caller's session (another app's is 404; a closed one's
 * workspace is still there until the hard TTL), then what changed in it since the turn asked for.
 */
export const WorkspaceChangesHttpLive = HttpApiBuilder.group(Api, "workspaceChanges", (handlers) =>
  Effect.gen(function*() {
    const sessions = yield* Sessions
    const changes = yield* WorkspaceChanges
    return handlers.handle("getChanges", ({ path, urlParams }) =>
      Effect.gen(function*() {
        const app = yield* CurrentApp
        const session = yield* sessions.get(app, path.id)
        return yield* changes.since(session, urlParams.since_turn ?? 0, { diff: urlParams.diff === "true" })
      }))
  }))
