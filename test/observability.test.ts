/** Metrics, request ids in structured logs, and OpenTelemetry export. */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { it as vit } from "vitest"
import { Effect } from "effect"
import { createServer } from "node:http"
import { makeFakePool } from "./support/FakePool.js"
import { api, startGateway } from "./support/GatewayProcess.js"
import { appToken, layerTestGateway, request } from "./support/TestGateway.js"

/** The value of one Prometheus sample line, or undefined. */
const sample = (text: string, series: string) => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

describe("GET /metrics", () => {
  const metricsText = Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.execute(HttpClientRequest.get("/metrics").pipe(HttpClientRequest.bearerToken(appToken)))
    expect(response.status).toBe(200)
    expect(response.headers["content-type"]).toContain("text/plain")
    return yield* response.text
  }).pipe(Effect.scoped)

  it.scopedLive("serves the Prometheus text format with the gateway's metrics", () =>
    Effect.gen(function*() {
      const sid = (yield* request("POST", "/sessions", { token: appToken, body: { agent: "claude" } })).body.session_id
      const before = sample(yield* metricsText, "clawdforge_turns_total{app=\"app-a\",outcome=\"ok\"}") ?? 0
      yield* request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt: "one" } })
      yield* request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt: "two" } })
      const text = yield* metricsText
      expect(text).toContain("# TYPE clawdforge_turns_total counter")
      expect(text).toContain("# TYPE clawdforge_turn_duration_seconds histogram")
      expect(sample(text, "clawdforge_pool_capacity")).toBe(3)
      expect(sample(text, "clawdforge_sessions_live")).toBe(1)
      expect(sample(text, "clawdforge_turns_total{app=\"app-a\",outcome=\"ok\"}")).toBe(before + 2)
      expect(sample(text, "clawdforge_turn_duration_seconds_count")).toBeGreaterThanOrEqual(2)
      expect(text).not.toContain("effect_fiber")
      expect((yield* request("GET", "/metrics").pipe(Effect.catchAll(() => Effect.succeed({ status: 401 })))).status)
        .toBe(401)
    }).pipe(Effect.provide(layerTestGateway({ pool: makeFakePool(3).layer, config: { CLAWDFORGE_MAX_LIVE_SESSIONS: "3" } }))))
})

describe("logs and traces of a running gateway", () => {
  vit("logs are JSON lines carrying the request id, which the response echoes; spans reach an OTLP collector", async () => {
    const spans: Array<string> = []
    const collector = createServer((req, res) => {
      let body = ""
      req.on("data", (chunk) => body += chunk)
      req.on("end", () => {
        if (req.url === "/v1/traces") {
          for (const match of body.matchAll(/"name":"([^"]+)"/g)) spans.push(match[1]!)
        }
        res.writeHead(200, { "content-type": "application/json" }).end("{}")
      })
    })
    await new Promise<void>((r) => collector.listen(0, "127.0.0.1", () => r()))
    const port = (collector.address() as { port: number }).port
    const gateway = await startGateway({
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_SERVICE_NAME: "clawdforge-test"
    })
    try {
      const response = await fetch(`${gateway.url}/sessions`, {
        method: "POST",
        headers: { authorization: `Bearer ${appToken}`, "x-request-id": "req-42" },
        body: JSON.stringify({ agent: "echo" })
      })
      expect(response.status).toBe(200)
      expect(response.headers.get("x-request-id")).toBe("req-42")
      const generated = await fetch(`${gateway.url}/healthz`)
      expect(generated.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/)
      const sid = ((await response.json()) as any).session_id
      expect((await api(gateway, "POST", `/sessions/${sid}/turn`, { prompt: "traced" })).status).toBe(200)
    } finally {
      // Stopping flushes the exporter.
      await gateway.stop()
      collector.close()
    }
    const lines = gateway.output().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
    expect(lines.length).toBeGreaterThan(0)
    const line = lines.find((l) => l.annotations?.request_id === "req-42")
    expect(line).toMatchObject({ message: "Sent HTTP response", logLevel: "INFO" })
    expect(line.annotations["http.url"]).toBe("/sessions")
    expect(spans).toEqual(expect.arrayContaining(["Sessions.create", "Sessions.turn", "AcpDriver.prompt"]))
  }, 60_000)
})
