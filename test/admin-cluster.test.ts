/**
 * `GET /cluster` on a single gateway: an endpoint of the admin API (its guard, its 401 and 404),
 * answered 404 `not_a_cluster`, in the typed client as `getCluster` with a typed failure. A node
 * of a cluster answering it is test/cluster.test.ts's (postgres project).
 */
import { FetchHttpClient, HttpServer } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { makeClient } from "../src/client/EffectClient.js"
import { makeFakePool } from "./support/FakePool.js"
import { appToken, layerTestGateway, request } from "./support/TestGateway.js"

const adminToken = "admin-token-0123456789abcdef"
const gateway = (config: Record<string, string> = { CLAWDFORGE_ADMIN_TOKEN: adminToken }) =>
  layerTestGateway({ pool: makeFakePool().layer, config })

describe("GET /cluster on a single gateway", () => {
  it.scopedLive("is 404 not_a_cluster for the admin token, 401 for an app token or none", () =>
    Effect.gen(function*() {
      const single = yield* request("GET", "/cluster", { token: adminToken })
      expect(single.status).toBe(404)
      expect(single.body).toMatchObject({ ok: false, error: "not_a_cluster", message: expect.stringContaining("CLAWDFORGE_CLUSTER") })
      for (const token of [appToken, undefined]) {
        const refused = yield* request("GET", "/cluster", token === undefined ? {} : { token })
        expect(refused.status).toBe(401)
        expect(refused.response.headers["www-authenticate"]).toContain(`realm="clawdforge-admin"`)
      }
      // The typed client names the failure.
      const url = yield* HttpServer.addressFormattedWith(Effect.succeed)
      const client = yield* makeClient({ baseUrl: url, token: adminToken }).pipe(Effect.provide(FetchHttpClient.layer))
      const failure = yield* Effect.flip(client.getCluster({}))
      expect(failure._tag).toBe("NotACluster")
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("is the admin API's 404 not_found while CLAWDFORGE_ADMIN_TOKEN is not set", () =>
    Effect.gen(function*() {
      const off = yield* request("GET", "/cluster", { token: adminToken })
      expect(off.status).toBe(404)
      expect(off.body).toMatchObject({ ok: false, error: "not_found" })
    }).pipe(Effect.provide(gateway({}))))
})
