/**
 * OpenAPI post-processing. The document is derived from the Api; these only fix what the derivation
 * cannot say (prose, examples, security defaults, the errors as they reach the wire) and what it says
 * in a form generators and docs render badly (titles made of refinement names, one-line integer
 * components). Plain functions on the JSON document, applied through `OpenApi.Transform`.
 */
import { Schema } from "effect"
import { replayedHeader } from "./Idempotency.js"

type Json = Record<string, any>

const isRecord = (value: unknown): value is Json =>
  value !== null && typeof value === "object" && !Array.isArray(value)

const refName = (schema: unknown): string | undefined =>
  isRecord(schema) && typeof schema.$ref === "string" ? schema.$ref.replace("#/components/schemas/", "") : undefined

const refsIn = (value: unknown, into = new Set<string>()): Set<string> => {
  if (Array.isArray(value)) value.forEach((item) => refsIn(item, into))
  else if (isRecord(value)) {
    const name = refName(value)
    if (name !== undefined) into.add(name)
    Object.values(value).forEach((item) => refsIn(item, into))
  }
  return into
}

/** Every JSON Schema in the document: components, parameters, bodies, responses, headers. */
const eachSchema = (spec: Json, visit: (schema: Json) => void) => {
  const walk = (schema: unknown): void => {
    if (Array.isArray(schema)) return schema.forEach(walk)
    if (!isRecord(schema)) return
    visit(schema)
    for (const key of ["properties", "patternProperties", "$defs"]) {
      if (isRecord(schema[key])) Object.values(schema[key]).forEach(walk)
    }
    for (const key of ["items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else"]) {
      walk(schema[key])
    }
    for (const key of ["anyOf", "oneOf", "allOf", "prefixItems"]) walk(schema[key])
  }
  Object.values<unknown>(spec.components?.schemas ?? {}).forEach(walk)
  for (const item of Object.values<Json>(spec.paths ?? {})) {
    for (const operation of Object.values<Json>(item)) {
      for (const parameter of operation.parameters ?? []) walk(parameter.schema)
      for (const media of Object.values<Json>(operation.requestBody?.content ?? {})) walk(media.schema)
      for (const response of Object.values<Json>(operation.responses ?? {})) {
        for (const media of Object.values<Json>(response.content ?? {})) walk(media.schema)
        for (const header of Object.values<Json>(response.headers ?? {})) walk(header.schema)
      }
    }
  }
}

// Effect marks `unknown`, `any`, `object`... with a fixed `$id` ("/schemas/unknown"); used twice
// in one document that is a duplicate `$id`, which OpenAPI 3.1 (JSON Schema 2020-12) forbids.
const dropMarkerIds = (schema: Json) => {
  if (typeof schema.$id === "string" && schema.$id.startsWith("/schemas/")) delete schema.$id
}

// Effect titles a refinement with its name (`maxLength(128)`, `int`, `nonNegative`) and describes
// it in words derived from its bounds ("a string at most 128 character(s) long"): generators print
// both into the code they write, and docs show them instead of the type. The bounds are in the
// schema already; descriptions meant for people are written in the domain, starting with a capital
// letter or a code span, so what is left here is the generated prose.
const generatedDescription = /^(a|an) [a-z]/

const dropGeneratedProse = (schema: Json) => {
  delete schema.title
  if (typeof schema.description === "string" && generatedDescription.test(schema.description)) {
    delete schema.description
  }
}

/**
 * Components that are one scalar type (Effect's `Int` is a component `{type: "integer"}`) are
 * written inline where they are used, so that a generated client says `number`, not `Int`.
 */
const inlineScalarComponents = (spec: Json) => {
  const schemas: Json = spec.components.schemas
  const scalar = new Map<string, Json>()
  for (const [name, schema] of Object.entries<Json>(schemas)) {
    const keys = Object.keys(schema).filter((key) => key !== "description")
    if (keys.length === 1 && keys[0] === "type" && ["integer", "number", "string", "boolean"].includes(schema.type)) {
      scalar.set(name, { type: schema.type })
    }
  }
  if (scalar.size === 0) return
  const replace = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(replace)
    if (!isRecord(value)) return value
    const name = refName(value)
    const inline = name === undefined ? undefined : scalar.get(name)
    const { $ref: _, ...siblings } = value
    const out: Json = inline === undefined ? { ...value } : { ...inline, ...siblings }
    for (const key of Object.keys(out)) out[key] = replace(out[key])
    return out
  }
  for (const name of scalar.keys()) delete schemas[name]
  spec.paths = replace(spec.paths)
  spec.components.schemas = replace(schemas)
}

/**
 * Error responses as the gateway really sends them. `HttpApiDecodeError` is part of every
 * HttpApi but never reaches the wire (RequestErrorsLive turns it into `BadRequest`), so it is
 * dropped with the schemas only it uses; a status shared by several errors gets every
 * error's description, not just the first one's.
 */
