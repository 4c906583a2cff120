/**
 * Sessions: every app's, filtered by app and status; one session with its turns (each with what it
 * changed in the workspace), its workspace's files (each downloadable), its audit trail, the live
 * turn's messages as they arrive, and its pending requests as buttons.
 */
import { useEffect, useState } from "preact/hooks"
import { call, follow, savedToken, type StreamEvent } from "./api.js"
import { ago, Failure, html, messageOf, time, usd, usePoll } from "./ui.js"

interface Session {
  readonly session_id: string
  readonly app_name: string
  readonly agent: string
  readonly status: "open" | "closed"
  readonly live: boolean
  readonly turn_count: number
  readonly pending_permissions: number
  readonly permission_mode: string
  readonly created_at: number
  readonly last_turn_at: number | null
  readonly closed_at: number | null
  readonly model: string | null
  readonly mode: string | null
  readonly cwd: string
  readonly meta: Record<string, unknown>
}

interface Turn {
  readonly turn_index: number
  readonly status: string
  readonly prompt: string
  readonly accepted_at: number
  readonly duration_ms: number | null
  readonly stop_reason: string | null
  readonly usage: { readonly cost_usd: number | null; readonly total_tokens: number | null }
  readonly error: { readonly error: string; readonly message: string } | null
  /** What it did to the workspace; null until it ends. */
  readonly changes?: ReadonlyArray<Change> | null
}

interface Change {
  readonly path: string
  readonly status: "added" | "modified" | "deleted"
  readonly size: number
}

interface WorkspaceFile {
  readonly path: string
  readonly size: number
  readonly type: "file" | "symlink"
}

interface Permission {
  readonly request_id: string
  readonly kind: "permission" | "elicitation"
  readonly turn_index: number | null
  readonly tool_call: Record<string, unknown> | null
  readonly options: ReadonlyArray<{ readonly option_id: string; readonly name: string; readonly kind: string }>
  readonly elicitation?: { readonly message: string }
  readonly expires_at: number
}

interface AuditEvent {
  readonly id: number
  readonly at: number
  readonly event: string
  readonly detail: unknown
}

interface Detail {
  readonly session: Session
  readonly turns: ReadonlyArray<Turn>
  readonly events: ReadonlyArray<AuditEvent>
  readonly permissions: ReadonlyArray<Permission>
}

const go = (hash: string) => {
  location.hash = hash
}

