/**
 * The operators' console (`/console`, issue 16) in a real browser (Debian's `chromium`, driven by
 * playwright-core), served by the compiled gateway as `npm start` runs it, with the scripted ACP
 * agent: sign in with the admin token, see a session created through the API, read its turn,
 * watch a live turn's messages arrive, answer an ask-mode request with a click and see the API's
 * waiting turn complete; apps and the audit trail. The page asks nothing of any other origin,
 * logs no error, and never puts the token in a URL. Screenshots of each page are kept under
 * `node_modules/.cache/clawdforge-console-shots/` (not committed; the temp folder keeps nothing of a run).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import type { Browser, Page } from "playwright-core"
import { launchChromium, watchPage } from "./support/Browser.js"
import { api, type GatewayProcess, runGatewayToExit, startGateway } from "./support/GatewayProcess.js"
import { agentLogFile, scriptedAgents } from "./support/ScriptedAgent.js"
import { appToken, otherToken } from "./support/TestGateway.js"
import { tempDir } from "./support/TempDirs.js"

const adminToken = "console-admin-token-0123456789"
const shots = join(import.meta.dirname, "../node_modules/.cache/clawdforge-console-shots")


let gateway: GatewayProcess
let browser: Browser

beforeAll(async () => {
  mkdirSync(shots, { recursive: true })
  ;[gateway, browser] = await Promise.all([
    startGateway({ CLAWDFORGE_ADMIN_TOKEN: adminToken, CLAWDFORGE_AGENTS: scriptedAgents(agentLogFile()) }),
    launchChromium()
  ])
})

afterAll(async () => {
  await browser?.close()
  await gateway?.stop()
})

const shoot = (page: Page, name: string) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true })

describe("/console in headless Chromium", () => {
  it("signs in, shows sessions, streams a live turn, answers a permission with a click; nothing leaves the gateway", async () => {
    // What the console will show, made through the app API.
    const plain = (await api(gateway, "POST", "/sessions", { agent: "scripted", meta: { ticket: "ENG-42" } })).body.session_id
    expect((await api(gateway, "POST", `/sessions/${plain}/turn`, { prompt: "hello console" })).status).toBe(200)
    const other = (await api(gateway, "POST", "/sessions", { agent: "scripted" }, otherToken)).body.session_id
    expect((await api(gateway, "POST", `/sessions/${other}/turn`, { prompt: "cost 0.0125" }, otherToken)).status).toBe(200)

    const origin = new URL(gateway.url).origin
    const { page, requested, outside, errors } = await watchPage(browser, origin, {
      context: { viewport: { width: 1280, height: 860 }, colorScheme: "light" },
      // A refused sign-in is a 401 the browser reports; it is what the test asks for. The live
      // stream is aborted when the page leaves the turn.
      expected: (line) => (line.startsWith("console: ") && line.includes("401")) ||
        (line.startsWith("request failed: ") && line.endsWith("/stream"))
    })
    page.on("response", (response) => {
      if (response.status() >= 400 && response.status() !== 401) errors.push(`${response.status()}: ${response.url()}`)
    })

    // The page and its assets: only the gateway's own origin, nothing inline.
    const response = await page.goto(`${gateway.url}/console`, { waitUntil: "load" })
    expect(response?.status()).toBe(200)
    const headers = await response!.allHeaders()
    expect(headers["content-security-policy"]).toBe(
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    expect(headers["content-encoding"]).toBe("br")

    // A wrong token is refused; the admin token signs in, kept for the tab only.
    await page.getByLabel("Admin token").fill(appToken)
    await page.getByRole("button", { name: "Sign in" }).click()
    await page.getByRole("alert").getByText("Missing or unknown admin token").waitFor()
    await shoot(page, "1-sign-in")
    await page.getByLabel("Admin token").fill(adminToken)
    await page.getByRole("button", { name: "Sign in" }).click()

    // Overview: the pool, the turns, the cost.
    await page.getByRole("heading", { name: "Overview" }).waitFor()
    await page.getByText("Turns per minute, last 30 minutes").waitFor()
    await page.locator(".card", { hasText: "Pool" }).getByText("/ 8").waitFor()
    await page.locator(".card", { hasText: "Cost today" }).getByText("$0.0125").waitFor()
    await shoot(page, "2-overview")

    // Sessions: the one made through the API, opened, its turn read.
    await page.getByRole("link", { name: "Sessions" }).click()
    await page.getByRole("link", { name: plain }).waitFor()
    await page.getByRole("link", { name: other }).waitFor()
    await page.getByLabel("App").selectOption("app-b")
    await page.getByRole("link", { name: plain }).waitFor({ state: "detached" })
    await page.getByLabel("App").selectOption("")
    await shoot(page, "3-sessions")
    await page.getByRole("link", { name: plain }).click()
    await page.getByRole("heading", { name: plain }).waitFor()
    await page.locator(".agent-text", { hasText: "echo: hello console" }).waitFor()
    await shoot(page, "4-session")

    // A live turn: its messages arrive while the API still waits for it.
    let streamed = false
    const running = api(gateway, "POST", `/sessions/${plain}/turn`, { prompt: "chunks 12 500" }).then((r) => {
      streamed = true
      return r
    })
    await page.locator(".agent-text", { hasText: "chunk 2" }).waitFor({ timeout: 10_000 })
    expect(streamed).toBe(false)
    await shoot(page, "5-live-turn")
    expect((await running).status).toBe(200)
    await page.locator(".agent-text", { hasText: "chunk 12" }).waitFor()

    // The workspace: a turn that writes a file shows it among the turn's changes and the files,
    // which download (through the admin API, the token in a header) as the agent wrote them.
    const edit = { "notes/todo.md": "- ship it\n" }
    expect((await api(gateway, "POST", `/sessions/${plain}/turn`, { prompt: `edit ${JSON.stringify(edit)}` })).status).toBe(200)
    await page.locator(".changes li", { hasText: "notes/todo.md" }).getByText("added").waitFor()
    const file = page.locator(".files tr", { hasText: "notes/todo.md" })
    await file.waitFor()
    const [download] = await Promise.all([page.waitForEvent("download"), file.getByRole("button", { name: "Download" }).click()])
    expect(download.suggestedFilename()).toBe("todo.md")
    expect(readFileSync((await download.path())!, "utf8")).toBe("- ship it\n")
    await shoot(page, "5b-files")

    // Ask mode: the request waits for an answer; one button per option; a click answers it.
    const ask = (await api(gateway, "POST", "/sessions", { agent: "scripted", permission_mode: "ask" })).body.session_id
    let answered = false
    const waiting = api(gateway, "POST", `/sessions/${ask}/turn`, { prompt: "permission edit the readme" }).then((r) => {
      answered = true
      return r
    })
    await page.goto(`${gateway.url}/console#/sessions/${ask}`)
    const request = page.locator(".permission")
    await request.getByText("write file").waitFor({ timeout: 10_000 })
    expect(await request.getByRole("button").allInnerTexts()).toEqual(["Allow", "Reject"])
    await shoot(page, "6-permission")
    expect(answered).toBe(false)
    await request.getByRole("button", { name: "Allow" }).click()
    const reply = await waiting
    expect(reply.status).toBe(200)
    expect(JSON.stringify(reply.body.events)).toContain("permission: allow")
    await page.locator(".permission").waitFor({ state: "detached" })
    await page.locator(".agent-text", { hasText: "permission: allow" }).waitFor()

    // Apps: names, limits, use; never a token.
    await page.getByRole("link", { name: "Apps" }).click()
    await page.getByRole("cell", { name: "app-a", exact: true }).waitFor()
    await page.getByRole("cell", { name: "app-b", exact: true }).waitFor()
    await shoot(page, "7-apps")
    const appsText = await page.innerText("body")
    expect(appsText).not.toContain(appToken)
    expect(appsText).not.toContain(otherToken)

    // The audit trail shows who answered.
    await page.getByRole("link", { name: "Audit trail" }).click()
    await page.getByText(`"by":"admin"`).first().waitFor()
    await shoot(page, "8-audit")

    // The token stayed in this tab's sessionStorage and in headers: never in a URL, never stored for good.
    expect(await page.evaluate(() => sessionStorage.getItem("clawdforge.adminToken"))).toBe(adminToken)
    expect(await page.evaluate(() => localStorage.length)).toBe(0)
    await page.waitForLoadState("networkidle")
    expect(outside).toEqual([])
    expect(errors).toEqual([])
    for (const url of requested) {
      expect(new URL(url).origin).toBe(origin)
      expect(url).not.toContain(adminToken)
    }
    await page.context().close()
  })
})

describe("the console's assets", () => {
  it("are read from disk when first asked for, once, not when the gateway starts", async () => {
    // A preload in the compiled gateway's process records every file it reads with fs/promises.
    const dir = tempDir("clawdforge-reads-")
    const reads = join(dir, "reads.txt")
    writeFileSync(reads, "")
    writeFileSync(
      join(dir, "spy.mjs"),
      `import { appendFileSync } from "node:fs"
import fs from "node:fs"
import { syncBuiltinESMExports } from "node:module"
const readFile = fs.promises.readFile
fs.promises.readFile = (path, ...rest) => {
  appendFileSync(${JSON.stringify(reads)}, String(path) + "\\n")
  return readFile(path, ...rest)
}
syncBuiltinESMExports()
`
    )
    const consoleReads = () => readFileSync(reads, "utf8").split("\n").filter((line) => line.includes("/console/console."))
    const gw = await startGateway({ CLAWDFORGE_ADMIN_TOKEN: adminToken, NODE_OPTIONS: `--import=${join(dir, "spy.mjs")}` })
    try {
      const overview = await api(gw, "GET", "/admin/overview", undefined, adminToken)
      expect(overview.status).toBe(200)
      expect((await fetch(`${gw.url}/console`)).status).toBe(200)
      expect(consoleReads()).toEqual([])
      for (let i = 0; i < 2; i++) {
        const script = await fetch(`${gw.url}/console/console.js`)
        expect(script.status).toBe(200)
        expect(script.headers.get("content-type")).toBe("text/javascript; charset=utf-8")
        expect(script.headers.get("content-security-policy")).toContain("script-src 'self'")
        expect((await fetch(`${gw.url}/console/console.css`)).status).toBe(200)
      }
      expect(consoleReads().map((path) => path.replace(/^.*\/console\//, ""))).toEqual(["console.js", "console.css"])
    } finally {
      await gw.stop()
    }
  })

  it("a token shorter than 16 characters stops start-up with one line naming CLAWDFORGE_ADMIN_TOKEN", async () => {
    // Configuration is read before anything listens: the port is never taken.
    const result = await runGatewayToExit({ CLAWDFORGE_ADMIN_TOKEN: "short", CLAWDFORGE_PORT: "8799" })
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toBe(
      "clawdforge: invalid configuration: CLAWDFORGE_ADMIN_TOKEN: Expected at least 16 characters"
    )
    expect(result.stderr).not.toContain("short")
  })
})
