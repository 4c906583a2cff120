import { type Browser, type BrowserContextOptions, chromium, type Page } from "playwright-core"

// As CI runs it: as root, without a GPU, with no network but the gateway's.
const chromiumArgs = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync"
]

/** Debian's headless `chromium`; each launch gets a fresh temporary profile (playwright's default). */
export const launchChromium = () => chromium.launch({ executablePath: "/usr/bin/chromium", args: chromiumArgs })

/** What a watched page did: every request, those that would have left the origin (refused), and its errors. */
export interface WatchedPage {
  readonly page: Page
  readonly requested: Array<string>
  readonly outside: Array<string>
  readonly errors: Array<string>
}

/**
 * A fresh page that may reach `origin` only: a request elsewhere is refused, not sent, and
 * recorded; console errors, page errors and failed requests are recorded unless `expected` says so.
 */
export const watchPage = async (
  browser: Browser,
  origin: string,
  options: {
    readonly context?: BrowserContextOptions
    /** An error line the test causes on purpose (e.g. a refused sign-in), not recorded. */
    readonly expected?: (line: string) => boolean
  } = {}
): Promise<WatchedPage> => {
  const context = await browser.newContext(options.context)
  const watched: WatchedPage = { page: undefined as unknown as Page, requested: [], outside: [], errors: [] }
  const error = (line: string) => {
    if (options.expected?.(line) !== true) watched.errors.push(line)
  }
  await context.route("**/*", (route) => {
    const url = route.request().url()
    watched.requested.push(url)
    if (new URL(url).origin === origin) return route.continue()
    watched.outside.push(url)
    return route.abort("blockedbyclient")
  })
  const page = await context.newPage()
  page.on("console", (message) => {
    if (message.type() === "error") error(`console: ${message.text()}`)
  })
  page.on("pageerror", (e) => error(`page: ${e.message}`))
  page.on("requestfailed", (request) => error(`request failed: ${request.url()}`))
  return { ...watched, page }
}