export const SessionsPage = () => {
  const [app, setApp] = useState("")
  const [status, setStatus] = useState("open")
  const apps = usePoll(() => call<{ apps: ReadonlyArray<{ name: string }> }>("GET", "/admin/apps"), 30000)
  const query = new URLSearchParams({ ...(app === "" ? {} : { app }), ...(status === "" ? {} : { status }) })
  const { data, error } = usePoll(
    () => call<{ sessions: ReadonlyArray<Session> }>("GET", `/admin/sessions?${query}`),
    3000,
    [app, status]
  )
  return html`<section>
    <h2>Sessions</h2>
    <form class="filters" onSubmit=${(e: Event) => e.preventDefault()}>
      <label>App
        <select name="app" value=${app} onChange=${(e: Event) => setApp((e.target as HTMLSelectElement).value)}>
          <option value="">every app</option>
          ${(apps.data?.apps ?? []).map((a) => html`<option value=${a.name}>${a.name}</option>`)}
        </select>
      </label>
      <label>Status
        <select name="status" value=${status} onChange=${(e: Event) => setStatus((e.target as HTMLSelectElement).value)}>
          <option value="open">open</option>
          <option value="closed">closed</option>
          <option value="">any</option>
        </select>
      </label>
    </form>
    <${Failure} error=${error} />
    ${data === undefined
      ? html`<p class="muted">Loading…</p>`
      : data.sessions.length === 0
      ? html`<p class="muted">No session.</p>`
      : html`<table class="list">
          <thead><tr><th>Session</th><th>App</th><th>Agent</th><th>Status</th><th class="num">Turns</th><th>Waiting</th><th>Created</th></tr></thead>
          <tbody>
            ${data.sessions.map((s) => html`<tr class="link" onClick=${() => go(`#/sessions/${s.session_id}`)}>
              <td><a href=${`#/sessions/${s.session_id}`} class="mono">${s.session_id}</a></td>
              <td>${s.app_name}</td>
              <td>${s.agent}</td>
              <td><span class=${`pill ${s.live ? "live" : s.status}`}>${s.live ? "live" : s.status}</span></td>
              <td class="num">${s.turn_count}</td>
              <td>${s.pending_permissions > 0 ? html`<span class="pill ask">${s.pending_permissions} waiting</span>` : ""}</td>
              <td title=${time(s.created_at)}>${ago(s.created_at)}</td>
            </tr>`)}
          </tbody>
        </table>`}
  </section>`
}

/** A size as people read it. */
const bytes = (n: number) =>
  n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1024 / 1024).toFixed(1)} MB`

/**
 * Downloads one of the workspace's files through the admin API: the token travels in a header, so
 * the bytes are fetched and handed to the browser as a blob URL (never a URL holding the token).
 */
const download = async (sessionId: string, path: string) => {
  const response = await fetch(`/admin/sessions/${sessionId}/files/${path.split("/").map(encodeURIComponent).join("/")}`, {
    headers: { authorization: `Bearer ${savedToken() ?? ""}` },
    cache: "no-store"
  })
  if (!response.ok) throw new Error(`${response.status} ${response.statusText}`)
  const url = URL.createObjectURL(await response.blob())
  const link = document.createElement("a")
  link.href = url
  link.download = path.split("/").at(-1) ?? "file"
  document.body.append(link)
  link.click()
  link.remove()
  setTimeout(() => URL.revokeObjectURL(url), 10_000)
}

/** The workspace's files now, read again after each turn (or on asking). */
const FilesView = ({ sessionId, turnCount }: { sessionId: string; turnCount: number }) => {
  const [files, setFiles] = useState<ReadonlyArray<WorkspaceFile> | undefined>(undefined)
  const [error, setError] = useState<string | undefined>(undefined)
  const [asked, setAsked] = useState(0)
  useEffect(() => {
    let current = true
    call<{ files: ReadonlyArray<WorkspaceFile> }>("GET", `/admin/sessions/${sessionId}/files`).then(
      (reply) => current && (setFiles(reply.files), setError(undefined)),
      (e) => current && setError(messageOf(e))
    )
    return () => void (current = false)
  }, [sessionId, turnCount, asked])
  return html`<div class="files">
    <${Failure} error=${error} />
    <button onClick=${() => setAsked((n) => n + 1)}>Refresh files</button>
    ${files === undefined
      ? html`<p class="muted">Loading…</p>`
      : files.length === 0
      ? html`<p class="muted">No file.</p>`
      : html`<table class="list">
          <thead><tr><th>Path</th><th class="num">Size</th><th></th></tr></thead>
          <tbody>
            ${files.map((f) => html`<tr>
              <td class="mono">${f.path}${f.type === "symlink" ? " (symlink)" : ""}</td>
              <td class="num">${bytes(f.size)}</td>
              <td>${f.type === "file"
                ? html`<button onClick=${() => download(sessionId, f.path).catch((e) => setError(messageOf(e)))}>Download</button>`
                : null}</td>
            </tr>`)}
          </tbody>
        </table>`}
  </div>`
}

/** What a turn did to the workspace. */
const ChangesView = ({ changes }: { changes: ReadonlyArray<Change> | null | undefined }) =>
  changes === undefined || changes === null
    ? null
    : html`<div class="changes">
        <p class="muted">${changes.length === 0 ? "No file changed." : `${changes.length} file${changes.length === 1 ? "" : "s"} changed`}</p>
        <ul>
          ${changes.map((c) => html`<li><span class=${`pill ${c.status}`}>${c.status}</span> <span class="mono">${c.path}</span> <span class="muted">${bytes(c.size)}</span></li>`)}
        </ul>
      </div>`

/** What the agent said in a message, for the live view: its text, else what kind of message it is. */
const describe = (message: any): { kind: string; text: string } => {
  const update = message?.params?.update
  if (message?.method === "session/update" && update !== undefined) {
    const text = update.content?.text ?? update.title ?? ""
    return { kind: update.sessionUpdate ?? "update", text: typeof text === "string" ? text : "" }
  }
  if (message?.method !== undefined) return { kind: message.method, text: "" }
  if (message?.result?.stopReason !== undefined) return { kind: "end", text: message.result.stopReason }
  return { kind: "answer", text: "" }
}

/** One turn: its messages as stored, or, while it runs, as they arrive. */
const TurnView = ({ sessionId, turn }: { sessionId: string; turn: Turn }) => {
  const [events, setEvents] = useState<ReadonlyArray<StreamEvent>>([])
  const [error, setError] = useState<string | undefined>(undefined)
  const running = turn.status === "queued" || turn.status === "running"
  useEffect(() => {
    const abort = new AbortController()
    setEvents([])
    follow(
      `/admin/sessions/${sessionId}/turns/${turn.turn_index}/stream`,
      (event) => setEvents((list) => [...list, event]),
      abort.signal
    ).catch((e) => abort.signal.aborted || setError(messageOf(e)))
    return () => abort.abort()
  }, [sessionId, turn.turn_index])
  const messages = events.filter((e) => e.event === "acp").map((e) => describe(e.data))
  const text = messages.filter((m) => m.kind === "agent_message_chunk").map((m) => m.text).join("")
  return html`<div class="turn">
    <p class="prompt"><span class="muted">prompt</span> ${turn.prompt}</p>
    <${Failure} error=${error} />
    <pre class="agent-text" aria-live=${running ? "polite" : "off"}>${text || (running ? "…" : "")}</pre>
    <${ChangesView} changes=${turn.changes} />
    <details>
      <summary>${messages.length} messages</summary>
      <ol class="events">
        ${events.map((e) => {
          const m = e.event === "acp" ? describe(e.data) : { kind: e.event, text: e.data?.message ?? e.data?.option_id ?? "" }
          return html`<li><span class="mono muted">${e.id}</span> <b>${m.kind}</b> ${m.text}</li>`
        })}
      </ol>
    </details>
  </div>`
}

const PermissionCard = ({ sessionId, request, done }: { sessionId: string; request: Permission; done: () => void }) => {
  const [error, setError] = useState<string | undefined>(undefined)
  const [busy, setBusy] = useState(false)
  const answer = (body: Record<string, unknown>) => {
    setBusy(true)
    call("POST", `/admin/sessions/${sessionId}/permissions/${request.request_id}`, body).then(
      () => done(),
      (e) => (setError(messageOf(e)), setBusy(false))
    )
  }
  const title = String(request.tool_call?.["title"] ?? request.elicitation?.message ?? request.kind)
  return html`<div class="permission" data-request=${request.request_id}>
    <p><b>${title}</b> <span class="muted">turn ${request.turn_index ?? "–"}; the gateway answers it at ${time(request.expires_at)} if nobody does</span></p>
    <div class="buttons">
      ${request.kind === "permission"
        ? request.options.map((o) => html`<button disabled=${busy} class=${o.kind.startsWith("allow") ? "allow" : "reject"}
            onClick=${() => answer({ option_id: o.option_id })}>${o.name}</button>`)
        : ["accept", "decline", "cancel"].map((action) => html`<button disabled=${busy} onClick=${() => answer({ action })}>${action}</button>`)}
    </div>
    <${Failure} error=${error} />
  </div>`
}

export const SessionPage = ({ id }: { id: string }) => {
  const { data, error, reload } = usePoll(() => call<Detail>("GET", `/admin/sessions/${id}`), 2000, [id])
  const [open, setOpen] = useState<number | undefined>(undefined)
  const [closing, setClosing] = useState<string | undefined>(undefined)
  if (data === undefined) return html`<${Failure} error=${error} /><p class="muted">Loading…</p>`
  const { session, turns, events, permissions } = data
  const last = turns.at(-1)?.turn_index
  const shown = open ?? last
  const close = () =>
    call("DELETE", `/admin/sessions/${id}`).then(reload, (e) => setClosing(messageOf(e)))
  return html`<section>
    <p><a href="#/sessions">← Sessions</a></p>
    <h2 class="mono">${session.session_id}</h2>
    <${Failure} error=${error ?? closing} />
    <dl class="facts">
      <dt>App</dt><dd>${session.app_name}</dd>
      <dt>Agent</dt><dd>${session.agent}${session.model === null ? "" : ` (${session.model})`}</dd>
      <dt>Status</dt><dd><span class=${`pill ${session.live ? "live" : session.status}`}>${session.live ? "live" : session.status}</span></dd>
      <dt>Permissions</dt><dd>${session.permission_mode}</dd>
      <dt>Created</dt><dd>${time(session.created_at)}</dd>
      <dt>Last turn</dt><dd>${time(session.last_turn_at)}</dd>
      ${Object.keys(session.meta).length === 0 ? null : html`<dt>Meta</dt><dd class="mono">${JSON.stringify(session.meta)}</dd>`}
    </dl>
    ${session.status === "open" ? html`<button class="reject" onClick=${close}>Close session</button>` : null}
    ${permissions.length === 0 ? null : html`<h3>Waiting on an answer</h3>
      ${permissions.map((p) => html`<${PermissionCard} key=${p.request_id} sessionId=${id} request=${p} done=${reload} />`)}`}
    <h3>Turns</h3>
    ${turns.length === 0 ? html`<p class="muted">No turn yet.</p>` : html`<table class="list">
      <thead><tr><th class="num">#</th><th>Status</th><th>Prompt</th><th class="num">Time</th><th class="num">Cost</th><th class="num">Changes</th></tr></thead>
      <tbody>
        ${turns.map((t) => html`<tr class=${`link${t.turn_index === shown ? " selected" : ""}`} onClick=${() => setOpen(t.turn_index)}>
          <td class="num">${t.turn_index}</td>
          <td><span class=${`pill ${t.status}`}>${t.status}</span></td>
          <td class="prompt-cell">${t.prompt}</td>
          <td class="num">${t.duration_ms === null ? "–" : `${(t.duration_ms / 1000).toFixed(1)} s`}</td>
          <td class="num">${t.usage.cost_usd === null ? "–" : usd(t.usage.cost_usd)}</td>
          <td class="num">${t.changes === undefined || t.changes === null ? "–" : t.changes.length}</td>
        </tr>`)}
      </tbody>
    </table>`}
    ${shown === undefined ? null : html`<h3>Turn ${shown}</h3>
      <${TurnView} key=${`${id}.${shown}`} sessionId=${id} turn=${turns.find((t) => t.turn_index === shown)!} />`}
    <h3>Files</h3>
    <${FilesView} sessionId=${id} turnCount=${session.turn_count} />
    <h3>Audit trail</h3>
    <${AuditTable} events=${events} />
  </section>`
}

export const AuditTable = ({ events, withSession = false }: { events: ReadonlyArray<AuditEvent & { session_id?: string; app_name?: string | null }>; withSession?: boolean }) =>
  html`<table class="list audit">
    <thead><tr><th>When</th>${withSession ? html`<th>App</th><th>Session</th>` : null}<th>Event</th><th>Detail</th></tr></thead>
    <tbody>
      ${events.map((e) => html`<tr>
        <td title=${time(e.at)}>${time(e.at)}</td>
        ${withSession ? html`<td>${e.app_name ?? "–"}</td><td><a class="mono" href=${`#/sessions/${e.session_id}`}>${e.session_id?.slice(0, 10)}…</a></td>` : null}
        <td><b>${e.event}</b></td>
        <td class="mono detail">${e.detail === null ? "" : JSON.stringify(e.detail)}</td>
      </tr>`)}
    </tbody>
  </table>`