const documentErrors = (spec: Json) => {
  const schemas: Json = spec.components.schemas
  const dropped = "HttpApiDecodeError"
  for (const item of Object.values<Json>(spec.paths)) {
    for (const operation of Object.values<Json>(item)) {
      for (const [status, response] of Object.entries<Json>(operation.responses)) {
        const media = response.content?.["application/json"]
        if (Number(status) < 400 || media === undefined) continue
        const alternatives: Array<any> = (media.schema.anyOf ?? [media.schema])
          .filter((schema: any) => refName(schema) !== dropped)
        media.schema = alternatives.length === 1 ? alternatives[0] : { anyOf: alternatives }
        const described = alternatives.flatMap((schema) => {
          const name = refName(schema)
          const description = name === undefined ? undefined : schemas[name]?.description
          return description === undefined ? [] : [{ name, description }]
        })
        if (described.length === 1) response.description = described[0]!.description
        if (described.length > 1) {
          response.description = described.map(({ description, name }) => `\`${name}\`: ${description}`).join("; ")
        }
      }
    }
  }
  // Drop the schemas reachable only through the dropped one.
  const reachable = (from: unknown) => {
    const seen = refsIn(from)
    for (const name of seen) refsIn(schemas[name], seen)
    return seen
  }
  const candidates = reachable(schemas[dropped]).add(dropped)
  const used = reachable([spec.paths, Object.entries(schemas).filter(([name]) => !candidates.has(name))])
  for (const name of candidates) if (!used.has(name)) delete schemas[name]
}

/**
 * The bearer token is required unless an operation says otherwise: the document's default
 * `security` names the schemes its operations use, the open operations keep their `security: []`,
 * and every 401 documents its `WWW-Authenticate` challenge (RFC 6750).
 */
const documentSecurity = (spec: Json) => {
  const schemes = new Set<string>()
  for (const item of Object.values<Json>(spec.paths)) {
    for (const operation of Object.values<Json>(item)) {
      for (const requirement of operation.security ?? []) Object.keys(requirement).forEach((name) => schemes.add(name))
      const unauthorized = operation.responses?.[401]
      if (unauthorized !== undefined) {
        unauthorized.headers = {
          "WWW-Authenticate": {
            description: "The bearer challenge (RFC 6750): `Bearer realm=\"clawdforge\"`, with " +
              "`error=\"invalid_token\"` when the request carried a token that names no app",
            schema: { type: "string" }
          }
        }
      }
    }
  }
  spec.security = [...schemes].map((name) => ({ [name]: [] }))
}

/**
 * A route whose last parameter is the rest of the URL (`/sessions/{id}/files/*`, a file's path with its `/`)
 * is written as `{path}` in the document, its parameter named `path`: generators take `*` for no name.
 */
const wildcardPaths = (spec: Json) => {
  for (const key of Object.keys(spec.paths)) {
    if (!key.endsWith("/*")) continue
    const item = spec.paths[key]
    delete spec.paths[key]
    spec.paths[`${key.slice(0, -1)}{path}`] = item
    for (const operation of Object.values<Json>(item)) {
      for (const parameter of operation.parameters ?? []) {
        if (parameter.in === "path" && parameter.name === "*") {
          parameter.name = "path"
          parameter.description = `${parameter.description ?? "The rest of the path"}; sent as is (\`a/b.txt\`) or with \`/\` as \`%2F\``
        }
      }
    }
  }
}

/** The whole document's finishing pass (the Api's `OpenApi.Transform`). */
export const finishDocument = (input: Json): Json => {
  const spec = structuredClone(input)
  eachSchema(spec, dropMarkerIds)
  documentErrors(spec)
  eachSchema(spec, dropGeneratedProse)
  inlineScalarComponents(spec)
  wildcardPaths(spec)
  for (const item of Object.values<Json>(spec.paths)) {
    for (const operation of Object.values<Json>(item)) {
      for (const parameter of operation.parameters ?? []) {
        if (typeof parameter.description === "string" && generatedDescription.test(parameter.description)) {
          delete parameter.description
        }
      }
    }
  }
  documentSecurity(spec)
  return spec
}

// Per-operation transforms (an endpoint's `OpenApi.Transform`).

export interface Example<A> {
  readonly summary: string
  readonly value: A
}

/**
 * An endpoint's prose beyond its summary and description: what its 200 means, the examples of
 * its JSON body (typed against the payload schema, written to the document as the wire carries
 * them), and the headers of its 200 (or other success status).
 */
export const operation = <A, I>(options: {
  readonly success: string
  readonly payload?: Schema.Schema<A, I> | undefined
  readonly examples?: Record<string, Example<NoInfer<A>>> | undefined
  readonly successHeaders?: Record<string, { readonly description: string }> | undefined
  /** Takes `Idempotency-Key`: the header is spelled as people write it, and a replay is marked. */
  readonly idempotent?: boolean | undefined
}) =>
(input: Json): Json => {
  const op: Json = structuredClone(input)
  const status = Object.keys(op.responses).find((code) => code.startsWith("2")) ?? "200"
  const ok: Json = { ...op.responses[status], description: options.success }
  const successHeaders = options.idempotent ? { ...options.successHeaders, ...replayedHeader } : options.successHeaders
  if (successHeaders !== undefined) {
    ok.headers = Object.fromEntries(
      Object.entries(successHeaders).map(([name, { description }]) => [
        name,
        { description, schema: { type: "string" } }
      ])
    )
  }
  op.responses = { ...op.responses, [status]: ok }
  if (options.idempotent) {
    // Headers are declared lower-case; the document spells this one as clients send it.
    for (const parameter of op.parameters ?? []) {
      if (parameter.in === "header" && parameter.name === "idempotency-key") parameter.name = "Idempotency-Key"
    }
  }
  const media = op.requestBody?.content?.["application/json"]
  if (options.examples !== undefined && options.payload !== undefined && media !== undefined) {
    const encode = Schema.encodeSync(options.payload)
    media.examples = Object.fromEntries(
      Object.entries(options.examples).map(([name, { summary, value }]) => [name, { summary, value: encode(value) }])
    )
  }
  return op
}
