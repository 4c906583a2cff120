/**
 * The OpenAPI document served at `/openapi.json`: valid OpenAPI 3.1, honest about security and
 * errors, identical to the committed `openapi.json` (so clients generated from the file match
 * the server), and every documented operation really routed.
 */
import { FetchHttpClient, HttpApi, HttpClient, HttpClientRequest, OpenApi } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Validator } from "@seriousme/openapi-schema-validator"
import { Effect, Either, Option, Schema } from "effect"
import { readFileSync } from "node:fs"
import pkg from "../package.json" with { type: "json" }
import { makeClient } from "../src/client/EffectClient.js"
import { Api } from "../src/domain/Api.js"
import { makeFakePool } from "./support/FakePool.js"
import { appToken, layerTestGateway, request } from "./support/TestGateway.js"

// With the admin API on, so that its routes answer (off, they are the router's 404).
const gateway = () =>
  layerTestGateway({ pool: makeFakePool().layer, config: { CLAWDFORGE_ADMIN_TOKEN: adminToken } })

const adminToken = "admin-token-0123456789abcdef"

const fetchSpec = Effect.map(request("GET", "/openapi.json"), (r) => {
  expect(r.status).toBe(200)
  return r.body as Record<string, any>
})

const operations = (spec: Record<string, any>) =>
  Object.entries<Record<string, any>>(spec.paths).flatMap(([path, item]) =>
    Object.entries<Record<string, any>>(item).map(([method, operation]) => ({ path, method, operation }))
  )

/** The schema names an error response may carry. */
const refs = (response: any): Array<string> => {
  const schema = response.content["application/json"].schema
  return (schema.anyOf ?? [schema]).map((alternative: any) => alternative.$ref.replace("#/components/schemas/", ""))
}

// The error statuses each operation must document (besides 400/404/408/413, which every one has,
// and the 429 of a wrong token's throttle, which every guarded one has).
const expectedErrors: Record<string, ReadonlyArray<number>> = {
  getHealth: [],
  getOpenApi: [],
  getDocs: [],
  runPrompt: [401, 422, 429, 502],
  createSession: [401, 422, 429, 502, 503],
  runTurn: [401, 410, 422, 429, 502, 503, 504],
  streamTurn: [401, 410, 422, 429, 502, 503],
  queueTurn: [401, 410, 422, 429, 502, 503],
  listTurns: [401],
  getTurn: [401],
  getChanges: [401],
  getArchive: [401],
  putArchive: [401, 410, 429],
  listAdminFiles: [401],
  getAdminFile: [401],
  streamStoredTurn: [401, 429],
  cancelTurn: [401],
  getSession: [401],
  updateSession: [401, 410, 429, 502, 503],
  listPermissions: [401],
  answerPermission: [401],
  listSessions: [401],
  closeSession: [401],
  listAgents: [401],
  getUsage: [401],
  getLimits: [401],
  // A session\'s files: raw bytes both ways (413 and 429 for sizes and quotas).
  listFiles: [401],
  getFile: [401],
  putFile: [401, 410, 412, 429],
  deleteFile: [401, 410],
  getMetrics: [401],
  // The operators' API (its own scheme, `adminBearer`); 404 covers the admin API being off.
  getAdminOverview: [401],
  listAdminApps: [401],
  createAdminApp: [401, 409],
  revokeAdminApp: [401],
  setAdminAppLimits: [401],
  setAdminAppWebhook: [401],
  removeAdminAppWebhook: [401],
  listAdminSessions: [401],
  getAdminSession: [401],
  closeAdminSession: [401],
  getAdminTurn: [401],
  streamAdminTurn: [401],
  listAdminPermissions: [401],
  answerAdminPermission: [401],
  getAdminUsage: [401],
  listAuditEvents: [401],
  getCluster: [401],
  getConsole: [],
  getConsoleAsset: []
}

// The routes that need the admin token.
const adminPath = (path: string) => path.startsWith("/admin/") || path === "/cluster"

