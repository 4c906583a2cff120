/**
 * `GET /openapi.json` and `GET /docs`, served by the gateway itself: the docs page is Scalar's
 * standalone bundle (the copy `@effect/platform` ships) with the document inlined, so the browser
 * asks nothing of any other host, and it uses the system's fonts (`withDefaultFonts: false`) instead
 * of fetching Scalar's. Both are compressed (br, else gzip) for clients that accept it, once per
 * encoding, and carry a strong ETag with `Cache-Control: no-cache`, so a browser revalidates with
 * `If-None-Match` and gets a 304 instead of the page again.
 *
 * The bundle is about 3.3 MB of JavaScript: it is imported (dynamically) when `/docs` is first asked
 * for, never at start-up.
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as OpenApi from "@effect/platform/OpenApi"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { pathToFileURL } from "node:url"
import { promisify } from "node:util"
import * as zlib from "node:zlib"
import { Api } from "../domain/Api.js"

type Encoding = "br" | "gzip" | "identity"

const brotli = promisify(zlib.brotliCompress)
const gzip = promisify(zlib.gzip)

const compress = (encoding: Exclude<Encoding, "identity">, body: Uint8Array): Promise<Uint8Array> =>
  encoding === "br"
    ? brotli(body, {
      params: {
        [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
        // Quality 6: about 130 ms for the docs page, within 2% of quality 9's size.
        [zlib.constants.BROTLI_PARAM_QUALITY]: 6,
        [zlib.constants.BROTLI_PARAM_SIZE_HINT]: body.byteLength
      }
    })
    : gzip(body)

/** The encoding to answer with: br, else gzip, when `Accept-Encoding` allows it (q > 0). */
export const negotiateEncoding = (acceptEncoding: string | undefined): Encoding => {
  const accepted = new Map<string, number>()
  for (const part of (acceptEncoding ?? "").split(",")) {
    const [name, ...params] = part.trim().toLowerCase().split(";")
    if (name === undefined || name === "") continue
    const q = params.map((param) => param.trim()).find((param) => param.startsWith("q="))
    accepted.set(name, q === undefined ? 1 : Number(q.slice(2)) || 0)
  }
  const allows = (name: string) => (accepted.get(name) ?? accepted.get("*") ?? 0) > 0
  return allows("br") ? "br" : allows("gzip") ? "gzip" : "identity"
}

/** One representation of an asset, compressed on first use. */
interface Asset {
  readonly contentType: string
  readonly hash: string
  readonly variant: (encoding: Encoding) => Effect.Effect<Uint8Array>
}

export const makeAsset = (contentType: string, text: string) =>
  Effect.gen(function*() {
    const body = new TextEncoder().encode(text)
    const br = yield* Effect.cached(Effect.promise(() => compress("br", body)))
    const gz = yield* Effect.cached(Effect.promise(() => compress("gzip", body)))
    const asset: Asset = {
      contentType,
      hash: createHash("sha256").update(body).digest("base64url").slice(0, 27),
      variant: (encoding) => encoding === "br" ? br : encoding === "gzip" ? gz : Effect.succeed(body)
    }
    return asset
  })

const etagOf = (asset: Asset, encoding: Encoding) =>
  encoding === "identity" ? `"${asset.hash}"` : `"${asset.hash}-${encoding}"`

/** `If-None-Match` matches: `*`, or one of its tags equals ours (weak comparison, RFC 9110). */
const matches = (ifNoneMatch: string | undefined, etag: string) =>
  ifNoneMatch !== undefined &&
  ifNoneMatch.split(",").some((tag) => {
    const trimmed = tag.trim()
    return trimmed === "*" || trimmed.replace(/^W\//, "") === etag
  })

/** The asset as the request asks for it: 304, compressed, or as is. */
export const respond = (asset: Asset) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const encoding = negotiateEncoding(request.headers["accept-encoding"])
    const etag = etagOf(asset, encoding)
    const headers: Record<string, string> = { etag, "cache-control": "no-cache", vary: "Accept-Encoding" }
    if (matches(request.headers["if-none-match"], etag)) {
      return HttpServerResponse.empty({ status: 304, headers })
    }
    if (encoding !== "identity") headers["content-encoding"] = encoding
    return HttpServerResponse.uint8Array(yield* asset.variant(encoding), { contentType: asset.contentType, headers })
  })

/** Scalar's standalone bundle, loaded from `@effect/platform`'s own copy when first needed. */
const loadScalar = Effect.promise(async () => {
  const entry = createRequire(import.meta.url).resolve("@effect/platform/HttpApiScalar")
  const module = await import(pathToFileURL(join(dirname(entry), "internal", "httpApiScalar.js")).href)
  const javascript: unknown = module.javascript ?? module.default?.javascript
  if (typeof javascript !== "string") throw new Error("Scalar's bundle was not found in @effect/platform")
  return javascript
})

// JSON inside <script>: nothing in it may close the element or open a comment.
const scriptJson = (value: unknown) =>
  JSON.stringify(value).replace(/</g, "\\u003c").replace(/>/g, "\\u003e").replace(/&/g, "\\u0026")
    .replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029")

const escapeHtml = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

const docsPage = (spec: OpenApi.OpenAPISpec, scalar: string) => {
  const config = {
    _integration: "html",
    // The system's fonts: Scalar's own are fetched from fonts.scalar.com.
    withDefaultFonts: false
  }
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>${escapeHtml(spec.info.title)} API</title>
    <meta name="description" content="${escapeHtml(spec.info.summary ?? spec.info.title)}" />
    <link rel="icon" href="data:," />
  </head>
  <body>
    <script id="api-reference" type="application/json">${scriptJson(spec)}</script>
    <script>document.getElementById("api-reference").dataset.configuration = ${JSON.stringify(JSON.stringify(config))}</script>
    <script>${scalar}</script>
  </body>
</html>
`
}

export class Docs extends Effect.Service<Docs>()("clawdforge/Docs", {
  effect: Effect.gen(function*() {
    // Both are made when first asked for, not at start-up.
    const spec = Effect.sync(() => OpenApi.fromApi(Api))
    const document = yield* Effect.cached(
      Effect.flatMap(spec, (spec) => makeAsset("application/json", JSON.stringify(spec)))
    )
    const page = yield* Effect.cached(
      Effect.flatMap(
        Effect.zip(spec, loadScalar),
        ([spec, scalar]) => makeAsset("text/html; charset=utf-8", docsPage(spec, scalar))
      )
    )

    /** `GET /openapi.json`. */
    const openApi = Effect.fn("Docs.openApi")(function*() {
      return yield* respond(yield* document)
    })

    /** `GET /docs`. */
    const docs = Effect.fn("Docs.docs")(function*() {
      return yield* respond(yield* page)
    })

    return { openApi, docs } as const
  })
}) {}
