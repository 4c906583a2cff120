/**
 * `/docs` in a real browser (Debian's `chromium`, driven by playwright-core), served by the
 * compiled gateway as `npm start` runs it: the page renders the API, asks nothing of any host
 * but the gateway (no fonts, scripts or telemetry from elsewhere: it must work on a closed
 * network and tell no one who reads it), and logs no error.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Browser } from "playwright-core"
import { launchChromium, watchPage } from "./support/Browser.js"
import { type GatewayProcess, startGateway } from "./support/GatewayProcess.js"


let gateway: GatewayProcess
let browser: Browser

beforeAll(async () => {
  ;[gateway, browser] = await Promise.all([
    startGateway({}),
    launchChromium()
  ])
})

afterAll(async () => {
  await browser?.close()
  await gateway?.stop()
})

describe("/docs in headless Chromium", () => {
  it("renders the API from the gateway alone, and logs no error", async () => {
    const origin = new URL(gateway.url).origin
    const { page, requested, outside, errors } = await watchPage(browser, origin)

    const response = await page.goto(`${gateway.url}/docs`, { waitUntil: "load" })
    expect(response?.status()).toBe(200)
    const headers = await response!.allHeaders()
    // Chromium accepts br: the 3 MB page travels compressed, with a validator.
    expect(headers["content-encoding"]).toBe("br")
    expect(headers["etag"]).toMatch(/^"[\w-]+-br"$/)
    expect(headers["cache-control"]).toBe("no-cache")

    // Scalar rendered the document: the first group's operations are shown, every group is
    // listed, and the bearer token is required by default (the page selects it).
    await page.getByText("Liveness: 200 once the gateway serves requests").first().waitFor({ timeout: 15_000 })
    await page.getByText("Selected Auth Type").first().waitFor({ state: "attached" })
    const text = await page.innerText("body")
    for (const tag of ["gateway", "run", "sessions", "observability"]) expect(text).toContain(tag)
    expect(text).not.toContain("No authentication selected")
    await page.waitForLoadState("networkidle")

    expect(outside).toEqual([])
    expect(errors).toEqual([])
    for (const url of requested) expect(new URL(url).origin).toBe(origin)
    await page.context().close()
  })
})
