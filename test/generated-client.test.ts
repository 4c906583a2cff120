/**
 * The API as an outside tool sees it: a client generated from the live `/openapi.json` by a
 * generator the project does not use (@hey-api/openapi-ts: fetch client, sdk and typescript
 * plugins) must generate without a warning, type-check in strict mode together with a program
 * written against it, and run that program against the gateway (real scripted agents): create, a
 * turn, a streamed turn read event by event and checked against the document's schemas (it runs
 * once), get, list, close twice, and the 400/401/404/410 cases. The output goes to a temp folder.
 */
import { HttpServer } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import Ajv2020Module from "ajv/dist/2020.js"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import { writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { promisify } from "node:util"
import { agentLogFile, agentText, readAgentLog } from "./support/ScriptedAgent.js"
import { appToken, layerScriptedGateway, otherToken } from "./support/TestGateway.js"
import { tempDir } from "./support/TempDirs.js"

const root = resolve(import.meta.dirname, "..")
const run = promisify(execFile)

/** Runs `node args` in the project; resolves with its exit code and what it printed. */
const node = (args: ReadonlyArray<string>) =>
  run(process.execPath, args, { cwd: root, timeout: 60_000 }).then(
    ({ stderr, stdout }) => ({ code: 0, stdout, stderr }),
    (error: { code?: number; stdout?: string; stderr?: string }) => ({
      code: error.code ?? 1,
      stdout: error.stdout ?? "",
      stderr: error.stderr ?? ""
    })
  )

/**
 * hey-api, as its docs show it, with its own check of the input on; it prints its progress on
 * stdout and every warning (`🚨 ...`, `❗️ ...`) or error on stderr.
 */
const generate = (input: string, output: string) =>
  node([
    "--input-type=module",
    "-e",
    `import { createClient } from "@hey-api/openapi-ts"
await createClient({
  input: ${JSON.stringify(input)},
  output: ${JSON.stringify(output)},
  plugins: ["@hey-api/client-fetch", "@hey-api/sdk", "@hey-api/typescript"],
  parser: { validate_EXPERIMENTAL: true },
  logs: { file: false }
})`
  ])

/**
 * What a user who does not use Effect writes against the generated client. It is compiled with
 * the generated code in strict mode, so the type-level lines are checked too.
 */
const program = `
import { createClient, createConfig } from "./client/index.js"
import { closeSession, createSession, getHealth, getSession, listSessions, runTurn, streamTurn } from "./sdk.gen.js"
import type { TurnDone, TurnStreamEventData } from "./types.gen.js"

const connect = (baseUrl: string, token: string) => createClient(createConfig({ baseUrl, auth: token }))

// Type-level checks (never called): what the document makes of the API in TypeScript.
export const typeChecks = async () => {
  // @ts-expect-error \`limit\` is an integer, not a string.
  await listSessions({ query: { limit: "10" } })
  const { stream } = await streamTurn({ path: { id: "x" }, body: { prompt: "x" } })
  for await (const data of stream) {
    // @ts-expect-error the events' data are the documented objects, not strings.
    const text: string = data
    const union: TurnStreamEventData = data
    return [text, union]
  }
  return []
}

export async function scenario(
  baseUrl: string,
  tokens: { readonly app: string; readonly other: string; readonly wrong: string },
  validate: (data: unknown) => void
) {
  const client = connect(baseUrl, tokens.app)
  const health = await getHealth({ client })

  const created = await createSession({ client, body: { agent: "scripted", meta: { via: "hey-api" } } })
  if (created.data === undefined) throw new Error(\`create failed: \${JSON.stringify(created.error)}\`)
  const id: string = created.data.session_id

  const turn = await runTurn({ client, path: { id }, body: { prompt: "hello" } })

  // The streamed turn, read event by event. A generated SSE client validates each event's data
  // (here against the document's schema) and would send the POST again if it could not.
  const names: Array<string | undefined> = []
  const events: Array<TurnStreamEventData> = []
  const streamErrors: Array<string> = []
  const { stream } = await streamTurn({
    client,
    path: { id },
    body: { prompt: "chunks 3" },
    responseValidator: async (data) => validate(data),
    onSseEvent: (event) => names.push(event.event),
    onSseError: (error) => streamErrors.push(String(error)),
    sseMaxRetryAttempts: 3
  })
  for await (const data of stream) events.push(data)
  const done = events.at(-1) as TurnDone

  const state = await getSession({ client, path: { id } })
  const list = await listSessions({ client, query: { status: "open", limit: 10 } })
  const badLimit = await listSessions({ client, query: { limit: 0 } })

  const notFound = await getSession({ client: connect(baseUrl, tokens.other), path: { id } })
  const unauthorized = await listSessions({ client: connect(baseUrl, tokens.wrong) })
  const noToken = await listSessions({ client: createClient(createConfig({ baseUrl })) })

  const closed = await closeSession({ client, path: { id } })
  const closedAgain = await closeSession({ client, path: { id } })

  // A stream refused before it starts: the generated client reports the status only; the reply
  // itself is the documented JSON error, as a fetch wrapper shows.
  const refused: Array<{ status: number; body: unknown }> = []
  const refusedErrors: Array<string> = []
  const closedStream = await streamTurn({
    client,
    path: { id },
    body: { prompt: "too late" },
    sseMaxRetryAttempts: 1,
    onSseError: (error) => refusedErrors.push(String(error)),
    fetch: async (request: RequestInfo | URL, init?: RequestInit) => {
      const response = await fetch(request, init)
      refused.push({ status: response.status, body: await response.clone().json() })
      return response
    }
  })
  for await (const _ of closedStream.stream) refusedErrors.push("an event after a refusal")

  return {
    health: health.data,
    created: created.data,
    turn: { status: turn.response?.status, data: turn.data },
    stream: { names, events, done, errors: streamErrors },
    state: state.data,
    list: list.data,
    badLimit: { status: badLimit.response?.status, error: badLimit.error },
    notFound: { status: notFound.response?.status, error: notFound.error },
    unauthorized: {
      status: unauthorized.response?.status,
      error: unauthorized.error,
      challenge: unauthorized.response?.headers.get("www-authenticate")
    },
    noToken: { status: noToken.response?.status, challenge: noToken.response?.headers.get("www-authenticate") },
    closed: [closed.data, closedAgain.data],
    refused: { responses: refused, errors: refusedErrors }
  }
}
`

const tsconfig = {
  compilerOptions: {
    strict: true,
    target: "ES2022",
    module: "NodeNext",
    moduleResolution: "NodeNext",
    lib: ["ES2022", "DOM", "DOM.Iterable"],
    types: [],
    rootDir: ".",
    outDir: "js",
    skipLibCheck: false,
    noUnusedLocals: false
  },
  include: ["**/*.ts"],
  exclude: ["js"]
}

const Ajv2020 = ((Ajv2020Module as any).default ?? Ajv2020Module) as typeof Ajv2020Module.default

/** Checks a streamed event's data against the document's `TurnStreamEventData`, as a validator would. */
const validatorFrom = (spec: Record<string, any>) => {
  const ajv = new Ajv2020({ strict: false, allErrors: true })
  ajv.addSchema(spec, "openapi.json")
  const check = ajv.compile({ $ref: "openapi.json#/components/schemas/TurnStreamEventData" })
  return (data: unknown) => {
    if (!check(data)) throw new Error(`invalid event data: ${ajv.errorsText(check.errors)}`)
  }
}

describe("a client generated by @hey-api/openapi-ts from /openapi.json", () => {
  const log = agentLogFile()

  it.scopedLive("generates without a warning, type-checks in strict mode, and runs the API", () =>
    Effect.gen(function*() {
      const baseUrl = yield* HttpServer.addressFormattedWith(Effect.succeed)
      const dir = tempDir("clawdforge-hey-api-")

      const generated = yield* Effect.promise(() => generate(`${baseUrl}/openapi.json`, dir))
      expect(generated).toEqual({ code: 0, stdout: expect.stringContaining("✓"), stderr: "" })
      expect(generated.stdout).not.toMatch(/warn|error|🚨|❗/i)

      writeFileSync(join(dir, "program.ts"), program)
      writeFileSync(join(dir, "tsconfig.json"), JSON.stringify(tsconfig, null, 2))
      writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }))
      const compiled = yield* Effect.promise(() =>
        node([join(root, "node_modules/typescript/bin/tsc"), "-p", join(dir, "tsconfig.json")])
      )
      expect(compiled).toEqual({ code: 0, stdout: "", stderr: "" })

      const spec = yield* Effect.promise(() => fetch(`${baseUrl}/openapi.json`).then((r) => r.json()))
      const { scenario } = yield* Effect.promise(() => import(pathToFileURL(join(dir, "js/program.js")).href))
      const seen = yield* Effect.promise(() =>
        scenario(baseUrl, { app: appToken, other: otherToken, wrong: "not-a-token" }, validatorFrom(spec))
      ) as Effect.Effect<any>

      expect(seen.health).toEqual({ ok: true })
      expect(seen.created).toMatchObject({ ok: true, agent: "scripted", status: "open", meta: { via: "hey-api" } })
      const id = seen.created.session_id
      expect(seen.turn.status).toBe(200)
      expect(seen.turn.data).toMatchObject({ ok: true, session_id: id, turn_index: 1, stop_reason: "end_turn" })
      expect(agentText(seen.turn.data.events)).toBe("echo: hello")

      // The stream: acp per message, then done; every data valid, no error, no retry.
      expect(seen.stream.errors).toEqual([])
      expect(seen.stream.names.at(-1)).toBe("done")
      expect(seen.stream.names.slice(0, -1).every((name: string) => name === "acp")).toBe(true)
      expect(seen.stream.events).toHaveLength(seen.stream.names.length)
      expect(agentText(seen.stream.events.slice(0, -1))).toBe("chunk 1chunk 2chunk 3")
      expect(seen.stream.done).toEqual({
        ok: true,
        session_id: id,
        turn_index: 2,
        stop_reason: "end_turn",
        usage: { input_tokens: 8, output_tokens: 21, total_tokens: 29, cost_usd: null },
        // The turn wrote no file.
        changes: []
      })
      // Each turn ran once: two prompts reached the agent (none for the refused stream), two
      // turns were counted.
      expect(readAgentLog(log).filter((line) => line.event === "session/prompt")).toHaveLength(2)
      expect(seen.state).toMatchObject({ turn_count: 2, status: "open" })

      expect(seen.list).toMatchObject({ ok: true, count: 1 })
      expect(seen.list.sessions.map((session: any) => session.session_id)).toEqual([id])
      expect(seen.badLimit).toEqual({
        status: 400,
        error: {
          _tag: "BadRequest",
          ok: false,
          error: "bad_request",
          message: `Invalid request: limit: Expected an integer from 1 to 1000, actual "0"`
        }
      })

      expect(seen.notFound).toMatchObject({ status: 404, error: { ok: false, error: "session_not_found" } })
      expect(seen.unauthorized).toEqual({
        status: 401,
        error: { _tag: "Unauthorized", ok: false, error: "unauthorized", message: expect.any(String) },
        challenge: `Bearer realm="clawdforge", error="invalid_token"`
      })
      expect(seen.noToken).toEqual({ status: 401, challenge: `Bearer realm="clawdforge"` })

      expect(seen.closed).toEqual([{ ok: true }, { ok: true, already_closed: true }])
      expect(seen.refused.responses).toEqual([
        { status: 410, body: expect.objectContaining({ ok: false, error: "session_closed", _tag: "SessionClosed" }) }
      ])
      expect(seen.refused.errors).toEqual([expect.stringContaining("410")])
    }).pipe(Effect.provide(layerScriptedGateway(log))))
})
