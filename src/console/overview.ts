/** The overview: pool use against capacity, live sessions by app, turns per minute, cost today. */
import { call } from "./api.js"
import { BarChart, Failure, Gauge, html, usd, usePoll } from "./ui.js"

interface Overview {
  readonly pool: { readonly live: number; readonly capacity: number }
  readonly live_by_app: ReadonlyArray<{ readonly app: string; readonly live_sessions: number }>
  readonly turns_last_minute: number
  readonly minutes: ReadonlyArray<{ readonly at: number; readonly turns: number; readonly cost_usd: number }>
  readonly cost_today_usd: number
  readonly turns_today: number
  readonly pending_permissions: number
  readonly apps: number
}

const minuteLabel = (at: number) => new Date(at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })

export const OverviewPage = () => {
  const { data, error } = usePoll(() => call<Overview>("GET", "/admin/overview"), 5000)
  if (data === undefined) return html`<${Failure} error=${error} /><p class="muted">Loading…</p>`
  const busiest = Math.max(1, ...data.live_by_app.map((a) => a.live_sessions))
  return html`<section>
    <h2>Overview</h2>
    <${Failure} error=${error} />
    <div class="cards">
      <div class="card">
        <h3>Pool</h3>
        <p class="big">${data.pool.live} <span class="muted">/ ${data.pool.capacity}</span></p>
        <${Gauge} value=${data.pool.live} max=${data.pool.capacity} label="live agents of the pool's capacity" warn=${true} />
      </div>
      <div class="card">
        <h3>Turns, last minute</h3>
        <p class="big">${data.turns_last_minute}</p>
        <p class="muted">${data.turns_today} today</p>
      </div>
      <div class="card">
        <h3>Cost today</h3>
        <p class="big">${usd(data.cost_today_usd)}</p>
        <p class="muted">since 00:00 UTC</p>
      </div>
      <div class="card">
        <h3>Waiting on an answer</h3>
        <p class="big">${data.pending_permissions}</p>
        <p class="muted">${data.apps} active apps</p>
      </div>
    </div>
    <div class="cards">
      <div class="card wide">
        <h3>Turns per minute, last 30 minutes</h3>
        <${BarChart}
          title="turns per minute"
          values=${data.minutes.map((m) => m.turns)}
          labels=${data.minutes.map((m) => minuteLabel(m.at))}
        />
        <p class="muted axis-labels"><span>${minuteLabel(data.minutes[0]?.at ?? 0)}</span><span>now</span></p>
      </div>
      <div class="card wide">
        <h3>Live sessions by app</h3>
        ${data.live_by_app.length === 0
          ? html`<p class="muted">No live session.</p>`
          : html`<table class="bars">
              ${data.live_by_app.map((a) => html`<tr>
                <th scope="row">${a.app}</th>
                <td><${Gauge} value=${a.live_sessions} max=${busiest} label=${`${a.app}: live sessions`} /></td>
                <td class="num">${a.live_sessions}</td>
              </tr>`)}
            </table>`}
      </div>
    </div>
  </section>`
}
