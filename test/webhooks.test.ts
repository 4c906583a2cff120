/**
 * Signed webhooks against the compiled gateway (a real process, the echo agent) and receivers on
 * loopback (node:http); the admin CLI (`bin/clawdforge.mjs`) sets them on the gateway's ledger.
 */
import { describe, expect, it } from "vitest"
import { api, dataDir, freePort, runGatewayToExit, startGateway } from "./support/GatewayProcess.js"
import { ledgerIn, queryLedger as query } from "./support/Ledgers.js"
import { until } from "./support/Poll.js"
import { perEndpointConcurrency } from "../src/services/tenancy/WebhookDelivery.js"
import { appName } from "./support/TestGateway.js"
import { clawdforge, events, loopbackReceivers, type Received, receiver, verify } from "./support/WebhookReceiver.js"

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe("webhooks", () => {
  it("set on a running gateway; fails twice (500), retried ~1 s then ~2 s later; the third is signed and delivered once; DELETE sends session.closed", async () => {
    const data = dataDir()
    const db = await ledgerIn(data)
    const hook = await receiver((n) => n <= 2 ? 500 : 200)
    const gateway = await startGateway(loopbackReceivers, data)
    try {
      const set = await clawdforge(db, ["apps", "webhook", "set", appName, hook.url], loopbackReceivers)
      expect(set.code, set.stderr).toBe(0)
      const secret = set.stdout.trim()
      expect(secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/)
      // The gateway's copy of the webhooks is at most 2 s old: the change reaches it within 5 s.
      await sleep(2_500)
      const id: string = (await api(gateway, "POST", "/sessions", { agent: "echo" })).body.session_id
      const turn = await api(gateway, "POST", `/sessions/${id}/turn`, { prompt: "hello" })
      expect(turn.status, JSON.stringify(turn.body)).toBe(200)

      await until("three deliveries", () => hook.received.length >= 3)
      const [first, second, third] = hook.received as [Received, Received, Received]
      for (const delivery of [first, second, third]) {
        expect(delivery.headers["clawdforge-event"]).toBe("turn.completed")
        expect(delivery.headers["content-type"]).toContain("application/json")
        expect(verify(secret, delivery)).toBe(true)
      }
      expect(third.body).toBe(first.body)
      expect(JSON.parse(third.body)).toMatchObject({
        event: "turn.completed",
        app: appName,
        session_id: id,
        turn_index: 1,
        status: "completed"
      })
      expect(Math.abs(Number(third.headers["clawdforge-timestamp"]) - Date.now() / 1000)).toBeLessThan(10)
      const gaps = [second.at - first.at, third.at - second.at]
      expect(gaps[0]).toBeGreaterThan(700)
      expect(gaps[0]).toBeLessThan(2_500)
      expect(gaps[1]).toBeGreaterThan(1_500)
      expect(gaps[1]).toBeLessThan(4_000)
      // A tampered body does not verify.
      expect(verify(secret, { ...third, body: third.body.replace("hello", "x") + " " })).toBe(false)

      expect((await api(gateway, "DELETE", `/sessions/${id}`)).status).toBe(200)
      await until("session.closed", () => events(hook.received, "session.closed").length === 1)
      const closed = events(hook.received, "session.closed")[0]!
      expect(verify(secret, closed)).toBe(true)
      expect(JSON.parse(closed.body)).toMatchObject({ event: "session.closed", app: appName, session_id: id })

      // Delivered is never sent again.
      await sleep(4_500)
      expect(events(hook.received, "turn.completed")).toHaveLength(3)
      const attempts = await query(db, `SELECT d.event, a.attempt, a.status FROM webhook_attempts a
        JOIN webhook_deliveries d USING (delivery_id) ORDER BY d.delivery_id, a.attempt`)
      expect(attempts).toEqual([
        { event: "turn.completed", attempt: 1, status: 500 },
        { event: "turn.completed", attempt: 2, status: 500 },
        { event: "turn.completed", attempt: 3, status: 200 },
        { event: "session.closed", attempt: 1, status: 200 }
      ])
      expect(await query(db, "SELECT count(*) AS n FROM webhook_deliveries WHERE delivered_at IS NULL")).toEqual([{ n: 0 }])
      // The secret is in no reply, log line or audit event.
      const audit = await query(db, "SELECT * FROM session_events")
      expect(JSON.stringify(audit) + gateway.output()).not.toContain(secret)
    } finally {
      expect(await gateway.stop()).toBe(0)
      await hook.close()
    }
  }, 40_000)

  it("with CLAWDFORGE_SECRET_KEY the signing secret is sealed in the ledger, deliveries are signed with it, and a gateway without the key does not start", async () => {
    const data = dataDir()
    const db = await ledgerIn(data)
    const key = { CLAWDFORGE_SECRET_KEY: "webhook-test-secret-key-0123456789" }
    const hook = await receiver(() => 200)
    const set = await clawdforge(db, ["apps", "webhook", "set", appName, hook.url], { ...key, ...loopbackReceivers })
    expect(set.code, set.stderr).toBe(0)
    const secret = set.stdout.trim()
    const stored = await query(db, "SELECT secret FROM app_webhooks")
    expect(stored).toHaveLength(1)
    expect(stored[0]!.secret).toMatch(/^v1:/)
    expect(stored[0]!.secret).not.toContain(secret.slice("whsec_".length))
    const gateway = await startGateway({ ...key, ...loopbackReceivers }, data)
    try {
      const id: string = (await api(gateway, "POST", "/sessions", { agent: "echo" })).body.session_id
      expect((await api(gateway, "POST", `/sessions/${id}/turn`, { prompt: "hello" })).status).toBe(200)
      await until("the delivery", () => hook.received.length >= 1)
      expect(verify(secret, hook.received[0]!)).toBe(true)
    } finally {
      await gateway.stop()
      await hook.close()
    }
    const refused = await runGatewayToExit({ CLAWDFORGE_DB: db, CLAWDFORGE_PORT: String(await freePort()) })
    expect(refused.code).toBe(1)
    const lines = refused.stderr.split("\n").filter((l) => l.trim().length > 0)
    expect(lines, refused.stderr).toHaveLength(1)
    expect(lines[0]).toContain("CLAWDFORGE_SECRET_KEY")
    expect(lines[0]).toContain(appName)
    expect(refused.stderr + refused.stdout).not.toContain(secret)
  }, 40_000)

  it("a receiver that never answers does not slow turns: 20 turns each well under 1 s", async () => {
    const data = dataDir()
    const db = await ledgerIn(data)
    const hook = await receiver(() => undefined)
    expect((await clawdforge(db, ["apps", "webhook", "set", appName, hook.url], loopbackReceivers)).code).toBe(0)
    const gateway = await startGateway(loopbackReceivers, data)
    try {
      const id: string = (await api(gateway, "POST", "/sessions", { agent: "echo" })).body.session_id
      const latencies: Array<number> = []
      for (let i = 0; i < 20; i++) {
        const started = performance.now()
        const turn = await api(gateway, "POST", `/sessions/${id}/turn`, { prompt: `turn ${i}` })
        latencies.push(performance.now() - started)
        expect(turn.status).toBe(200)
      }
      // As many as one endpoint has in flight at once.
      await until("deliveries hanging", () => hook.received.length >= perEndpointConcurrency)
      expect(Math.max(...latencies)).toBeLessThan(500)
      // Every turn's event is enqueued, none delivered.
      expect(await query(db, `SELECT count(*) AS n FROM webhook_deliveries
        WHERE event = 'turn.completed' AND delivered_at IS NULL`)).toEqual([{ n: 20 }])
      const stopped = Date.now()
      expect(await gateway.stop()).toBe(0)
      // Hanging deliveries do not hold up a graceful stop.
      expect(Date.now() - stopped).toBeLessThan(8_000)
    } finally {
      await gateway.stop()
      await hook.close()
    }
  }, 40_000)

  it("a delivery pending when the gateway stops is sent once after it starts again", async () => {
    const data = dataDir()
    const db = await ledgerIn(data)
    const port = await freePort()
    // Nothing listens yet: the first tries find no receiver.
    const set = await clawdforge(db, ["apps", "webhook", "set", appName, `http://127.0.0.1:${port}/hook`], loopbackReceivers)
    expect(set.code, set.stderr).toBe(0)
    const secret = set.stdout.trim()
    let gateway = await startGateway(loopbackReceivers, data)
    let hook: Awaited<ReturnType<typeof receiver>> | undefined
    try {
      const id: string = (await api(gateway, "POST", "/sessions", { agent: "echo" })).body.session_id
      expect((await api(gateway, "POST", `/sessions/${id}/turn`, { prompt: "hello" })).status).toBe(200)
      await until("a failed try", async () =>
        (await query(db, "SELECT count(*) AS n FROM webhook_attempts"))[0]!.n >= 1)
      expect(await gateway.stop()).toBe(0)
      expect(await query(db, "SELECT count(*) AS n FROM webhook_deliveries WHERE delivered_at IS NULL")).toEqual([{ n: 1 }])

      hook = await receiver(() => 204, port)
      gateway = await startGateway(loopbackReceivers, data)
      await until("the delivery after the restart", () => hook!.received.length >= 1)
      const delivery = hook.received[0]!
      expect(verify(secret, delivery)).toBe(true)
      expect(JSON.parse(delivery.body)).toMatchObject({ event: "turn.completed", session_id: id, turn_index: 1 })
      await sleep(1_500)
      expect(hook.received).toHaveLength(1)
      expect(await query(db, "SELECT count(*) AS n FROM webhook_deliveries WHERE delivered_at IS NULL")).toEqual([{ n: 0 }])
    } finally {
      await gateway.stop()
      await hook?.close()
    }
  }, 40_000)

  it("the sweeper's soft close of an idle session sends session.closed; its hard delete forgets the delivery", async () => {
    const data = dataDir()
    const db = await ledgerIn(data)
    const hook = await receiver(() => 200)
    const set = await clawdforge(db, ["apps", "webhook", "set", appName, hook.url], loopbackReceivers)
    expect(set.code, set.stderr).toBe(0)
    const secret = set.stdout.trim()
    const gateway = await startGateway({
      ...loopbackReceivers,
      CLAWDFORGE_SESSION_TTL_SECS: "1",
      CLAWDFORGE_SESSION_HARD_TTL_SECS: "2",
      CLAWDFORGE_SWEEP_INTERVAL_SECS: "1"
    }, data)
    try {
      const id: string = (await api(gateway, "POST", "/sessions", { agent: "echo" })).body.session_id
      await until("session.closed", () => events(hook.received, "session.closed").length >= 1)
      const closed = events(hook.received, "session.closed")
      expect(closed).toHaveLength(1)
      expect(verify(secret, closed[0]!)).toBe(true)
      expect(JSON.parse(closed[0]!.body)).toMatchObject({ event: "session.closed", app: appName, session_id: id })
      expect((await api(gateway, "POST", `/sessions/${id}/turn`, { prompt: "late" })).status).toBe(410)
      // Past the hard TTL the session is deleted, and the delivery that ended that long ago with it.
      const count = async (table: string) => (await query(db, `SELECT count(*) AS n FROM ${table}`))[0]!.n
      await until("the delivery purged", async () => await count("webhook_deliveries") === 0, 10_000)
      expect(await count("webhook_attempts")).toBe(0)
      expect((await api(gateway, "GET", `/sessions/${id}`)).status).toBe(404)
    } finally {
      await gateway.stop()
      await hook.close()
    }
  }, 30_000)

  it("a failed turn sends turn.failed; `clawdforge sessions close` sends session.closed through a running gateway", async () => {
    const data = dataDir()
    const db = await ledgerIn(data)
    const hook = await receiver(() => 200)
    const set = await clawdforge(db, ["apps", "webhook", "set", appName, hook.url], loopbackReceivers)
    expect(set.code, set.stderr).toBe(0)
    const secret = set.stdout.trim()
    const gateway = await startGateway(loopbackReceivers, data)
    try {
      const id: string = (await api(gateway, "POST", "/sessions", { agent: "echo" })).body.session_id
      const failed = await api(gateway, "POST", `/sessions/${id}/turn`, { prompt: "fail" })
      expect(failed.status).toBeGreaterThanOrEqual(400)
      await until("turn.failed", () => events(hook.received, "turn.failed").length >= 1)
      const event = events(hook.received, "turn.failed")[0]!
      expect(verify(secret, event)).toBe(true)
      expect(JSON.parse(event.body)).toMatchObject({ event: "turn.failed", session_id: id, turn_index: 1, status: "failed" })

      const closedAt = Date.now()
      const closed = await clawdforge(db, ["sessions", "close", id])
      expect(closed.code, closed.stderr).toBe(0)
      await until("session.closed", () => events(hook.received, "session.closed").length >= 1, 10_000)
      expect(Date.now() - closedAt).toBeLessThan(8_000)
      expect(JSON.parse(events(hook.received, "session.closed")[0]!.body)).toMatchObject({ session_id: id, app: appName })
    } finally {
      await gateway.stop()
      await hook.close()
    }
  }, 30_000)

  it("CLI: set prints the secret once, show never does, a non-http URL is refused and changes nothing, remove", async () => {
    const db = await ledgerIn(dataDir())
    const added = await clawdforge(db, ["apps", "add", "ledger-app"])
    expect(added.code, added.stderr).toBe(0)

    // An app from CLAWDFORGE_APP_TOKENS and one from the ledger.
    const set = await clawdforge(db, ["apps", "webhook", "set", appName, "https://example.test/hooks"])
    expect(set.code, set.stderr).toBe(0)
    const secret = set.stdout.trim()
    expect(secret).toMatch(/^whsec_/)
    expect(set.stderr).not.toContain(secret)
    const ledgerSet = await clawdforge(db, ["apps", "webhook", "set", "ledger-app", "http://127.0.0.1:9/x"], loopbackReceivers)
    expect(ledgerSet.code, ledgerSet.stderr).toBe(0)

    for (const url of ["ftp://example.test/hooks", "not a url", "javascript:alert(1)"]) {
      const refused = await clawdforge(db, ["apps", "webhook", "set", appName, url])
      expect(refused.code).toBe(1)
      expect(refused.stdout).toBe("")
      expect(refused.stderr.trim().split("\n")).toHaveLength(1)
      expect(refused.stderr).toContain("http")
    }
    const unknown = await clawdforge(db, ["apps", "webhook", "set", "no-such-app", "https://example.test/"])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr.trim().split("\n")).toHaveLength(1)

    const shown = await clawdforge(db, ["apps", "webhook", "show", appName])
    expect(shown.code, shown.stderr).toBe(0)
    expect(shown.stdout).toContain("https://example.test/hooks")
    expect(shown.stdout + shown.stderr).not.toContain(secret)
    const json = await clawdforge(db, ["apps", "webhook", "show", appName, "--json"])
    expect(JSON.parse(json.stdout)).toMatchObject({ app: appName, url: "https://example.test/hooks" })
    expect(json.stdout).not.toContain(secret)
    expect((await clawdforge(db, ["apps", "webhook", "show", "ledger-app"])).stdout).toContain("http://127.0.0.1:9/x")

    const removed = await clawdforge(db, ["apps", "webhook", "remove", appName])
    expect(removed.code, removed.stderr).toBe(0)
    expect(removed.stdout).toContain(`Removed the webhook of app ${appName}`)
    const gone = await clawdforge(db, ["apps", "webhook", "show", appName])
    expect(gone.code).toBe(0)
    expect(gone.stdout).toContain(`App ${appName} has no webhook`)
    expect((await clawdforge(db, ["apps", "webhook", "remove", appName])).stdout).toContain("had no webhook")
    // A revoked ledger app is not configured any more.
    expect((await clawdforge(db, ["apps", "revoke", "ledger-app"])).code).toBe(0)
    expect((await clawdforge(db, ["apps", "webhook", "show", "ledger-app"])).code).toBe(1)
  }, 60_000)
})
