/**
 * The API's surface as HTTP clients meet it: the RFC 6750 challenge on every 401, clean messages
 * for bad query parameters, and `/openapi.json` and `/docs` compressed, cached and revalidated,
 * with the docs page's 3 MB of JavaScript loaded only when `/docs` is first asked for.
 */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { brotliDecompressSync, gunzipSync } from "node:zlib"
import { startGateway } from "./support/GatewayProcess.js"
import { makeFakePool } from "./support/FakePool.js"
import { appToken, layerTestGateway, request } from "./support/TestGateway.js"
import { tempDir } from "./support/TempDirs.js"

const adminToken = "admin-token-0123456789abcdef"
const gateway = () =>
  layerTestGateway({
    pool: makeFakePool().layer,
    // Every route is tried with wrong tokens from one address: the throttle (test/hardening.test.ts) would answer 429.
    config: { CLAWDFORGE_ADMIN_TOKEN: adminToken, CLAWDFORGE_AUTH_FAILURES_PER_MINUTE: "0" }
  })

/** A raw GET with the given headers; the body as bytes, undecoded. */
const get = (path: string, headers: Record<string, string>) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.execute(HttpClientRequest.get(path).pipe(HttpClientRequest.setHeaders(headers)))
    return { status: response.status, headers: response.headers, body: Buffer.from(yield* response.arrayBuffer) }
  }).pipe(Effect.scoped)

describe("401", () => {
  it.scopedLive("every route that needs a token answers a missing or unknown one with WWW-Authenticate: Bearer", () =>
    Effect.gen(function*() {
      const spec = (yield* request("GET", "/openapi.json")).body
      const client = yield* HttpClient.HttpClient
      let checked = 0
      for (const [path, item] of Object.entries<Record<string, any>>(spec.paths)) {
        for (const [method, operation] of Object.entries<Record<string, any>>(item)) {
          if (operation.security.length === 0) continue
          const url = path.replace("{id}", "x".repeat(24)).replace("{name}", "app-a")
          // The operators' routes have their own scheme and realm: an app's token is refused there too.
          const admin = "adminBearer" in operation.security[0]
          const realm = admin ? "clawdforge-admin" : "clawdforge"
          const cases = [
            { authorization: undefined, challenge: `Bearer realm="${realm}"` },
            { authorization: "Basic dXNlcjpwdw==", challenge: `Bearer realm="${realm}"` },
            { authorization: "Bearer not-a-token", challenge: `Bearer realm="${realm}", error="invalid_token"` },
            ...(admin ? [{ authorization: `Bearer ${appToken}`, challenge: `Bearer realm="${realm}", error="invalid_token"` }] : [])
          ]
          for (const { authorization, challenge } of cases) {
            let req = HttpClientRequest.make(method.toUpperCase() as "GET")(url).pipe(HttpClientRequest.bodyUnsafeJson({}))
            if (authorization !== undefined) req = HttpClientRequest.setHeader(req, "authorization", authorization)
            const response = yield* client.execute(req).pipe(Effect.scoped)
            const what = `${method} ${path} (${authorization ?? "no token"})`
            expect(response.status, what).toBe(401)
            expect(response.headers["www-authenticate"], what).toBe(challenge)
            checked++
          }
        }
      }
      // 26 app routes (the workspace's files, archive and changes among them) and 19 operators' routes.
      expect(checked).toBe(26 * 3 + 19 * 4)
      // Any other status carries no challenge.
      const ok = yield* request("GET", "/sessions", { token: appToken })
      expect(ok.status).toBe(200)
      expect(ok.response.headers["www-authenticate"]).toBeUndefined()
    }).pipe(Effect.provide(gateway())))
})

