/**
 * `GET /console`: the operators' web console, served by the gateway itself. The page is a shell;
 * its script and style sheet are the esbuild bundle of `src/console/` (preact + htm) that the
 * build writes to `dist/app/console/`. They are read, compressed and hashed when first asked
 * for, never at start-up, so a gateway nobody opens the console on pays nothing for it.
 *
 * Every response carries a `Content-Security-Policy` that allows the gateway's own origin alone:
 * no inline script or style, no other host, no framing.
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Option } from "effect"
import { existsSync } from "node:fs"
import { readFile } from "node:fs/promises"
import { fileURLToPath } from "node:url"
import { AppConfig } from "../services/config/AppConfig.js"
import { adminOffMessage } from "./AdminAuthorization.js"
import { makeAsset, respond } from "./Docs.js"

export const consoleCsp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
  "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const securityHeaders = {
  "content-security-policy": consoleCsp,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer"
}

export type ConsoleFile = "console.js" | "console.css" | "icon.svg"

const contentTypes: Record<ConsoleFile, string> = {
  "console.js": "text/javascript; charset=utf-8",
  "console.css": "text/css; charset=utf-8",
  "icon.svg": "image/svg+xml"
}

/**
 * Where the build put the bundle: beside the gateway's bundle (`dist/app/`), or from the
 * library (`dist/http/`) or the sources (`src/http/`, as the tests run them).
 */
const bundleDir = () =>
  ["./console/", "../app/console/", "../../dist/app/console/"]
    .map((path) => fileURLToPath(new URL(path, import.meta.url)))
    .find((dir) => existsSync(`${dir}console.js`))

const page = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>clawdforge console</title>
    <link rel="icon" href="/console/icon.svg" type="image/svg+xml" />
    <link rel="stylesheet" href="/console/console.css" />
  </head>
  <body>
    <div id="app"><noscript>The console needs JavaScript.</noscript></div>
    <script type="module" src="/console/console.js"></script>
  </body>
</html>
`

const offPage = `<!doctype html>
<html lang="en">
  <head><meta charset="utf-8" /><title>clawdforge console: off</title></head>
  <body>
    <h1>The console is off</h1>
    <p>${adminOffMessage.replace(/^No such route: /, "")} and restart the gateway to turn it on.</p>
  </body>
</html>
`

// The mark: an anvil's spark, in the console's accent.
const icon = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#1f2937"/>` +
  `<path d="M3 10h10l-2 3H5z M6 4l2 4 2-4" fill="none" stroke="#f59e0b" stroke-width="1.5"/></svg>`

export class Console extends Effect.Service<Console>()("clawdforge/Console", {
  effect: Effect.gen(function*() {
    const { adminToken } = yield* AppConfig
    const on = Option.isSome(adminToken)
    const shell = yield* Effect.cached(makeAsset("text/html; charset=utf-8", page))
    const favicon = yield* Effect.cached(makeAsset(contentTypes["icon.svg"], icon))
    const bundled = (file: "console.js" | "console.css") =>
      Effect.cached(
        Effect.promise(async () => {
          const dir = bundleDir()
          return dir === undefined ? undefined : readFile(`${dir}${file}`, "utf8")
        }).pipe(
          Effect.flatMap((text) =>
            text === undefined
              ? Effect.dieMessage("The console is not built: run `npm run build`")
              : makeAsset(contentTypes[file], text)
          )
        )
      )
    const script = yield* bundled("console.js")
    const style = yield* bundled("console.css")

    const secured = (response: HttpServerResponse.HttpServerResponse) =>
      HttpServerResponse.setHeaders(response, securityHeaders)

    /** `GET /console`: the page, or (admin API off) a page that says so, 404. */
    const consolePage = Effect.fn("Console.page")(function*() {
      if (!on) return secured(HttpServerResponse.text(offPage, { status: 404, contentType: "text/html; charset=utf-8" }))
      return secured(yield* respond(yield* shell))
    })

    /** `GET /console/{file}`. */
    const asset = Effect.fn("Console.asset")(function*(file: ConsoleFile) {
      const found = file === "console.js" ? script : file === "console.css" ? style : favicon
      return secured(yield* respond(yield* found))
    })

    return { page: consolePage, asset } as const
  })
}) {}