// The routes that need no token.
const openPaths = ["/healthz", "/openapi.json", "/docs", "/console", "/console/{file}"]

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

  it.scopedLive("describes the bearer schemes, required by default; /healthz, /openapi.json, /docs and the console need no token", () =>
    Effect.gen(function*() {
      const spec = yield* fetchSpec
      expect(spec.components.securitySchemes).toEqual({
        bearer: { type: "http", scheme: "bearer", description: expect.stringContaining("Bearer") },
        adminBearer: { type: "http", scheme: "bearer", description: expect.stringContaining("CLAWDFORGE_ADMIN_TOKEN") }
      })
      expect(spec.security).toEqual([{ bearer: [] }, { adminBearer: [] }])
      expect(spec.servers).toEqual([{ url: "/", description: expect.any(String) }])
      for (const { method, operation, path } of operations(spec)) {
        const expected = openPaths.includes(path) ? [] : adminPath(path) ? [{ adminBearer: [] }] : [{ bearer: [] }]
        expect(operation.security, `${method} ${path}`).toEqual(expected)
        // Every 401 documents its RFC 6750 challenge.
        if (operation.responses[401] !== undefined) {
          expect(operation.responses[401].headers, `${method} ${path}`).toHaveProperty("WWW-Authenticate")
        }
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
        const own = expectedErrors[operation.operationId]!
        const guarded = own.includes(401) ? [429] : []
        expect(statuses, operation.operationId).toEqual([...new Set([400, 404, 408, 413, ...own, ...guarded])].sort())
        expect(refs(operation.responses[408]), operation.operationId).toContain("RequestTimeout")
        if (own.includes(401)) expect(refs(operation.responses[429]), operation.operationId).toContain("TooManyAuthFailures")
        const success = Object.keys(operation.responses).find((status) => status.startsWith("2"))!
        expect(operation.responses[success].description).not.toBe("Success")
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
        const url = path.replace("{id}", "x".repeat(24)).replace("{name}", "app-a").replace("{file}", "icon.svg")
        const response = yield* client.execute(
          HttpClientRequest.make(method.toUpperCase() as "GET")(url).pipe(
            HttpClientRequest.bearerToken(adminPath(path) ? adminToken : appToken),
            HttpClientRequest.bodyUnsafeJson({})
          )
        ).pipe(Effect.scoped)
        const body = yield* response.json.pipe(Effect.orElseSucceed(() => ({})))
        expect((body as any).error, `${method} ${path}`).not.toBe("not_found")
      }
    }).pipe(Effect.provide(gateway())))

  it.scopedLive("operation ids are verb-first camelCase, and the Effect client's methods", () =>
    Effect.gen(function*() {
      const spec = yield* fetchSpec
      const ids = operations(spec).map(({ operation }) => operation.operationId as string).sort()
      for (const id of ids) expect(id).toMatch(/^[a-z]+(?:[A-Z][a-z0-9]*)+$/)
      const client = yield* makeClient({ baseUrl: "http://127.0.0.1:1", token: appToken }).pipe(
        Effect.provide(FetchHttpClient.layer)
      )
      // `files` holds the workspace helpers, beside the methods.
      expect(Object.keys(client).filter((name) => name !== "files").sort()).toEqual(ids)
    }).pipe(Effect.provide(gateway())))

  it("no schema is titled or described by a refinement's generated name", () => {
    const spec = OpenApi.fromApi(Api)
    const seen: Array<string> = []
    const walk = (value: unknown, at: string): void => {
      if (Array.isArray(value)) return value.forEach((item, i) => walk(item, `${at}/${i}`))
      if (value === null || typeof value !== "object") return
      for (const [key, item] of Object.entries(value)) {
        // Property names may be anything; keywords are what is checked.
        const keyword = !at.endsWith("/properties") && !at.endsWith("/schemas") && !at.endsWith("/examples")
        if (keyword && key === "title" && at !== "/info") seen.push(`${at}/title: ${JSON.stringify(item)}`)
        if (keyword && key === "description" && typeof item === "string" && /^an? [a-z]|\w+\(\d*\)/.test(item)) {
          seen.push(`${at}/description: ${item}`)
        }
        walk(item, `${at}/${key}`)
      }
    }
    walk(spec, "")
    expect(seen).toEqual([])
    // No one-line scalar components either (Effect's `Int`): they are written inline.
    expect(Object.keys(spec.components.schemas)).not.toContain("Int")
  })

  it("query parameters are typed as what they are, with their bounds", () => {
    const spec = OpenApi.fromApi(Api)
    const parameters: Array<any> = (spec.paths["/sessions"]!.get as any).parameters
    expect(parameters.find((p) => p.name === "limit")).toEqual({
      name: "limit",
      in: "query",
      required: false,
      description: expect.stringMatching(/^At most/),
      schema: { type: "integer", minimum: 1, maximum: 1000, description: expect.any(String) }
    })
    expect(parameters.find((p) => p.name === "status").schema).toMatchObject({ type: "string", enum: ["open", "closed"] })
  })

  it("every request body has examples, and each one is a valid body", () => {
    const spec = OpenApi.fromApi(Api)
    const payloads = new Map<string, Schema.Schema.Any>()
    HttpApi.reflect(Api, {
      onGroup: () => {},
      onEndpoint: ({ endpoint }) => {
        if (Option.isSome(endpoint.payloadSchema)) payloads.set(endpoint.name, endpoint.payloadSchema.value as unknown as Schema.Schema.Any)
      }
    })
    let bodies = 0
    for (const { method, operation, path } of operations(spec)) {
      // Raw bytes (an archive) have no JSON example to check.
      const media = operation.requestBody?.content["application/json"]
      if (media === undefined) continue
      bodies++
      const examples = Object.values<any>(media.examples ?? {})
      expect(examples.length, `${method} ${path}`).toBeGreaterThan(0)
      const decode = Schema.decodeUnknownEither(payloads.get(operation.operationId) as Schema.Schema<unknown, unknown>)
      for (const example of examples) {
        expect(example.summary).toBeTypeOf("string")
        expect(Either.isRight(decode(example.value)), JSON.stringify(example.value)).toBe(true)
      }
    }
    expect(bodies).toBe(11)
  })

  it("a streamed turn is text/event-stream, with the data of each event as schemas", () => {
    const spec = OpenApi.fromApi(Api)
    const operation: any = spec.paths["/sessions/{id}/turn/stream"]!.post
    expect(Object.keys(operation.responses[200].content)).toEqual(["text/event-stream"])
    expect(operation.responses[200].content["text/event-stream"].schema).toEqual({
      $ref: "#/components/schemas/TurnStreamEventData"
    })
    for (const event of ["`event: acp`", "`event: done`", "`event: error`", "`event: permission`"]) {
      expect(operation.description).toContain(event)
    }
    const schemas: Record<string, any> = spec.components.schemas
    expect(schemas.TurnStreamEventData.anyOf).toEqual(
      ["AcpMessage", "TurnDone", "TurnStreamError", "PermissionRequest", "PermissionResolved"].map((name) => ({
        $ref: `#/components/schemas/${name}`
      }))
    )
    expect(schemas.TurnDone.required).toEqual(["ok", "session_id", "turn_index", "stop_reason", "usage"])
    expect(schemas.TurnStreamError.required).toEqual(["ok", "error", "message"])
    expect(schemas.AcpMessage).toMatchObject({ type: "object", additionalProperties: true })
    // Errors found before the stream starts stay JSON, with their status.
    for (const status of [401, 404, 410, 429, 502, 503]) {
      expect(Object.keys(operation.responses[status].content), String(status)).toEqual(["application/json"])
    }
  })
})

