/**
 * A gateway cluster (issue 15; the `postgres` project only): real gateway processes on loopback,
 * each a node of one cluster over a throwaway PostgreSQL database and a shared workspace root.
 * Every process a test starts is SIGKILLed by pid when it ends, whatever happened.
 */
import { type AddressInfo, createServer } from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import { api, freePort, runGatewayToExit } from "./support/GatewayProcess.js"
import { postgres } from "./support/Ledgers.js"
import { agentLogFile, isAlive, scriptedAgents, startedPids } from "./support/ScriptedAgent.js"
import { createDatabase, pgQuery } from "./support/Postgres.js"
import {
  adminToken,
  type ClusterNode,
  clusterEnv,
  clusterStatus,
  startCluster,
  startNode,
  stopCluster,
  untilFormed
} from "./support/Cluster.js"
import { until } from "./support/Poll.js"
import { appName, appToken, otherApp, otherToken } from "./support/TestGateway.js"

const server = postgres!
let nodes: Array<ClusterNode> = []
afterEach(async () => {
  await stopCluster(nodes)
  nodes = []
})

/** Three nodes started together on a fresh database, running the scripted agent (its log at `log`). */
const threeNodes = async (extra: Record<string, string> = {}) => {
  const log = agentLogFile()
  const env = clusterEnv(await createDatabase(server), { CLAWDFORGE_AGENTS: scriptedAgents(log), ...extra })
  nodes = await startCluster(env, 3)
  await untilFormed(nodes[0]!, 3)
  return { env, log }
}

const turn = (node: ClusterNode, id: string, prompt: string) => api(node.gateway, "POST", `/sessions/${id}/turn`, { prompt })

/** `n` sessions created through `node`, one after the other: their ids. */
const createSessions = async (node: ClusterNode, n: number) => {
  const ids: Array<string> = []
  for (let i = 0; i < n; i++) {
    const created = await api(node.gateway, "POST", "/sessions", { agent: "scripted" })
    expect(created.status, JSON.stringify(created.body)).toBe(200)
    ids.push(created.body.session_id)
  }
  return ids
}

