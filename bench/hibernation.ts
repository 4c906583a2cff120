/**
 * What does hibernation (`CLAWDFORGE_AGENT_IDLE_SECS`) buy and cost? A gateway with a short idle
 * time (2 s) opens 20 sessions of the real Claude adapter one after another (each holds its process
 * tree, about 400 MB, until it goes idle); once every one has hibernated, the memory still held by
 * the gateway's agents is their process trees' RSS summed. Then the price: the first turn of a demo
 * agent session after it hibernated (the agent started again in its sandbox, `session/load`, the
 * prompt), against a turn of a live one.
 */
import { type Answer, type Bench, ms, type Question, ratio } from "./support/bench.js"
import { claudeAdapterBin, claudeAgents } from "../test/support/ClaudeAdapter.js"
import { type ClawdforgeGateway, closeSession, startClawdforge, stopGateway, turn } from "./support/gateways.js"
import { expectOk } from "./support/http.js"
import { noteAgentsOf, sleep, vmRssKb } from "./support/processes.js"
import { descendantsOf, treeMemoryKb } from "./support/processTree.js"
import { mapLimit, now, round, summary } from "./support/stats.js"

const idleSecs = 2
const realSessions = 20
const demoSessions = 10

/** The RSS of every process the gateway started (its agents' trees, sandboxes included), in MB. */
const agentsRssMb = (gateway: ClawdforgeGateway) => round(treeMemoryKb(descendantsOf(gateway.pid)).rssKb / 1024, 1)

/** Waits until none of `ids` is live (each hibernated), at most `ms`. */
const untilHibernated = async (gateway: ClawdforgeGateway, ids: ReadonlyArray<string>, ms: number) => {
  const deadline = Date.now() + ms
  for (;;) {
    const listed = expectOk(await gateway.call("GET", "/sessions?status=open&limit=100"), "list").sessions as Array<any>
    const live = listed.filter((s) => ids.includes(s.session_id) && s.live === true).length
    if (live === 0) return
    if (Date.now() > deadline) throw new Error(`${live} session(s) still live after ${ms} ms`)
    await sleep(100)
  }
}

/** Real adapter sessions opened one by one; the largest agents' RSS seen, and what is held once all hibernated. */
const realAdapter = async (bench: Bench) => {
  const bin = claudeAdapterBin(bench.note)
  const gateway = await startClawdforge({
    env: { CLAWDFORGE_AGENT_IDLE_SECS: String(idleSecs), CLAWDFORGE_AGENTS: claudeAgents(bin) }
  })
  const ids: Array<string> = []
  try {
    let peakMb = 0
    const creates: Array<number> = []
    for (let i = 0; i < realSessions; i++) {
      const t0 = now()
      const reply = await gateway.call("POST", "/sessions", { agent: "claude" })
      creates.push(now() - t0)
      ids.push(expectOk(reply, "claude create").session_id as string)
      noteAgentsOf(gateway.pid)
      peakMb = Math.max(peakMb, agentsRssMb(gateway))
    }
    await untilHibernated(gateway, ids, (idleSecs + 30) * 1000)
    // The stopped trees' last processes exit within moments of the hibernation.
    await sleep(500)
    const heldMb = agentsRssMb(gateway)
    const gatewayMb = round(vmRssKb(gateway.pid) / 1024, 1)
    const oneLiveMb = await (async () => {
      // One session's tree as it runs: woken by a turn (which asks for authentication: a 502).
      await gateway.call("POST", `/sessions/${ids[0]}/turn`, { prompt: "hello" })
      return agentsRssMb(gateway)
    })()
    return { sessions: realSessions, idleSecs, heldMb, gatewayMb, peakMb, oneLiveMb, create: summary(creates) }
  } finally {
    await mapLimit(ids, 5, (id) => closeSession(gateway, id))
    await stopGateway(gateway)
  }
}

/** Demo agent sessions: a turn of a live one, then the first turn after each hibernated. */
const firstTurnAfterHibernation = async () => {
  const gateway = await startClawdforge({ env: { CLAWDFORGE_AGENT_IDLE_SECS: String(idleSecs) } })
  const ids: Array<string> = []
  try {
    // Its creates, timed: a woken agent starts as a created one does, under the same load.
    const creates: Array<number> = []
    for (let i = 0; i < demoSessions; i++) {
      const t0 = now()
      const reply = await gateway.call("POST", "/sessions", { agent: "echo" })
      creates.push(now() - t0)
      ids.push(expectOk(reply, "create").session_id as string)
      noteAgentsOf(gateway.pid)
    }
    const live: Array<number> = []
    for (const id of ids) {
      await turn(gateway, id)
      const t0 = now()
      await turn(gateway, id)
      live.push(now() - t0)
    }
    await untilHibernated(gateway, ids, (idleSecs + 30) * 1000)
    const woken: Array<number> = []
    for (const id of ids) {
      const t0 = now()
      const reply = await turn(gateway, id, "history")
      woken.push(now() - t0)
      noteAgentsOf(gateway.pid)
      if (reply.turn_index !== 3) throw new Error(`turn_index ${reply.turn_index} after hibernation, expected 3`)
    }
    return { sessions: demoSessions, create: summary(creates), live: summary(live), woken: summary(woken) }
  } finally {
    await mapLimit(ids, 5, (id) => closeSession(gateway, id))
    await stopGateway(gateway)
  }
}

export const hibernation: Question = {
  name: "hibernation",
  run: async (bench: Bench): Promise<Answer> => {
    const real = await realAdapter(bench)
    const demo = await firstTurnAfterHibernation()
    return {
      results: { real, demo },
      rows: [
        {
          metric: "RSS of 20 idle real sessions, MB",
          gateway: String(real.heldMb),
          target: "< 1024 MB",
          pass: real.heldMb < 1024,
          note: `agents' trees once hibernated after ${idleSecs} s idle (the gateway itself ${real.gatewayMb} MB); ` +
            `peak ${real.peakMb} MB while creating, one woken ${real.oneLiveMb} MB, ` +
            `create p50 ${ms(real.create.p50)} ms (claude-agent-acp, no credentials)`
        },
        {
          metric: "first turn after hibernation ms",
          gateway: ms(demo.woken.p50),
          direct: `${ms(demo.create.p50)} create`,
          ratio: ratio(demo.woken.p50, demo.create.p50, "create"),
          target: "< 300 ms",
          pass: demo.woken.p50 < 300,
          note: `p99 ${ms(demo.woken.p99)}; a live turn p50 ${ms(demo.live.p50)} ms; demo agent, ${demo.sessions} sessions, session/load`
        }
      ]
    }
  }
}