describe("query parameters", () => {
  it.scopedLive("a bad limit is a 400 that says, in one clause, what is expected", () =>
    Effect.gen(function*() {
      for (const value of ["0", "-5", "abc", "1.5", "100000", ""]) {
        const { body, status } = yield* request("GET", `/sessions?limit=${value}`, { token: appToken })
        expect(status, value).toBe(400)
        expect(body, value).toEqual({
          _tag: "BadRequest",
          ok: false,
          error: "bad_request",
          message: `Invalid request: limit: Expected an integer from 1 to 1000, actual ${JSON.stringify(value)}`
        })
      }
      const good = yield* request("GET", "/sessions?limit=1000&status=open", { token: appToken })
      expect(good.status).toBe(200)
    }).pipe(Effect.provide(gateway())))
})

describe("/openapi.json and /docs", () => {
  for (const path of ["/openapi.json", "/docs"]) {
    it.scopedLive(`${path}: compressed when accepted, with a validator; a revalidation is a 304`, () =>
      Effect.gen(function*() {
        const plain = yield* get(path, { "accept-encoding": "identity" })
        expect(plain.status).toBe(200)
        expect(plain.headers["content-encoding"]).toBeUndefined()
        expect(plain.headers["cache-control"]).toBe("no-cache")
        expect(plain.headers["vary"]).toBe("Accept-Encoding")
        const etag = plain.headers["etag"]!
        expect(etag).toMatch(/^"[\w-]{27}"$/)

        const br = yield* get(path, { "accept-encoding": "gzip, deflate, br" })
        expect(br.headers["content-encoding"]).toBe("br")
        expect(br.headers["etag"]).toBe(etag.replace(/"$/, "-br\""))
        expect(brotliDecompressSync(br.body).equals(plain.body)).toBe(true)
        expect(br.body.length).toBeLessThan(plain.body.length / 3)

        const gzip = yield* get(path, { "accept-encoding": "gzip;q=1, br;q=0" })
        expect(gzip.headers["content-encoding"]).toBe("gzip")
        expect(gunzipSync(gzip.body).equals(plain.body)).toBe(true)

        const again = yield* get(path, { "accept-encoding": "br", "if-none-match": br.headers["etag"]! })
        expect(again.status).toBe(304)
        expect(again.body.length).toBe(0)
        expect(again.headers["etag"]).toBe(br.headers["etag"])
        // Another representation's tag does not match.
        expect((yield* get(path, { "accept-encoding": "br", "if-none-match": etag })).status).toBe(200)
      }).pipe(Effect.provide(gateway())))
  }
})

describe("the docs page's assets", () => {
  it("load when /docs is first asked for, not when the gateway starts", async () => {
    // A module hook in the compiled gateway's process records every module it loads.
    const dir = tempDir("clawdforge-modules-")
    const loaded = join(dir, "loaded.txt")
    writeFileSync(loaded, "")
    writeFileSync(
      join(dir, "hooks.mjs"),
      `import { appendFileSync } from "node:fs"
export async function load(url, context, next) {
  appendFileSync(${JSON.stringify(loaded)}, url + "\\n")
  return next(url, context)
}`
    )
    writeFileSync(join(dir, "register.mjs"), `import { register } from "node:module"\nregister("./hooks.mjs", import.meta.url)\n`)
    const scalar = (text: string) => /httpApiScalar/.test(text)

    const gw = await startGateway({ NODE_OPTIONS: `--import=${join(dir, "register.mjs")}` })
    try {
      expect((await fetch(`${gw.url}/healthz`)).status).toBe(200)
      expect((await fetch(`${gw.url}/openapi.json`)).status).toBe(200)
      expect(readFileSync(loaded, "utf8")).toContain("main.js")
      expect(scalar(readFileSync(loaded, "utf8"))).toBe(false)
      const docs = await fetch(`${gw.url}/docs`)
      expect(docs.status).toBe(200)
      expect(await docs.text()).toContain("@scalar/api-reference")
      expect(scalar(readFileSync(loaded, "utf8"))).toBe(true)
    } finally {
      await gw.stop()
    }
  })
})