describe("a gateway cluster", () => {
  it("three nodes started together on an empty database: sessions created on one are turned through the others", async () => {
    const { log } = await threeNodes()
    const ids = await createSessions(nodes[0]!, 6)
    for (const [i, id] of ids.entries()) {
      for (let n = 1; n <= 3; n++) {
        const reply = await turn(nodes[(i + n) % 3]!, id, `echo turn ${n}`)
        expect(reply.status, JSON.stringify(reply.body)).toBe(200)
        expect(reply.body).toMatchObject({ ok: true, session_id: id, turn_index: n })
      }
    }
    // One live agent per session across the cluster; the sessions spread over the nodes.
    await new Promise((r) => setTimeout(r, 1_200))
    const status = await clusterStatus(nodes[1]!)
    expect(status.live_sessions).toBe(6)
    expect(startedPids(log)).toHaveLength(6)
    expect(status.nodes.filter((node) => node.live_sessions > 0).length, JSON.stringify(status.nodes)).toBeGreaterThan(1)
    // The operator's overview, through any node, adds up the cluster.
    for (const node of nodes) {
      const overview = (await api(node.gateway, "GET", "/admin/overview", undefined, adminToken)).body
      expect(overview).toMatchObject({ pool: { live: 6, capacity: status.capacity }, live_by_app: [{ app: appName, live_sessions: 6 }] })
      const listed = (await api(node.gateway, "GET", "/admin/sessions", undefined, adminToken)).body
      expect(listed.sessions.filter((session: any) => session.live)).toHaveLength(6)
    }
  }, 90_000)

  it("every session route works through any node: streams, queued turns, reads, cancel, PATCH, close", async () => {
    await threeNodes()
    const [id] = await createSessions(nodes[0]!, 1)
    const sse = async (node: ClusterNode, path: string, body?: unknown) => {
      const response = await fetch(`${node.gateway.url}${path}`, {
        method: body === undefined ? "GET" : "POST",
        headers: { authorization: `Bearer ${appToken}`, "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) })
      })
      return { status: response.status, text: await response.text() }
    }
    for (const [i, node] of nodes.entries()) {
      // A turn streamed through this node (its owner or not): every event, then done.
      const streamed = await sse(node, `/sessions/${id}/turn/stream`, { prompt: "chunks 3" })
      expect(streamed.status).toBe(200)
      const n = 2 * i + 1
      expect(streamed.text).toContain(`id: ${n}.1\n`)
      expect(streamed.text).toMatch(/event: done\nid: \d+\.\d+\ndata: \{"ok":true/)
      // A queued turn, then its stored+live stream and its reads through this node.
      const queued = await api(node.gateway, "POST", `/sessions/${id}/turns`, { prompt: "echo queued" })
      expect(queued).toMatchObject({ status: 202, body: { turn_index: n + 1, status: "queued" } })
      const followed = await sse(node, `/sessions/${id}/turns/${n + 1}/stream`)
      expect(followed.text).toContain("echo queued")
      expect(followed.text).toContain("event: done")
      expect((await api(node.gateway, "GET", `/sessions/${id}/turns/${n + 1}`)).body).toMatchObject({ status: "completed", text: "echo: echo queued" })
      expect((await api(node.gateway, "GET", `/sessions/${id}/turns`)).body).toMatchObject({ count: n + 1 })
      expect((await api(node.gateway, "GET", `/sessions/${id}/turns/99`)).status).toBe(404)
      expect((await api(node.gateway, "POST", `/sessions/${id}/cancel`)).body).toMatchObject({ ok: true, cancelled: false })
      expect((await api(node.gateway, "GET", `/sessions/${id}/permissions`)).body).toMatchObject({ ok: true, count: 0 })
    }
    // A running turn cancelled through another node than the one that queued it.
    const hanging = await api(nodes[1]!.gateway, "POST", `/sessions/${id}/turns`, { prompt: "hang" })
    const hangPath = `/sessions/${id}/turns/${hanging.body.turn_index}`
    await until("the hanging turn running", async () => (await api(nodes[2]!.gateway, "GET", hangPath)).body.status === "running")
    expect((await api(nodes[2]!.gateway, "POST", `/sessions/${id}/cancel`)).body).toEqual({ ok: true, cancelled: true })
    await until("the cancelled turn to end", async () => (await api(nodes[0]!.gateway, "GET", hangPath)).body.status !== "running")
    expect((await api(nodes[0]!.gateway, "GET", hangPath)).body).toMatchObject({ status: "cancelled", stop_reason: "cancelled" })
    // Ask mode: the request is listed through one node and answered through another.
    const ask = await api(nodes[0]!.gateway, "POST", "/sessions", { agent: "scripted", permission_mode: "ask" })
    const asked = await api(nodes[1]!.gateway, "POST", `/sessions/${ask.body.session_id}/turns`, { prompt: "permission" })
    let pending: any
    await until("the ask-mode request listed", async () => (pending = (await api(nodes[2]!.gateway, "GET", `/sessions/${ask.body.session_id}/permissions`)).body).count === 1)
    const answered = await api(
      nodes[1]!.gateway,
      "POST",
      `/sessions/${ask.body.session_id}/permissions/${pending.permissions[0].request_id}`,
      { option_id: "allow" }
    )
    expect(answered.body).toEqual({ ok: true })
    const askPath = `/sessions/${ask.body.session_id}/turns/${asked.body.turn_index}`
    await until("the answered turn completed", async () => (await api(nodes[2]!.gateway, "GET", askPath)).body.status === "completed")
    expect((await api(nodes[2]!.gateway, "GET", askPath)).body.text).toContain("permission: allow")
    // An operator answers through the admin API of two nodes (at least one does not own the session):
    // the audit trail says `admin` whichever node runs the agent.
    const sid = ask.body.session_id
    for (const node of [nodes[0]!, nodes[2]!]) {
      const again = await api(nodes[1]!.gateway, "POST", `/sessions/${sid}/turns`, { prompt: "permission" })
      let held: any
      await until("the operator's request listed", async () => (held = (await api(node.gateway, "GET", `/sessions/${sid}/permissions`)).body).count === 1)
      // The operator's views through this node show it too, wherever the agent runs.
      const requestId = held.permissions[0].request_id
      expect((await api(node.gateway, "GET", `/admin/sessions/${sid}`, undefined, adminToken)).body)
        .toMatchObject({ session: { pending_permissions: 1 }, permissions: [{ request_id: requestId }] })
      // The lists across sessions are made from the nodes' heartbeats: a second or so behind.
      let listed: any
      await until("the request in /admin/permissions", async () => (listed = (await api(node.gateway, "GET", "/admin/permissions", undefined, adminToken)).body).permissions
        ?.some((request: any) => request.request_id === requestId))
      expect(listed.permissions).toMatchObject([{ session_id: sid, request_id: requestId }])
      await until("the session live in the admin view", async () => (await api(node.gateway, "GET", `/admin/sessions/${sid}`, undefined, adminToken)).body.session.live)
      const path = `/admin/sessions/${sid}/permissions/${held.permissions[0].request_id}`
      expect((await api(node.gateway, "POST", path, { option_id: "reject" }, adminToken)).body).toEqual({ ok: true })
      const againPath = `/sessions/${sid}/turns/${again.body.turn_index}`
      await until("the turn answered by the operator completed", async () => (await api(node.gateway, "GET", againPath)).body.status === "completed")
    }
    const trail = (await api(nodes[1]!.gateway, "GET", `/admin/sessions/${sid}`, undefined, adminToken)).body.events
    const answers = trail.filter((e: any) => e.event === "permission_answer").map((e: any) => e.detail.by)
    expect(answers).toEqual(["caller", "admin", "admin"])
    expect((await api(nodes[1]!.gateway, "POST", `/sessions/nope-nope-nope-nope/turn`, { prompt: "x" })).status).toBe(404)
    expect((await api(nodes[2]!.gateway, "PATCH", `/sessions/${id}`, { model: "no-such-model" })).status).toBe(400)
    expect((await api(nodes[2]!.gateway, "DELETE", `/sessions/${id}`)).body).toEqual({ ok: true })
    expect((await api(nodes[1]!.gateway, "DELETE", `/sessions/${id}`)).body).toEqual({ ok: true, already_closed: true })
    expect((await turn(nodes[0]!, id!, "echo late")).status).toBe(410)
  }, 90_000)

  it("a node SIGKILLed: every session answers its next turn through a survivor within 30 s, resumed, turn_index going on", async () => {
    const { env, log } = await threeNodes()
    const ids = await createSessions(nodes[0]!, 9)
    for (const id of ids) expect((await turn(nodes[1]!, id, "echo one")).body).toMatchObject({ turn_index: 1 })
    await new Promise((r) => setTimeout(r, 1_200))
    const before = await clusterStatus(nodes[0]!)
    const victim = nodes.reduce((most, node) =>
      before.nodes.find((n) => n.node === node.node)!.live_sessions > before.nodes.find((n) => n.node === most.node)!.live_sessions
        ? node
        : most
    )
    const lost = before.nodes.find((n) => n.node === victim.node)!.live_sessions
    expect(lost).toBeGreaterThan(0)
    const survivors = nodes.filter((node) => node !== victim)
    // Every session is in a turn when the node dies, its caller waiting on a survivor: the dead
    // node's turns never end there, and their callers are answered all the same.
    const waiting = ids.map((id) =>
      fetch(`${survivors[0]!.gateway.url}/sessions/${id}/turn`, {
        method: "POST",
        headers: { authorization: `Bearer ${appToken}`, "content-type": "application/json" },
        body: JSON.stringify({ prompt: "sleep 3000" }),
        signal: AbortSignal.timeout(40_000)
      }).then(async (response) => ({ status: response.status, body: await response.json() as any }))
        .catch((error) => ({ status: 0, body: String(error) }))
    )
    await new Promise((r) => setTimeout(r, 500))
    const killedAt = Date.now()
    victim.gateway.child.kill("SIGKILL")
    const answered = await Promise.all(ids.map(async (id, i) => {
      for (let attempt = 0;; attempt++) {
        const via = survivors[(i + attempt) % 2]!
        const reply = await fetch(`${via.gateway.url}/sessions/${id}/turn`, {
          method: "POST",
          headers: { authorization: `Bearer ${appToken}`, "content-type": "application/json" },
          body: JSON.stringify({ prompt: "history" }),
          signal: AbortSignal.timeout(Math.max(1, killedAt + 30_000 - Date.now()))
        }).then(async (response) => ({ status: response.status, body: await response.json() as any }))
          .catch((error) => ({ status: 0, body: String(error) }))
        if (reply.status === 200) return { id, ms: Date.now() - killedAt, body: reply.body }
        if (Date.now() - killedAt > 30_000) throw new Error(`session ${id} did not answer within 30 s: ${JSON.stringify(reply)}`)
        await new Promise((r) => setTimeout(r, 100))
      }
    }))
    const failoverMs = Math.max(...answered.map((a) => a.ms))
    console.log(`failover: ${lost} session(s) on the SIGKILLed node; every one of the 9 sessions answered within ${failoverMs} ms of the SIGKILL (per session: ${answered.map((a) => a.ms).join(", ")} ms)`)
    expect(failoverMs).toBeLessThan(30_000)
    for (const { body } of answered) {
      expect(body).toMatchObject({ ok: true, turn_index: 3 })
      // The agent (started again on a survivor, or still running there) knows the session's earlier prompts.
      expect(JSON.stringify(body.events)).toContain("echo one")
    }
    const inFlight = await Promise.all(waiting)
    console.log(`callers waiting when the node died: ${JSON.stringify(inFlight.map((r) => r.status === 200 ? 200 : [r.status, r.body?.error ?? r.body]))}`)
    expect(inFlight.filter((r) => r.status === 200)).toHaveLength(9 - lost)
    // Theirs are told the turn was lost with its node (the cluster sends the message again to the
    // new owner, which refuses to run it a second time).
    for (const reply of inFlight.filter((r) => r.status !== 200)) {
      expect(reply).toMatchObject({ status: 502, body: { error: "agent_failed" } })
    }
    // The dead node's running turns are interrupted; the others completed; nothing is missing.
    const turns = await pgQuery(env.CLAWDFORGE_DB, "SELECT session_id, turn_index, status FROM turns WHERE turn_index = 2")
    expect(turns).toHaveLength(9)
    expect(turns.filter((t) => t.status === "interrupted")).toHaveLength(lost)
    expect(turns.filter((t) => t.status === "completed")).toHaveLength(9 - lost)
    // Its sessions' agents started again on the survivors (loaded, not new): one more start each.
    expect(startedPids(log)).toHaveLength(9 + lost)
    // Once its shards have settled on the survivors (a shard moving again stops its agents there until
    // their next turn), one more turn each: then every session has its one live agent. Heartbeats are
    // a second apart (later under load), and the dead node is listed until its last one is 5 s old
    // (with the sessions it held then): the counts catch up within seconds.
    for (const [i, id] of ids.entries()) {
      expect((await turn(survivors[i % 2]!, id, "echo settled")).status).toBe(200)
    }
    const alive = survivors.map((n) => n.node).sort().join(",")
    let after = await clusterStatus(survivors[0]!)
    await until("the survivors alone listed, with the 9 live sessions", async () => {
      after = await clusterStatus(survivors[0]!)
      return after.nodes.map((n) => n.node).sort().join(",") === alive && after.live_sessions === 9
    }, 20_000)
    expect(after.live_sessions).toBe(9)
  }, 120_000)

  it("a node killed while it holds an Idempotency-Key: the retry through another node runs once its holder is silent", async () => {
    await threeNodes()
    const [id] = await createSessions(nodes[0]!, 1)
    const send = (node: ClusterNode) =>
      fetch(`${node.gateway.url}/sessions/${id}/turn`, {
        method: "POST",
        headers: { authorization: `Bearer ${appToken}`, "content-type": "application/json", "idempotency-key": "retry-after-node-loss" },
        body: JSON.stringify({ prompt: "sleep 3000" }),
        signal: AbortSignal.timeout(45_000)
      })
    // The first attempt is taken by one node, which dies with the key held (and maybe the agent).
    void send(nodes[1]!).catch(() => undefined)
    const running = async () => (await api(nodes[0]!.gateway, "GET", `/sessions/${id}/turns/1`)).body.status === "running"
    await until("the first attempt's turn running", running)
    nodes[1]!.gateway.child.kill("SIGKILL")
    const killedAt = Date.now()
    // Before, the retry waited for the dead node's key until it expired (a day by default).
    const retry = await send(nodes[2]!)
    expect(retry.status).toBe(200)
    expect(await retry.json()).toMatchObject({ ok: true, session_id: id, stop_reason: "end_turn" })
    expect(Date.now() - killedAt).toBeLessThan(30_000)
    // A second retry gets the same reply, replayed.
    const replayed = await send(nodes[0]!)
    expect(replayed.headers.get("idempotent-replayed")).toBe("true")
  }, 90_000)

  it("a node joining takes shards: their sessions move with their next turn, one live agent each", async () => {
    const log = agentLogFile()
    const env = clusterEnv(await createDatabase(server), { CLAWDFORGE_AGENTS: scriptedAgents(log) })
    nodes = await startCluster(env, 2)
    await untilFormed(nodes[0]!, 2)
    const ids = await createSessions(nodes[0]!, 8)
    for (const id of ids) expect((await turn(nodes[1]!, id, "echo one")).body).toMatchObject({ turn_index: 1 })
    // A long turn runs in every session as the node joins: a session that moves is stopped on its
    // old node, and its turn is `interrupted` (the gateway stopped it), never `cancelled`.
    for (const id of ids) {
      expect((await api(nodes[1]!.gateway, "POST", `/sessions/${id}/turns`, { prompt: "sleep 60000" })).status).toBe(202)
    }
    nodes.push(await startNode(env))
    const formed = await untilFormed(nodes[0]!, 3)
    await new Promise((r) => setTimeout(r, 1_500))
    for (const id of ids) {
      const long = (await api(nodes[0]!.gateway, "GET", `/sessions/${id}/turns/2`)).body
      expect(["running", "interrupted"], JSON.stringify(long)).toContain(long.status)
      await api(nodes[2]!.gateway, "POST", `/sessions/${id}/cancel`)
    }
    for (const [i, id] of ids.entries()) {
      const reply = await turn(nodes[i % 3]!, id, "history")
      expect(reply.body, JSON.stringify(reply.body)).toMatchObject({ ok: true, turn_index: 3 })
      expect(JSON.stringify(reply.body.events)).toContain("echo one")
    }
    await new Promise((r) => setTimeout(r, 1_500))
    const status = await clusterStatus(nodes[2]!)
    expect(status.live_sessions, JSON.stringify(formed.nodes)).toBe(8)
    // The moved sessions' agents stopped on their old node: as many alive as there are sessions.
    expect(startedPids(log).filter(isAlive)).toHaveLength(8)
  }, 90_000)

  it("the pool cap is exact across nodes under racing creates: 503 pool_full only once every node is full", async () => {
    await threeNodes({ CLAWDFORGE_MAX_LIVE_SESSIONS: "2" })
    const replies = await Promise.all(
      Array.from({ length: 14 }, (_, i) => api(nodes[i % 3]!.gateway, "POST", "/sessions", { agent: "scripted" }))
    )
    expect(replies.filter((r) => r.status === 200), JSON.stringify(replies.map((r) => r.body))).toHaveLength(6)
    const refused = replies.filter((r) => r.status !== 200)
    expect(refused).toHaveLength(8)
    for (const reply of refused) expect(reply).toMatchObject({ status: 503, body: { error: "pool_full", capacity: 6 } })
    await new Promise((r) => setTimeout(r, 1_200))
    const status = await clusterStatus(nodes[2]!)
    expect(status.nodes.map((n) => n.live_sessions)).toEqual([2, 2, 2])
    // A slot freed on any node is found by a create through any other.
    const first = replies.find((r) => r.status === 200)!.body.session_id
    expect((await api(nodes[1]!.gateway, "DELETE", `/sessions/${first}`)).status).toBe(200)
    expect((await api(nodes[2]!.gateway, "POST", "/sessions", { agent: "scripted" })).status).toBe(200)
    expect((await api(nodes[0]!.gateway, "POST", "/sessions", { agent: "scripted" })).status).toBe(503)
  }, 90_000)

  it("per-app limits hold across the nodes: live sessions, turns per minute and the day's budget, whichever node is asked", async () => {
    await threeNodes({
      CLAWDFORGE_APP_LIMITS: JSON.stringify({
        [appName]: { max_sessions: 2, turns_per_minute: 3 },
        [otherApp]: { daily_cost_usd: 0.5 }
      })
    })
    // Two sessions through two nodes; every further create, through any node, is refused, wherever
    // its session would have landed (a node on its own would have counted only its own sessions).
    const [a] = await createSessions(nodes[0]!, 1)
    const [b] = await createSessions(nodes[1]!, 1)
    for (let i = 0; i < 6; i++) {
      const refused = await api(nodes[i % 3]!.gateway, "POST", "/sessions", { agent: "scripted" })
      expect(refused, JSON.stringify(refused.body)).toMatchObject({ status: 429, body: { ok: false, error: "app_session_limit" } })
    }
    // A closed one frees its place for a create through another node.
    expect((await api(nodes[2]!.gateway, "DELETE", `/sessions/${a}`)).status).toBe(200)
    const [c] = await createSessions(nodes[2]!, 1)

    // Three turns a minute, across the nodes: the fourth is refused, with when to retry.
    for (const [i, id] of [b, c, b].entries()) {
      const reply = await turn(nodes[i]!, id!, "echo counted")
      expect(reply.status, JSON.stringify(reply.body)).toBe(200)
    }
    const fourth = await fetch(`${nodes[1]!.gateway.url}/sessions/${c}/turn`, {
      method: "POST",
      headers: { authorization: `Bearer ${appToken}`, "content-type": "application/json" },
      body: JSON.stringify({ prompt: "echo one too many" })
    })
    expect(fourth.status).toBe(429)
    expect(await fourth.json()).toMatchObject({ ok: false, error: "rate_limited", turns_per_minute: 3 })
    expect(Number(fourth.headers.get("retry-after"))).toBeGreaterThan(0)
    expect(fourth.headers.get("ratelimit-remaining")).toBe("0")
    const limits = await api(nodes[0]!.gateway, "GET", "/limits")
    expect(limits.body).toMatchObject({ use: { live_sessions: 2, turns_this_minute: 3 } })

    // The other app is not held by any of that; its budget is crossed by a turn that completes,
    // and then no node lets it start another turn or a session.
    const created = await api(nodes[0]!.gateway, "POST", "/sessions", { agent: "scripted" }, otherToken)
    expect(created.status, JSON.stringify(created.body)).toBe(200)
    const spend = await api(nodes[1]!.gateway, "POST", `/sessions/${created.body.session_id}/turn`, { prompt: "cost 0.6" }, otherToken)
    expect(spend).toMatchObject({ status: 200, body: { ok: true, usage: { cost_usd: 0.6 } } })
    for (const node of nodes) {
      const turnRefused = await api(node.gateway, "POST", `/sessions/${created.body.session_id}/turn`, { prompt: "echo" }, otherToken)
      expect(turnRefused).toMatchObject({ status: 429, body: { error: "budget_exhausted" } })
    }
    const createRefused = await api(nodes[2]!.gateway, "POST", "/sessions", { agent: "scripted" }, otherToken)
    expect(createRefused).toMatchObject({ status: 429, body: { error: "budget_exhausted" } })
    expect((await api(nodes[2]!.gateway, "GET", "/limits", undefined, otherToken)).body).toMatchObject({
      use: { live_sessions: 1, cost_today_usd: 0.6 }
    })
  }, 90_000)

  it("the sweeper runs once per cluster: one sweep per idle session, its agent stopped on its node", async () => {
    const { env } = await threeNodes({ CLAWDFORGE_SESSION_TTL_SECS: "2", CLAWDFORGE_SWEEP_INTERVAL_SECS: "1" })
    const ids = (await Promise.all(nodes.map((node) => createSessions(node, 2)))).flat()
    const deadline = Date.now() + 20_000
    for (;;) {
      const status = await clusterStatus(nodes[0]!)
      if (status.live_sessions === 0) break
      if (Date.now() > deadline) throw new Error(`agents still live: ${JSON.stringify(status.nodes)}`)
      await new Promise((r) => setTimeout(r, 250))
    }
    // A few more sweeps pass: still one each.
    await new Promise((r) => setTimeout(r, 2_500))
    const sweeps = await pgQuery(env.CLAWDFORGE_DB, "SELECT session_id, count(*)::int AS n FROM session_events WHERE event = 'sweep_close' GROUP BY session_id")
    expect(sweeps.map((s) => s.n)).toEqual(ids.map(() => 1))
    expect(new Set(sweeps.map((s) => s.session_id))).toEqual(new Set(ids))
    for (const id of ids) expect((await api(nodes[1]!.gateway, "GET", `/sessions/${id}`)).body).toMatchObject({ status: "closed" })
  }, 90_000)

  it("GET /cluster needs the admin token: an app token is 401; without the variable the route is 404", async () => {
    const db = await createDatabase(server)
    nodes = [await startNode(clusterEnv(db))]
    const url = `${nodes[0]!.gateway.url}/cluster`
    const anonymous = await fetch(url)
    expect(anonymous.status).toBe(401)
    expect(anonymous.headers.get("www-authenticate")).toBe(`Bearer realm="clawdforge-admin"`)
    const app = await fetch(url, { headers: { authorization: `Bearer ${appToken}` } })
    expect(app.status).toBe(401)
    expect(await app.json()).toMatchObject({ ok: false, error: "unauthorized" })
    const ok = await fetch(url, { headers: { authorization: `Bearer ${adminToken}` } })
    expect(ok.status).toBe(200)
    expect(await ok.json()).toMatchObject({ ok: true, nodes: [{ node: nodes[0]!.node, capacity: 8 }] })
    await stopCluster(nodes)
    nodes = [await startNode(clusterEnv(db, { CLAWDFORGE_ADMIN_TOKEN: "" }))]
    const off = await fetch(`${nodes[0]!.gateway.url}/cluster`, { headers: { authorization: `Bearer ${adminToken}` } })
    expect(off.status).toBe(404)
    expect(await off.json()).toMatchObject({ ok: false, error: "not_found" })
  }, 60_000)

  it("with a SQLite ledger, start-up stops with one line naming CLAWDFORGE_CLUSTER", async () => {
    const { code, stderr } = await runGatewayToExit({ CLAWDFORGE_CLUSTER: "true", CLAWDFORGE_PORT: String(await freePort()) })
    expect(code).toBe(1)
    const lines = stderr.split("\n").filter((l) => l.trim().length > 0)
    expect(lines, stderr).toHaveLength(1)
    expect(lines[0]).toContain("CLAWDFORGE_CLUSTER")
  })

  it("a node port another process holds stops start-up with one line naming CLAWDFORGE_NODE_PORT", async () => {
    const holder = createServer()
    await new Promise<void>((done) => holder.listen(0, "127.0.0.1", done))
    try {
      const port = (holder.address() as AddressInfo).port
      const env = clusterEnv(await createDatabase(server), { CLAWDFORGE_NODE_HOST: "127.0.0.1", CLAWDFORGE_NODE_PORT: String(port) })
      const { code, stderr } = await runGatewayToExit({ ...env, CLAWDFORGE_PORT: String(await freePort()) })
      expect(code).toBe(1)
      const lines = stderr.split("\n").filter((l) => l.trim().length > 0)
      expect(lines, stderr).toEqual([`clawdforge: CLAWDFORGE_NODE_PORT: cannot listen on 127.0.0.1:${port} (listen EADDRINUSE: address already in use 127.0.0.1:${port})`])
    } finally {
      holder.close()
    }
  })
})
