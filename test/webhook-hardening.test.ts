/**
 * Webhooks hardened (issue 23): targets on the host's own networks, in any spelling or behind a name,
 * are refused when set (CLI and admin API) and again when sent (the name resolved once, checked, and
 * the connection made to that address); credentials are masked; each endpoint has its own queue.
 * No traffic leaves loopback: refused targets are refused before any connection, and the receivers
 * are loopback servers reached with CLAWDFORGE_WEBHOOK_ALLOW_PRIVATE on.
 */
import { readFileSync } from "node:fs"
import { Agent, request as httpRequest } from "node:http"
import { describe, expect, it } from "vitest"
import { isPublicAddress, publicOnlyLookup } from "../src/services/net/Addresses.js"
import { api, dataDir, startGateway } from "./support/GatewayProcess.js"
import { ledgerIn, queryLedger as query } from "./support/Ledgers.js"
import { until } from "./support/Poll.js"
import { appName, otherApp, otherToken } from "./support/TestGateway.js"
import { clawdforge, loopbackReceivers, receiver, verify } from "./support/WebhookReceiver.js"

const adminToken = "admin-token-webhooks-0123456789"

/** A name other than localhost that /etc/hosts maps to a loopback address, if it has one. */
const hostsName = (() => {
  try {
    for (const line of readFileSync("/etc/hosts", "utf8").split("\n")) {
      const [address, ...names] = line.replace(/#.*/, "").trim().split(/\s+/)
      if (address === undefined || !/^127\./.test(address)) continue
      const name = names.find((n) => !n.includes("localhost") && /^[a-z][a-z0-9.-]*$/i.test(n))
      if (name !== undefined) return name
    }
  } catch {
    // No /etc/hosts: the names that are loopback by definition are tested anyway.
  }
  return undefined
})()

const admin = async (gateway: { url: string }, method: string, path: string, body?: unknown) => {
  const response = await fetch(`${gateway.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  return { status: response.status, body: await response.json() as any }
}

/** Targets on the host's networks, in the spellings the issue found accepted, and URLs with credentials. */
const refusedUrls = [
  "http://169.254.169.254/latest/meta-data/",
  "10.0.0.1:5432",
  "http://10.0.0.1:5432/",
  "http://[::1]:8901/admin/apps",
  "http://0x7f.1/",
  "http://2130706433/",
  "http://[::ffff:127.0.0.1]/",
  "http://[::ffff:7f00:1]:8787/",
  "http://0177.0.0.1/",
  "http://100.64.0.1/",
  "http://192.168.1.10/",
  "http://172.16.0.1/",
  "http://0.0.0.0:8787/",
  "http://[::]/",
  "http://224.0.0.1/",
  "http://[fe80::1]/",
  "http://[fd00::1]/",
  "http://localhost:8787/admin/apps",
  // Names that resolve to loopback (and one from /etc/hosts, when it has one).
  "http://localhost./hook",
  "http://LocalHost:8787/",
  "http://api.localhost/",
  ...(hostsName === undefined ? [] : [`http://${hostsName}/hook`]),
  "https://user:pass@example.test/hooks",
  "https://user@93.184.216.34/hooks"
]

describe("webhook targets checked when set", () => {
  it("the CLI refuses each private, loopback, link-local, shared, unspecified or multicast target and credentials: exit 1, one line, nothing stored", async () => {
    const db = await ledgerIn(dataDir())
    const hook = await receiver(() => 200)
    // Every spelling is refused by the same check the admin API's test runs through; the CLI gets a few.
    const some = ["http://169.254.169.254/", "10.0.0.1:5432", "http://[::1]:8901/admin/apps", "https://user:pass@example.test/"]
    for (const url of [...some, `http://localhost:${hook.port}/hook`, `http://0x7f.1:${hook.port}/hook`]) {
      const refused = await clawdforge(db, ["apps", "webhook", "set", appName, url])
      expect(refused.code, `${url}: ${refused.stderr}`).toBe(1)
      expect(refused.stdout).toBe("")
      const lines = refused.stderr.trim().split("\n")
      expect(lines, url).toHaveLength(1)
      expect(lines[0]).toMatch(/^clawdforge: /)
      // Never echoes a password back.
      expect(refused.stderr).not.toContain("pass@")
    }
    expect(await query(db, "SELECT count(*) AS n FROM app_webhooks")).toEqual([{ n: 0 }])
    // Refused before any connection to it.
    expect(hook.connections()).toBe(0)
    await hook.close()

    // A public address or a name that does not resolve (yet) is set; no request is made.
    for (const url of ["https://93.184.216.34/hooks", "https://hooks.example.test/in"]) {
      const set = await clawdforge(db, ["apps", "webhook", "set", appName, url])
      expect(set.code, set.stderr).toBe(0)
    }
    // On-prem receivers: the operator allows private targets.
    for (const url of ["http://10.0.0.1:5432/", "http://user:pass@localhost:9/x"]) {
      const allowed = await clawdforge(db, ["apps", "webhook", "set", otherApp, url], loopbackReceivers)
      expect(allowed.code, allowed.stderr).toBe(0)
    }
  }, 60_000)

  it("show and set print a URL's credentials masked", async () => {
    const db = await ledgerIn(dataDir())
    const set = await clawdforge(db, ["apps", "webhook", "set", appName, "http://hookuser:s3cr3t-pw@127.0.0.1:9/x?q=1"], loopbackReceivers)
    expect(set.code, set.stderr).toBe(0)
    expect(set.stderr).not.toContain("s3cr3t-pw")
    expect(set.stderr).not.toContain("hookuser")
    const shown = await clawdforge(db, ["apps", "webhook", "show", appName])
    expect(shown.code, shown.stderr).toBe(0)
    expect(shown.stdout).toContain("127.0.0.1:9/x?q=1")
    expect(shown.stdout).toContain("***")
    expect(shown.stdout + shown.stderr).not.toContain("s3cr3t-pw")
    expect(shown.stdout + shown.stderr).not.toContain("hookuser")
    const json = await clawdforge(db, ["apps", "webhook", "show", appName, "--json"])
    expect(JSON.parse(json.stdout).url).toBe("http://***:***@127.0.0.1:9/x?q=1")
  }, 30_000)

  it("admin API: PUT /admin/apps/{name}/webhook refuses a private target (400 webhook_url_refused), sets a public one and shows its secret once; DELETE removes it", async () => {
    const data = dataDir()
    const db = await ledgerIn(data)
    const gateway = await startGateway({ CLAWDFORGE_ADMIN_TOKEN: adminToken }, data)
    try {
      for (const url of refusedUrls) {
        const refused = await admin(gateway, "PUT", `/admin/apps/${appName}/webhook`, { url })
        expect(refused.status, url).toBe(400)
        expect(refused.body, url).toMatchObject({ ok: false, error: "webhook_url_refused" })
        expect(typeof refused.body.message).toBe("string")
        expect(refused.body.message).not.toContain("pass@")
      }
      for (const url of ["ftp://example.test/", "not a url"]) {
        const refused = await admin(gateway, "PUT", `/admin/apps/${appName}/webhook`, { url })
        expect(refused.status, url).toBe(400)
        expect(refused.body, url).toMatchObject({ ok: false, error: "webhook_url_refused" })
      }
      expect((await admin(gateway, "PUT", `/admin/apps/${appName}/webhook`, {})).status).toBe(400)
      expect(await query(db, "SELECT count(*) AS n FROM app_webhooks")).toEqual([{ n: 0 }])

      const unknown = await admin(gateway, "PUT", "/admin/apps/no-such-app/webhook", { url: "https://93.184.216.34/" })
      expect(unknown.status).toBe(404)
      expect(unknown.body).toMatchObject({ ok: false, error: "app_not_found" })
      // An app token is no admin token.
      const asApp = await fetch(`${gateway.url}/admin/apps/${appName}/webhook`, {
        method: "PUT",
        headers: { authorization: `Bearer ${otherToken}`, "content-type": "application/json" },
        body: JSON.stringify({ url: "https://93.184.216.34/" })
      })
      expect(asApp.status).toBe(401)

      const set = await admin(gateway, "PUT", `/admin/apps/${appName}/webhook`, { url: "https://93.184.216.34/hooks" })
      expect(set.status, JSON.stringify(set.body)).toBe(200)
      expect(set.body).toMatchObject({ ok: true, app: appName, url: "https://93.184.216.34/hooks" })
      expect(set.body.secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/)
      const shown = await clawdforge(db, ["apps", "webhook", "show", appName, "--json"])
      expect(JSON.parse(shown.stdout)).toMatchObject({ app: appName, url: "https://93.184.216.34/hooks" })
      expect(shown.stdout).not.toContain(set.body.secret)

      const removed = await admin(gateway, "DELETE", `/admin/apps/${appName}/webhook`)
      expect(removed).toEqual({ status: 200, body: { ok: true } })
      expect(await admin(gateway, "DELETE", `/admin/apps/${appName}/webhook`))
        .toEqual({ status: 200, body: { ok: true, already_removed: true } })
      expect(await query(db, "SELECT count(*) AS n FROM app_webhooks")).toEqual([{ n: 0 }])
      expect(gateway.output()).not.toContain(set.body.secret)
    } finally {
      expect(await gateway.stop()).toBe(0)
    }
  }, 40_000)
})

describe("webhook targets checked when sent", () => {
  it("the lookup hands a connection only addresses it checked: a name resolving to loopback makes no connection", async () => {
    expect(isPublicAddress("127.0.0.1")).toBe(false)
    const hook = await receiver(() => 200)
    const agent = new Agent({ lookup: publicOnlyLookup })
    try {
      for (const host of ["localhost", ...(hostsName === undefined ? [] : [hostsName])]) {
        const error = await new Promise<Error>((done, fail) => {
          const req = httpRequest({ host, port: hook.port, path: "/hook", method: "POST", agent }, () =>
            fail(new Error(`${host}: a request went out`)))
          req.once("error", done)
          req.end("{}")
        })
        expect(error.message, host).toContain("not a public address")
      }
      expect(hook.connections()).toBe(0)
    } finally {
      agent.destroy()
      await hook.close()
    }
  })

  it("a stored target that resolves to loopback is refused at send time (an attempt recorded, no connection) unless CLAWDFORGE_WEBHOOK_ALLOW_PRIVATE, then delivered", async () => {
    const data = dataDir()
    const db = await ledgerIn(data)
    const hook = await receiver(() => 200)
    // Set while private targets were allowed (or before this check existed).
    const set = await clawdforge(db, ["apps", "webhook", "set", appName, `http://localhost:${hook.port}/hook`], loopbackReceivers)
    expect(set.code, set.stderr).toBe(0)
    const secret = set.stdout.trim()
    let gateway = await startGateway({}, data)
    try {
      const id: string = (await api(gateway, "POST", "/sessions", { agent: "echo" })).body.session_id
      expect((await api(gateway, "POST", `/sessions/${id}/turn`, { prompt: "hello" })).status).toBe(200)
      await until("a refused attempt", async () =>
        (await query(db, "SELECT count(*) AS n FROM webhook_attempts"))[0]!.n >= 1)
      const [attempt] = await query(db, "SELECT status, error FROM webhook_attempts")
      expect(attempt!.status).toBeNull()
      expect(String(attempt!.error)).toContain("not a public address")
      expect(hook.connections()).toBe(0)
      expect(await gateway.stop()).toBe(0)

      gateway = await startGateway(loopbackReceivers, data)
      await until("the delivery", () => hook.received.length >= 1)
      expect(verify(secret, hook.received[0]!)).toBe(true)
      expect(JSON.parse(hook.received[0]!.body)).toMatchObject({ event: "turn.completed", session_id: id })
    } finally {
      await gateway.stop()
      await hook.close()
    }
  }, 40_000)
})

describe("a queue per endpoint", () => {
  it("one app's receiver that never answers does not delay another app's first delivery: within 2 s of its turn's end", async () => {
    const data = dataDir()
    const db = await ledgerIn(data)
    const hanging = await receiver(() => undefined)
    const answering = await receiver(() => 200)
    expect((await clawdforge(db, ["apps", "webhook", "set", appName, hanging.url], loopbackReceivers)).code).toBe(0)
    expect((await clawdforge(db, ["apps", "webhook", "set", otherApp, answering.url], loopbackReceivers)).code).toBe(0)
    const gateway = await startGateway(loopbackReceivers, data)
    try {
      const a: string = (await api(gateway, "POST", "/sessions", { agent: "echo" })).body.session_id
      for (let i = 0; i < 24; i++) {
        expect((await api(gateway, "POST", `/sessions/${a}/turn`, { prompt: `turn ${i}` })).status).toBe(200)
      }
      await until("app a's deliveries hanging", () => hanging.received.length >= 2)
      await new Promise((r) => setTimeout(r, 500))

      const b: string = (await api(gateway, "POST", "/sessions", { agent: "echo" }, otherToken)).body.session_id
      const turn = await api(gateway, "POST", `/sessions/${b}/turn`, { prompt: "hello" }, otherToken)
      expect(turn.status).toBe(200)
      const ended = Date.now()
      await until("app b's delivery", () => answering.received.length >= 1, 15_000)
      expect(answering.received[0]!.at - ended).toBeLessThan(2_000)
      expect(JSON.parse(answering.received[0]!.body)).toMatchObject({ app: otherApp, session_id: b })
    } finally {
      expect(await gateway.stop()).toBe(0)
      await hanging.close()
      await answering.close()
    }
  }, 40_000)
})
