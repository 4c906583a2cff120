import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Config, Effect, Option, Redacted } from "effect"
import { createHash, timingSafeEqual } from "node:crypto"
import { ClusterNodes } from "./ClusterNodes.js"

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest()

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  HttpServerResponse.unsafeJson(body, { status, headers })

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
 * behind the operators' token (`Authorization: Bearer <CLAWDFORGE_ADMIN_TOKEN>`), compared as
 * SHA-256 digests with `timingSafeEqual`; an app token is a 401; without the variable the route
 * is a 404, as every admin route is. A route of the cluster node only (a single gateway has none).
 */
export const ClusterRouteLive = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function*() {
    const nodes = yield* ClusterNodes
    const adminToken = yield* Config.redacted("CLAWDFORGE_ADMIN_TOKEN").pipe(
      Config.map((token) => Redacted.value(token).length === 0 ? Option.none() : Option.some(sha256(Redacted.value(token)))),
      Config.withDefault(Option.none<Buffer>()),
      Effect.orDie
    )
    yield* router.get(
      "/cluster",
      Effect.gen(function*() {
        if (Option.isNone(adminToken)) {
          return json(404, { ok: false, error: "not_found", message: "No such route: the admin API is off: set CLAWDFORGE_ADMIN_TOKEN" })
        }
        const request = yield* HttpServerRequest.HttpServerRequest
        const sent = /^Bearer +(\S+)\s*$/i.exec(request.headers.authorization ?? "")?.[1]
        if (sent === undefined || !timingSafeEqual(sha256(sent), adminToken.value)) {
          return json(401, { ok: false, error: "unauthorized", message: "Missing or unknown admin token" }, {
            "www-authenticate": sent === undefined
              ? `Bearer realm="clawdforge-admin"`
              : `Bearer realm="clawdforge-admin", error="invalid_token"`
          })
        }
        const live = yield* nodes.nodes
        const owners: Record<string, string> = {}
        for (const node of live) for (const shard of node.shards) owners[shard] = node.node
        return json(200, {
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
      })
    )
  })
)
