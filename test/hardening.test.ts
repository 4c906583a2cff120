/**
 * Issue 23, authentication and request hardening: `/metrics` behind its own token, query values
 * out of the request log, duplicate or shared app tokens refused at start-up, failed
 * authentication throttled per client address, a body timeout (408), unknown body fields a 400
 * that names them, and a refused start that prints its one line and nothing else.
 *
 * Gateways here are the production HTTP server (`HttpLive`) on loopback over a fake agent pool,
 * each with the configuration its test names; start-up refusals run the compiled gateway.
 */
import { Effect, Exit, Layer, Logger, LogLevel, ManagedRuntime } from "effect"
import { connect } from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import { layerServices } from "../src/Gateway.js"
import { HttpLive } from "../src/http/Server.js"
import { ClaudeRunner } from "../src/services/agents/ClaudeRunner.js"
import { AppConfig, describeConfigError } from "../src/services/config/AppConfig.js"
import { makeFakePool } from "./support/FakePool.js"
import { freePort } from "./support/freePort.js"
import { runGatewayToExit } from "./support/GatewayProcess.js"
import { appName, appToken, otherApp, otherToken, testConfig } from "./support/TestGateway.js"

const adminToken = "admin-token-0123456789abcdef"
const metricsToken = "metrics-token-0123456789abcdef"

interface Gateway {
  readonly port: number
  /** Every log line the gateway wrote, as JSON. */
  readonly lines: Array<string>
  readonly dispose: () => Promise<void>
}

const running: Array<Gateway> = []

afterEach(async () => {
  for (const gateway of running.splice(0)) await gateway.dispose()
})

/** A gateway on loopback with `config` over the test defaults, its info-level log kept in `lines`. */
const startGateway = async (config: Record<string, string> = {}): Promise<Gateway> => {
  const port = await freePort()
  const lines: Array<string> = []
  const capture = Logger.map(Logger.structuredLogger, (entry) => void lines.push(JSON.stringify(entry)))
  const runtime = ManagedRuntime.make(
    HttpLive.pipe(
      Layer.provideMerge(layerServices(makeFakePool().layer, ClaudeRunner.Default)),
      Layer.provide(Layer.setConfigProvider(testConfig({ CLAWDFORGE_PORT: String(port), ...config }))),
      Layer.provide(Logger.replace(Logger.defaultLogger, capture)),
      Layer.provide(Logger.minimumLogLevel(LogLevel.Info))
    )
  ) as ManagedRuntime.ManagedRuntime<unknown, unknown>
  await runtime.runPromise(Effect.void)
  const gateway = { port, lines, dispose: () => runtime.dispose() }
  running.push(gateway)
  return gateway
}

const call = async (
  gateway: Gateway,
  method: string,
  path: string,
  options: { readonly token?: string; readonly body?: unknown } = {}
) => {
  const response = await fetch(`http://127.0.0.1:${gateway.port}${path}`, {
    method,
    headers: {
      ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
      ...(options.body === undefined ? {} : { "content-type": "application/json" })
    },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) })
  })
  const text = await response.text()
  let body: any = text
  try {
    body = JSON.parse(text)
  } catch {
    // text/plain (metrics)
  }
  return { status: response.status, headers: response.headers, body }
}

