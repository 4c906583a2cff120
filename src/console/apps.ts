/**
 * Apps: by name (a token is shown once, when it is made, and never again), their limits and
 * use, and the audit trail of every session.
 */
import { useState } from "preact/hooks"
import { call } from "./api.js"
import { AuditTable } from "./sessions.js"
import { Failure, html, messageOf, orNone, time, usd, usePoll } from "./ui.js"

interface Limits {
  readonly max_sessions: number | null
  readonly turns_per_minute: number | null
  readonly daily_cost_usd: number | null
}

interface App {
  readonly name: string
  readonly source: "environment" | "ledger"
  readonly created_at: number | null
  readonly revoked_at: number | null
  readonly limits: Limits
  readonly use: { readonly live_sessions: number; readonly turns_this_minute: number; readonly cost_today_usd: number }
}

interface UsageRow {
  readonly app: string
  readonly turns: number
  readonly sessions: number
  readonly runs: number
  readonly cost_usd: number
}

const value = (form: HTMLFormElement, name: string) => (form.elements.namedItem(name) as HTMLInputElement).value.trim()

const LimitsForm = ({ app, done }: { app: App; done: () => void }) => {
  const [error, setError] = useState<string | undefined>(undefined)
  const submit = (e: Event) => {
    e.preventDefault()
    const form = e.target as HTMLFormElement
    const limits: Record<string, number> = {}
    for (const name of ["max_sessions", "turns_per_minute", "daily_cost_usd"]) {
      const text = value(form, name)
      if (text !== "") limits[name] = Number(text)
    }
    call("PUT", `/admin/apps/${app.name}/limits`, limits).then(done, (e) => setError(messageOf(e)))
  }
  const field = (name: keyof Limits, label: string, step: string) =>
    html`<label>${label}<input name=${name} type="number" min="0" step=${step} value=${app.limits[name] ?? ""} placeholder="none" /></label>`
  return html`<form class="limits" onSubmit=${submit}>
    ${field("max_sessions", "Live sessions", "1")}
    ${field("turns_per_minute", "Turns a minute", "1")}
    ${field("daily_cost_usd", "USD a day", "0.01")}
    <button type="submit">Save limits</button>
    <${Failure} error=${error} />
  </form>`
}

export const AppsPage = () => {
  const { data, error, reload } = usePoll(() => call<{ apps: ReadonlyArray<App> }>("GET", "/admin/apps"), 10000)
  const usage = usePoll(() => call<{ apps: ReadonlyArray<UsageRow> }>("GET", "/admin/usage"), 30000)
  const [created, setCreated] = useState<{ name: string; token: string } | undefined>(undefined)
  const [editing, setEditing] = useState<string | undefined>(undefined)
  const [failure, setFailure] = useState<string | undefined>(undefined)
  const add = (e: Event) => {
    e.preventDefault()
    const form = e.target as HTMLFormElement
    call<{ name: string; token: string }>("POST", "/admin/apps", { name: value(form, "name") }).then(
      (app) => (setCreated(app), setFailure(undefined), form.reset(), reload()),
      (e) => setFailure(messageOf(e))
    )
  }
  const revoke = (name: string) => {
    if (!confirm(`Revoke ${name}'s token? Its requests are refused from then on.`)) return
    call("DELETE", `/admin/apps/${name}`).then(reload, (e) => setFailure(messageOf(e)))
  }
  const used = new Map((usage.data?.apps ?? []).map((row) => [row.app, row]))
  return html`<section>
    <h2>Apps</h2>
    <form class="filters" onSubmit=${add}>
      <label>New app <input name="name" required maxlength="64" placeholder="billing-bot" /></label>
      <button type="submit">Add app</button>
    </form>
    ${created === undefined ? null : html`<div class="token" role="status">
      <p>The token of <b>${created.name}</b>, shown this once: copy it now.</p>
      <code>${created.token}</code>
      <button onClick=${() => setCreated(undefined)}>Done</button>
    </div>`}
    <${Failure} error=${error ?? failure} />
    ${data === undefined ? html`<p class="muted">Loading…</p>` : html`<table class="list">
      <thead><tr>
        <th>App</th><th>Token</th><th class="num">Live</th><th class="num">Turns this minute</th><th class="num">Cost today</th>
        <th>Limits (sessions, turns/min, USD/day)</th><th class="num">Turns, all time</th><th class="num">Cost, all time</th><th></th>
      </tr></thead>
      <tbody>
        ${data.apps.map((app) => {
          const total = used.get(app.name)
          return html`<tr key=${app.name}>
            <td><b>${app.name}</b></td>
            <td>${app.revoked_at !== null
              ? html`<span class="pill closed" title=${time(app.revoked_at)}>revoked</span>`
              : html`<span class="pill open">${app.source === "environment" ? "environment" : "ledger"}</span>`}</td>
            <td class="num">${app.use.live_sessions}</td>
            <td class="num">${app.use.turns_this_minute}</td>
            <td class="num">${usd(app.use.cost_today_usd)}</td>
            <td>${editing === app.name
              ? html`<${LimitsForm} app=${app} done=${() => (setEditing(undefined), reload())} />`
              : html`${orNone(app.limits.max_sessions)}, ${orNone(app.limits.turns_per_minute)}, ${app.limits.daily_cost_usd === null ? "none" : usd(app.limits.daily_cost_usd)}
                  <button class="small" onClick=${() => setEditing(app.name)}>Edit</button>`}</td>
            <td class="num">${total?.turns ?? 0}</td>
            <td class="num">${usd(total?.cost_usd ?? 0)}</td>
            <td>${app.source === "ledger" && app.revoked_at === null
              ? html`<button class="small reject" onClick=${() => revoke(app.name)}>Revoke</button>`
              : null}</td>
          </tr>`
        })}
      </tbody>
    </table>`}
  </section>`
}

/** The audit page's page size: the API's default `limit`. */
const pageSize = 100

export const AuditPage = () => {
  const [before, setBefore] = useState<number | undefined>(undefined)
  const query = before === undefined ? "" : `?before=${before}`
  const { data, error } = usePoll(() => call<{ events: ReadonlyArray<any> }>("GET", `/admin/audit${query}`), 5000, [before])
  const events = data?.events ?? []
  return html`<section>
    <h2>Audit trail</h2>
    <${Failure} error=${error} />
    <p class="buttons">
      ${before === undefined ? null : html`<button onClick=${() => setBefore(undefined)}>Newest</button>`}
      ${events.length < pageSize ? null : html`<button onClick=${() => setBefore(events.at(-1).id)}>Older</button>`}
    </p>
    ${data === undefined ? html`<p class="muted">Loading…</p>` : html`<${AuditTable} events=${events} withSession=${true} />`}
  </section>`
}