describe("stored turns", () => {
  it("a turn's stored stream is text/event-stream like /turn/stream, resumed with a Last-Event-ID header", () => {
    const spec = OpenApi.fromApi(Api)
    const operation: any = spec.paths["/sessions/{id}/turns/{n}/stream"]!.get
    expect(Object.keys(operation.responses[200].content)).toEqual(["text/event-stream"])
    expect(operation.responses[200].content["text/event-stream"].schema).toEqual({
      $ref: "#/components/schemas/TurnStreamEventData"
    })
    for (const event of ["`event: acp`", "`event: done`", "`event: error`", "`Last-Event-ID`"]) {
      expect(operation.description).toContain(event)
    }
    const header = operation.parameters.find((p: any) => p.in === "header")
    expect(header).toMatchObject({ name: "Last-Event-ID", required: false, schema: { type: "string" } })
    expect(operation.parameters.find((p: any) => p.name === "n").schema).toMatchObject({ type: "integer", minimum: 1 })
    // The async turn answers 202.
    const queued: any = spec.paths["/sessions/{id}/turns"]!.post
    expect(Object.keys(queued.responses).filter((status) => status.startsWith("2"))).toEqual(["202"])
    expect(queued.responses[202].content["application/json"].schema).toEqual({ $ref: "#/components/schemas/TurnAccepted" })
    const list: any = spec.paths["/sessions/{id}/turns"]!.get
    expect(list.parameters.map((p: any) => [p.name, p.schema.type, p.schema.minimum, p.schema.maximum])).toEqual([
      ["id", "string", undefined, undefined],
      ["after", "integer", 0, 2147483647],
      ["limit", "integer", 1, 1000]
    ])
  })
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

describe("idempotency keys", () => {
  it("the five routes that start work take Idempotency-Key, say a retry is safe, and mark a replay", () => {
    const spec = OpenApi.fromApi(Api)
    const routes = [
      ["/run", "post"],
      ["/sessions", "post"],
      ["/sessions/{id}/turn", "post"],
      ["/sessions/{id}/turns", "post"],
      ["/sessions/{id}/turn/stream", "post"]
    ] as const
    for (const [path, method] of routes) {
      const operation: any = (spec.paths as any)[path][method]
      const header = operation.parameters.find((p: any) => p.in === "header")
      expect(header, path).toMatchObject({ name: "Idempotency-Key", required: false, schema: { type: "string" } })
      expect(header.schema.pattern, path).toBeDefined()
      expect(operation.description, path).toContain("retry is safe")
      const success = Object.keys(operation.responses).find((status) => status.startsWith("2"))!
      expect(operation.responses[success].headers, path).toHaveProperty("Idempotent-Replayed")
      expect(operation.responses[422].content["application/json"].schema, path).toEqual({
        $ref: "#/components/schemas/IdempotencyKeyReused"
      })
    }
    // Reads take no key.
    const read: any = spec.paths["/sessions/{id}"]!.get
    expect((read.parameters ?? []).some((p: any) => p.in === "header")).toBe(false)
  })
})