describe("GET /metrics", () => {
  it("with neither CLAWDFORGE_METRICS_TOKEN nor the admin token set, an app token reads it as before", async () => {
    const gateway = await startGateway()
    expect((await call(gateway, "GET", "/metrics", { token: appToken })).status).toBe(200)
    expect((await call(gateway, "GET", "/metrics")).status).toBe(401)
  })

  it("with CLAWDFORGE_METRICS_TOKEN set, only it (or the admin token) reads it: an app token is 401", async () => {
    const gateway = await startGateway({ CLAWDFORGE_METRICS_TOKEN: metricsToken, CLAWDFORGE_ADMIN_TOKEN: adminToken })
    const scraped = await call(gateway, "GET", "/metrics", { token: metricsToken })
    expect(scraped.status).toBe(200)
    expect(scraped.body).toContain("clawdforge_pool_capacity")
    expect((await call(gateway, "GET", "/metrics", { token: adminToken })).status).toBe(200)
    for (const token of [appToken, otherToken, "not-a-token-at-all"]) {
      const refused = await call(gateway, "GET", "/metrics", { token })
      expect(refused.status).toBe(401)
      expect(refused.body).toMatchObject({ ok: false, error: "unauthorized" })
    }
    expect((await call(gateway, "GET", "/metrics")).status).toBe(401)
    // The metrics token is no app's: it opens nothing else.
    expect((await call(gateway, "GET", "/sessions", { token: metricsToken })).status).toBe(401)
    expect((await call(gateway, "GET", "/admin/apps", { token: metricsToken })).status).toBe(401)
  })

  it("with only the admin token set, the admin token reads it and an app token is 401", async () => {
    const gateway = await startGateway({ CLAWDFORGE_ADMIN_TOKEN: adminToken })
    expect((await call(gateway, "GET", "/metrics", { token: adminToken })).status).toBe(200)
    expect((await call(gateway, "GET", "/metrics", { token: appToken })).status).toBe(401)
  })
})

describe("the request log", () => {
  it("keeps the names of a query's parameters and never their values", async () => {
    const gateway = await startGateway({ CLAWDFORGE_ADMIN_TOKEN: adminToken })
    const listed = await call(gateway, "GET", `/admin/apps?token=${adminToken}&app=${appToken}`, { token: adminToken })
    expect(listed.status).toBe(200)
    await call(gateway, "GET", `/sessions?status=open&secret=${otherToken}`, { token: appToken })
    const urls = gateway.lines.flatMap((line) => {
      const url = JSON.parse(line).annotations?.["http.url"]
      return typeof url === "string" ? [url] : []
    })
    expect(urls).toContain("/admin/apps?token=&app=")
    expect(urls).toContain("/sessions?status=&secret=")
    const all = gateway.lines.join("\n")
    expect(all).not.toContain(adminToken)
    expect(all).not.toContain(appToken)
    expect(all).not.toContain(otherToken)
  })
})

/** What reading AppConfig from `env` (over the test defaults) fails with, as the one start-up line. */
const configRefusal = async (env: Record<string, string>) => {
  const exit = await Effect.runPromiseExit(
    AppConfig.pipe(Effect.provide(AppConfig.Default), Effect.withConfigProvider(testConfig(env)))
  )
  if (Exit.isSuccess(exit)) return undefined
  const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
  return failure === undefined ? String(exit.cause) : describeConfigError(failure as any)
}

describe("app tokens at start-up", () => {
  it("the same token for two apps stops start-up with one line that names the apps, never the token", async () => {
    const line = await configRefusal({ CLAWDFORGE_APP_TOKENS: `a=${appToken},b=${otherToken},c=${appToken}` })
    expect(line).toBeDefined()
    expect(line).toContain("CLAWDFORGE_APP_TOKENS")
    expect(line).toMatch(/\ba\b.*\bc\b/)
    expect(line).not.toContain(appToken)
    expect(line).not.toContain("\n")
  })

  it("an app token equal to the admin token stops start-up with one line", async () => {
    const line = await configRefusal({ CLAWDFORGE_ADMIN_TOKEN: otherToken })
    expect(line).toBeDefined()
    expect(line).toContain("CLAWDFORGE_APP_TOKENS")
    expect(line).toContain("CLAWDFORGE_ADMIN_TOKEN")
    expect(line).toContain(otherApp)
    expect(line).not.toContain(otherToken)
  })

  it("app tokens under 16 characters are warned about once, in one line naming the apps and not the tokens", async () => {
    const gateway = await startGateway({ CLAWDFORGE_APP_TOKENS: `short-a=tiny1,short-b=tiny22,${appName}=${appToken}` })
    const warnings = gateway.lines.filter((line) => line.includes("16 characters"))
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toContain("short-a")
    expect(warnings[0]).toContain("short-b")
    expect(warnings[0]).not.toContain(appName)
    expect(warnings[0]).not.toContain("tiny1")
    expect(warnings[0]).not.toContain("tiny22")
    // They still work: the warning is no refusal.
    expect((await call(gateway, "GET", "/sessions", { token: "tiny1" })).status).toBe(200)
  })
})

