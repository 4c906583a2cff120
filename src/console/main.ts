/**
 * The operators' console (`GET /console`): preact + htm, bundled by esbuild into
 * `dist/app/console/console.js` (scripts/build.mjs). Pages by the URL's hash: `#/` overview,
 * `#/sessions`, `#/sessions/<id>`, `#/apps`, `#/audit`. Signing in checks the admin token
 * against the gateway and keeps it for this tab only.
 */
import { render } from "preact"
import { useEffect, useState } from "preact/hooks"
import { call, forgetToken, savedToken, saveToken, whenUnauthorized } from "./api.js"
import { AppsPage, AuditPage } from "./apps.js"
import { OverviewPage } from "./overview.js"
import { SessionPage, SessionsPage } from "./sessions.js"
import { html, messageOf } from "./ui.js"

const useHash = () => {
  const [hash, setHash] = useState(location.hash)
  useEffect(() => {
    const changed = () => setHash(location.hash)
    addEventListener("hashchange", changed)
    return () => removeEventListener("hashchange", changed)
  }, [])
  return hash.replace(/^#/, "") || "/"
}

const SignIn = ({ signedIn }: { signedIn: () => void }) => {
  const [error, setError] = useState<string | undefined>(undefined)
  const submit = (e: Event) => {
    e.preventDefault()
    const token = ((e.target as HTMLFormElement).elements.namedItem("token") as HTMLInputElement).value.trim()
    call("GET", "/admin/overview", undefined, token).then(
      () => (saveToken(token), signedIn()),
      (e) => setError(messageOf(e))
    )
  }
  return html`<main class="signin">
    <h1>clawdforge console</h1>
    <form onSubmit=${submit}>
      <label>Admin token
        <input name="token" type="password" autocomplete="off" required autofocus placeholder="CLAWDFORGE_ADMIN_TOKEN" />
      </label>
      <button type="submit">Sign in</button>
      ${error === undefined ? null : html`<p class="failure" role="alert">${error}</p>`}
      <p class="muted">Kept for this tab only, and sent only to this gateway.</p>
    </form>
  </main>`
}

const pages: ReadonlyArray<readonly [string, string]> = [["/", "Overview"], ["/sessions", "Sessions"], ["/apps", "Apps"], ["/audit", "Audit trail"]]

const Page = ({ path }: { path: string }) => {
  const session = /^\/sessions\/([A-Za-z0-9_-]+)$/.exec(path)
  // Keyed: another session is another page, with none of the last one's state.
  if (session !== null) return html`<${SessionPage} key=${session[1]} id=${session[1]} />`
  switch (path) {
    case "/sessions":
      return html`<${SessionsPage} />`
    case "/apps":
      return html`<${AppsPage} />`
    case "/audit":
      return html`<${AuditPage} />`
    default:
      return html`<${OverviewPage} />`
  }
}

const Console = () => {
  const [signedIn, setSignedIn] = useState(savedToken() !== null)
  const path = useHash()
  useEffect(() => whenUnauthorized(() => (forgetToken(), setSignedIn(false))), [])
  if (!signedIn) return html`<${SignIn} signedIn=${() => setSignedIn(true)} />`
  const section = "/" + (path.split("/")[1] ?? "")
  return html`<div class="frame">
    <header>
      <h1>clawdforge</h1>
      <nav>
        ${pages.map(([href, label]) => html`<a href=${`#${href}`} aria-current=${section === href ? "page" : undefined}>${label}</a>`)}
      </nav>
      <button class="small" onClick=${() => (forgetToken(), setSignedIn(false))}>Sign out</button>
    </header>
    <main><${Page} path=${path} /></main>
  </div>`
}

render(html`<${Console} />`, document.getElementById("app")!)
