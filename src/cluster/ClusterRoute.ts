import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Layer, Redacted } from "effect"
import { AdminAuthorization } from "../domain/Admin.js"
import { AdminAuthorizationLive } from "../http/AdminAuthorization.js"
import { ClusterNodes } from "./ClusterNodes.js"

/** Consecutive shard numbers as `a-b` ranges: 60 shards read as a few ranges. */
const ranges = (shards: ReadonlyArray<number>) => {
  const out: Array<string> = []
  const sorted = [...shards].sort((a, b) => a - b)
  for (let i = 0; i < sorted.length;) {
    let j = i
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++
    out.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`)
    i = j + 1
  }
  return out
}

/**
 * `GET /cluster`: the nodes (address, live sessions, capacity, shards) and who owns each shard,
 * behind the admin API's own guard (`AdminAuthorization`: `Authorization: Bearer
 * <CLAWDFORGE_ADMIN_TOKEN>` compared in constant time; an app token is a 401; without the
 * variable a 404). A route of a cluster node only: a single gateway has none.
 */
export const ClusterRouteLive = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function*() {
    const nodes = yield* ClusterNodes
    const guard = yield* AdminAuthorization
    yield* router.get(
      "/cluster",
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const token = /^Bearer +(.*)$/i.exec(request.headers.authorization ?? "")?.[1]?.trim() ?? ""
        yield* guard.adminBearer(Redacted.make(token))
        const live = yield* nodes.nodes
        const owners: Record<string, string> = {}
        for (const node of live) for (const shard of node.shards) owners[shard] = node.node
        return HttpServerResponse.unsafeJson({
          ok: true,
          node: nodes.self,
          live_sessions: live.reduce((sum, node) => sum + node.live, 0),
          capacity: live.reduce((sum, node) => sum + node.capacity, 0),
          nodes: live.map((node) => ({
            node: node.node,
            live_sessions: node.live,
            capacity: node.capacity,
            shard_count: node.shards.length,
            shards: ranges(node.shards),
            last_seen_ms: node.seen_ms
          })),
          shard_owners: owners
        })
      }).pipe(
        // The API's error shape, with the guard's status.
        Effect.catchAll((error) =>
          HttpServerResponse.json(
            { ok: false, error: error.error, message: error.message },
            { status: error._tag === "Unauthorized" ? 401 : 404 }
          )
        ),
        Effect.orDie
      )
    )
  })
).pipe(Layer.provide(AdminAuthorizationLive))