describe("a refused start", () => {
  it("duplicate app tokens: exit 1, one line on stderr, nothing on stdout", async () => {
    const { code, stdout, stderr } = await runGatewayToExit({
      CLAWDFORGE_PORT: String(await freePort()),
      CLAWDFORGE_APP_TOKENS: `a=${appToken},b=${appToken}`,
      CLAWDFORGE_SANDBOX: "off"
    })
    expect(code).toBe(1)
    expect(stderr.split("\n").filter((l) => l.trim().length > 0), stderr).toHaveLength(1)
    expect(stderr).toContain("CLAWDFORGE_APP_TOKENS")
    expect(stderr).not.toContain(appToken)
    expect(stdout).toBe("")
  })
})

describe("failed authentication", () => {
  it("past 20 wrong tokens from one address in a minute: 429 too_many_auth_failures with Retry-After; a valid token still passes", async () => {
    const gateway = await startGateway({ CLAWDFORGE_ADMIN_TOKEN: adminToken })
    for (let i = 0; i < 20; i++) {
      expect((await call(gateway, "GET", "/sessions", { token: `wrong-token-${i}` })).status).toBe(401)
    }
    const throttled = await call(gateway, "GET", "/sessions", { token: "wrong-token-20" })
    expect(throttled.status).toBe(429)
    expect(throttled.body).toMatchObject({ ok: false, error: "too_many_auth_failures" })
    expect(typeof throttled.body.message).toBe("string")
    const retryAfter = Number(throttled.headers.get("retry-after"))
    expect(retryAfter).toBeGreaterThan(0)
    expect(retryAfter).toBeLessThanOrEqual(60)
    // Every guarded route: the admin API and /metrics too.
    expect((await call(gateway, "GET", "/admin/apps", { token: "wrong-admin" })).status).toBe(429)
    expect((await call(gateway, "GET", "/metrics", { token: "wrong-metrics" })).status).toBe(429)
    // Another tenant behind the same address is not locked out, nor is the operator.
    expect((await call(gateway, "GET", "/sessions", { token: appToken })).status).toBe(200)
    expect((await call(gateway, "GET", "/sessions", { token: otherToken })).status).toBe(200)
    expect((await call(gateway, "GET", "/admin/apps", { token: adminToken })).status).toBe(200)
    expect((await call(gateway, "GET", "/metrics", { token: adminToken })).status).toBe(200)
    // A request without any token is no guess: still the plain 401.
    expect((await call(gateway, "GET", "/sessions")).status).toBe(401)
  })
})

/**
 * A raw client: sends `head`, then the body one byte every `everyMs` (never finishing it), and
 * collects what the server sends until the connection closes or `timeoutMs` passes.
 */
const tricklingUpload = (port: number, head: string, everyMs: number, timeoutMs: number) =>
  new Promise<{ readonly text: string; readonly closedAfterMs: number | undefined }>((done) => {
    const started = Date.now()
    const socket = connect({ port, host: "127.0.0.1" })
    const chunks: Array<Buffer> = []
    let closedAfterMs: number | undefined
    const trickle = setInterval(() => {
      if (!socket.destroyed) socket.write("x")
    }, everyMs)
    const timer = setTimeout(() => socket.destroy(), timeoutMs)
    socket.on("data", (chunk: Buffer) => chunks.push(chunk))
    socket.on("error", () => {})
    socket.on("close", () => {
      clearInterval(trickle)
      clearTimeout(timer)
      if (Date.now() - started < timeoutMs) closedAfterMs = Date.now() - started
      done({ text: Buffer.concat(chunks).toString("utf8"), closedAfterMs })
    })
    socket.write(head)
  })

