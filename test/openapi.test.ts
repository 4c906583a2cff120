/**
 * The OpenAPI document served at `/openapi.json`: valid OpenAPI 3.1, honest about security and
 * errors, identical to the committed `openapi.json` (so clients generated from the file match
 * the server), and every documented operation really routed.
 */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Validator } from "@seriousme/openapi-schema-validator"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import pkg from "../package.json" with { type: "json" }
import { makeFakePool } from "./support/FakePool.js"
import { appToken, layerTestGateway, request } from "./support/TestGateway.js"

const gateway = () => layerTestGateway({ pool: makeFakePool().layer })

const fetchSpec = Effect.map(request("GET", "/openapi.json"), (r) => {
  expect(r.status).toBe(200)
  return r.body as Record<string, any>
})

const operations = (spec: Record<string, any>) =>
  Object.entries<Record<string, any>>(spec.paths).flatMap(([path, item]) =>
    Object.entries<Record<string, any>>(item).map(([method, operation]) => ({ path, method, operation }))
  )

// The error statuses each operation must document (besides 400/404/413, which every one has).
const expectedErrors: Record<string, ReadonlyArray<number>> = {
  "health.healthz": [],
  "run.run": [401, 502],
  "sessions.create": [401, 502, 503],
  "sessions.turn": [401, 410, 502, 503, 504],
  "sessions.turnStream": [401, 410, 502, 503],
  "sessions.cancel": [401],
  "sessions.get": [401],
  "sessions.list": [401],
  "sessions.close": [401],
  "observability.metrics": [401]
}

describe("/openapi.json", () => {
  it.scopedLive("is a valid OpenAPI 3.1 document, equal to the committed openapi.json", () =>
    Effect.gen(function*() {
      const spec = yield* fetchSpec
      const validator = new Validator()
      const result = yield* Effect.promise(() => validator.validate(spec))
      expect(result.errors).toBeUndefined()
      expect(result.valid).toBe(true)
      expect(validator.version).toBe("3.1")
      expect(spec.info).toMatchObject({ title: "clawdforge", version: pkg.version })
      // Drift between the Api and the committed file (and so the generated client) fails here.
      const committed = JSON.parse(readFileSync(new URL("../openapi.json", import.meta.url), "utf8"))
      expect(spec).toEqual(committed)
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("describes the bearer scheme; /healthz alone needs no token", () =>
    Effect.gen(function*() {
      const spec = yield* fetchSpec
      expect(spec.components.securitySchemes).toEqual({
        bearer: { type: "http", scheme: "bearer", description: expect.stringContaining("Bearer") }
      })
      for (const { method, operation, path } of operations(spec)) {
        const expected = path === "/healthz" ? [] : [{ bearer: [] }]
        expect(operation.security, `${method} ${path}`).toEqual(expected)
      }
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("documents every error status with an {ok:false, error, message} body", () =>
    Effect.gen(function*() {
      const spec = yield* fetchSpec
      const schemas: Record<string, any> = spec.components.schemas
      // The platform's decode error never reaches the wire (it is answered as BadRequest).
      expect(schemas).not.toHaveProperty("HttpApiDecodeError")
      const found = operations(spec)
      expect(found.map(({ operation }) => operation.operationId).sort()).toEqual(Object.keys(expectedErrors).sort())
      for (const { operation } of found) {
        const statuses = Object.keys(operation.responses).map(Number).filter((status) => status >= 400)
        expect(statuses, operation.operationId).toEqual([400, 404, 413, ...expectedErrors[operation.operationId]!].sort())
        expect(operation.responses[200].description).not.toBe("Success")
        expect(operation.summary).toBeTypeOf("string")
        for (const status of statuses) {
          const response = operation.responses[status]
          expect(response.description).not.toBe("Error")
          const schema = response.content["application/json"].schema
          for (const alternative of schema.anyOf ?? [schema]) {
            const body = schemas[alternative.$ref.replace("#/components/schemas/", "")]
            expect(body.required).toEqual(expect.arrayContaining(["ok", "error", "message", "_tag"]))
            expect(body.properties.ok).toEqual({ type: "boolean", enum: [false] })
          }
        }
      }
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("every documented operation is routed", () =>
    Effect.gen(function*() {
      const spec = yield* fetchSpec
      const client = yield* HttpClient.HttpClient
      for (const { method, path } of operations(spec)) {
        // A route that exists answers with its own reply or error, never the router's not_found.
        const url = path.replace("{id}", "x".repeat(24))
        const response = yield* client.execute(
          HttpClientRequest.make(method.toUpperCase() as "GET")(url).pipe(
            HttpClientRequest.bearerToken(appToken),
            HttpClientRequest.bodyUnsafeJson({})
          )
        ).pipe(Effect.scoped)
        const body = yield* response.json.pipe(Effect.orElseSucceed(() => ({})))
        expect((body as any).error, `${method} ${path}`).not.toBe("not_found")
      }
    }).pipe(Effect.provide(gateway())))
})

describe("/docs", () => {
  it.scopedLive("serves the Scalar page without a token", () =>
    Effect.gen(function*() {
      const client = yield* HttpClient.HttpClient
      const response = yield* client.get("/docs")
      expect(response.status).toBe(200)
      expect(response.headers["content-type"]).toContain("text/html")
      const html = yield* response.text
      expect(html).toContain("<html")
      expect(html).toContain("clawdforge")
    }).pipe(Effect.provide(gateway())))
})
