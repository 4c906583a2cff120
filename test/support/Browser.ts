/**
 * A headless Chromium for the browser tests, driven by playwright-core: the system's
 * (`/usr/bin/chromium`, Debian's `chromium`) when it has one, else the build `@sparticuz/chromium`
 * ships inside its npm package, unpacked once (about 3.5 s, 200 MB) into
 * `node_modules/.cache/clawdforge-chromium/<version>/` and reused, not into the temp folder, which
 * is where that package unpacks by default. `CLAWDFORGE_TEST_BROWSER=npm` (or `system`) insists on one.
 */
import Sparticuz from "@sparticuz/chromium"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { join, resolve } from "node:path"
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

const systemChromium = "/usr/bin/chromium"

const cacheRoot = resolve(import.meta.dirname, "../../node_modules/.cache/clawdforge-chromium")

/** `@sparticuz/chromium`'s folder (its package.json is not among its exports). */
const sparticuzFolder = () => resolve(createRequire(import.meta.url).resolve("@sparticuz/chromium"), "../../..")

/**
 * The npm package's Chromium, unpacked into the project's cache on first use. The package unpacks
 * into `os.tmpdir()`, which it reads when `executablePath()` is called: that call alone sees a
 * staging folder as TMPDIR. Two test files may unpack at once: each into its own staging folder,
 * renamed into place; the second rename finds the place taken and drops its copy.
 */
const npmChromium = async () => {
  const version = JSON.parse(readFileSync(join(sparticuzFolder(), "package.json"), "utf8")).version as string
  const folder = join(cacheRoot, version)
  const executable = join(folder, "chromium")
  if (existsSync(executable)) return { executable, folder }
  mkdirSync(cacheRoot, { recursive: true })
  const staging = mkdtempSync(join(cacheRoot, ".unpacking-"))
  try {
    const previous = process.env.TMPDIR
    process.env.TMPDIR = staging
    let unpacked: Promise<string>
    try {
      unpacked = Sparticuz.executablePath()
    } finally {
      if (previous === undefined) delete process.env.TMPDIR
      else process.env.TMPDIR = previous
    }
    await unpacked
    // The package's own fonts.conf looks in /tmp and Lambda's folders: one of ours instead.
    mkdirSync(join(staging, "fontconfig"))
    writeFileSync(
      join(staging, "fontconfig", "fonts.conf"),
      `<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <dir>${join(folder, "fonts", "fonts")}</dir>
  <cachedir>${join(folder, "fontconfig", "cache")}</cachedir>
</fontconfig>
`
    )
    try {
      renameSync(staging, folder)
    } catch (error) {
      if (!existsSync(executable)) throw error
    }
  } finally {
    rmSync(staging, { recursive: true, force: true })
  }
  return { executable, folder }
}

const chooseChromium = async (): Promise<{ readonly executable: string; readonly env?: Record<string, string> }> => {
  const wanted = process.env.CLAWDFORGE_TEST_BROWSER
  if (wanted !== undefined && wanted !== "" && wanted !== "system" && wanted !== "npm") {
    throw new Error(`CLAWDFORGE_TEST_BROWSER is "system" or "npm", not "${wanted}"`)
  }
  if (wanted !== "npm" && existsSync(systemChromium)) return { executable: systemChromium }
  if (wanted === "system") throw new Error(`CLAWDFORGE_TEST_BROWSER=system: no ${systemChromium} (apt-get install chromium)`)
  const { executable, folder } = await npmChromium()
  // Its own fonts, so the pages render the same whatever fonts the system has (a fresh one: none).
  // Its own fonts (Open Sans, shipped with it) and font cache, whatever fonts the system has: a
  // fresh one may have none, and Chromium without a font aborts on the first text it lays out.
  return { executable, env: { ...process.env as Record<string, string>, FONTCONFIG_PATH: join(folder, "fontconfig") } }
}

/** A headless Chromium; each launch gets a fresh temporary profile (playwright's default, removed on close). */
export const launchChromium = async () => {
  const { env, executable } = await chooseChromium()
  return chromium.launch({ executablePath: executable, args: chromiumArgs, ...(env === undefined ? {} : { env }) })
}

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