describe("the body timeout", () => {
  it("a body that does not arrive within CLAWDFORGE_BODY_TIMEOUT_SECS is a 408 and its connection closes", async () => {
    const gateway = await startGateway({ CLAWDFORGE_BODY_TIMEOUT_SECS: "1" })
    const head = `POST /sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${appToken}\r\n` +
      `Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{`
    const { text, closedAfterMs } = await tricklingUpload(gateway.port, head, 300, 6_000)
    expect(closedAfterMs, text).toBeDefined()
    expect(closedAfterMs!).toBeLessThan(4_000)
    expect(text).toMatch(/^HTTP\/1\.1 408 /)
    const body = JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4))
    expect(body).toMatchObject({ ok: false, error: "request_timeout" })
    expect(body.message).toContain("1 s")
    // The gateway goes on.
    expect((await call(gateway, "GET", "/sessions", { token: appToken })).status).toBe(200)
  })
})

describe("unknown body fields", () => {
  it("are a 400 naming the field, on every request body of the API and the admin API", async () => {
    const gateway = await startGateway({ CLAWDFORGE_ADMIN_TOKEN: adminToken })
    const created = await call(gateway, "POST", "/sessions", { token: appToken, body: { agent: "echo" } })
    expect(created.status, JSON.stringify(created.body)).toBe(200)
    const id = created.body.session_id as string
    const cases: ReadonlyArray<readonly [string, string, string, Record<string, unknown>]> = [
      [appToken, "POST", "/sessions", { agent: "echo", modle: "large" }],
      [appToken, "PATCH", `/sessions/${id}`, { modle: "large" }],
      [appToken, "POST", "/run", { prompt: "hi", modle: "large" }],
      [appToken, "POST", `/sessions/${id}/turn`, { prompt: "hi", file: ["a"] }],
      [appToken, "POST", `/sessions/${id}/turns`, { prompt: "hi", file: ["a"] }],
      [appToken, "POST", `/sessions/${id}/turn/stream`, { prompt: "hi", file: ["a"] }],
      [appToken, "POST", `/sessions/${id}/permissions/req_x`, { option_id: "allow", optoin: "x" }],
      [adminToken, "POST", "/admin/apps", { name: "new-app", tokn: "x" }],
      [adminToken, "PUT", `/admin/apps/${appName}/limits`, { max_sesions: 1 }],
      [adminToken, "POST", `/admin/sessions/${id}/permissions/req_x`, { option_id: "allow", optoin: "x" }]
    ]
    const wrong: Array<string> = []
    for (const [token, method, path, body] of cases) {
      const extra = Object.keys(body).at(-1)!
      const answer = await call(gateway, method, path, { token, body })
      if (answer.status !== 400 || answer.body?.ok !== false || !String(answer.body?.message).includes(`unknown field "${extra}"`)) {
        wrong.push(`${method} ${path}: ${answer.status} ${JSON.stringify(answer.body).slice(0, 200)}`)
      }
    }
    expect(wrong).toEqual([])
    // Nothing was made or changed by them: one session, no turn, no new app.
    const state = await call(gateway, "GET", `/sessions/${id}`, { token: appToken })
    expect(state.body).toMatchObject({ turn_count: 0 })
    expect((await call(gateway, "GET", "/sessions", { token: appToken })).body.count).toBe(1)
    const apps = await call(gateway, "GET", "/admin/apps", { token: adminToken })
    expect(apps.body.apps.map((a: { name: string }) => a.name)).not.toContain("new-app")
  })
})

