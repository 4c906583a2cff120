/**
 * What does the sandbox cost? Two fresh clawdforge gateways in the same run, one started with
 * `CLAWDFORGE_SANDBOX=bwrap` and one with `off` (set explicitly: the default, `auto`, would depend on
 * the machine), with cgroups alike. The sandbox should cost at spawn (bwrap's namespaces and mounts)
 * and not per turn (the agent's stdio pipes are the same), so: create latency, sequential turns and
 * the gateway's CPU per turn (one session, then 10 busy at once), and the idle memory of one agent's
 * whole process tree. Creates, turns and rounds of parallel turns alternate between the two gateways,
 * so that the load of a shared 2-core machine falls on both alike. Without bubblewrap the rows say
 * so and the question passes on.
 */
import { type Answer, type Bench, ms, type Question, ratio, type Row } from "./support/bench.js"
import { type ClawdforgeGateway, closeSession, createSession, startClawdforge, stopGateway, turn } from "./support/gateways.js"
import { expectOk } from "./support/http.js"
import { childPidsOf, cpuMsOf, noteAgentsOf, sleep } from "./support/processes.js"
import { treeCpuMs, treeMemoryKb, treeOf, type TreeProcess } from "./support/processTree.js"
import { mapLimit, median, now, round, summary } from "./support/stats.js"

interface Side {
  readonly mode: "bwrap" | "off"
  readonly gateway: ClawdforgeGateway
}

/** Runs `f` on both sides `rounds` times, the first side alternating, so neither always goes first. */
const alternate = async (rounds: number, sides: readonly [Side, Side], f: (side: Side) => Promise<void>) => {
  for (let i = 0; i < rounds; i++) {
    for (const side of i % 2 === 0 ? sides : [sides[1], sides[0]]) await f(side)
  }
}

/** The create's HTTP round trip only: noting the agent's pid and closing the session come after. */
const timedCreate = async (gateway: ClawdforgeGateway) => {
  const t0 = now()
  const reply = await gateway.call("POST", "/sessions", { agent: "echo" })
  const elapsed = now() - t0
  noteAgentsOf(gateway.pid)
  await closeSession(gateway, expectOk(reply, `${gateway.name} create`).session_id as string)
  return elapsed
}

/**
 * Creates, one on each gateway in turn. Besides each side's p50, the median of the differences within
 * each pair (made seconds apart), which a machine whose load drifts shifts less than the p50s.
 */
const creates = async (sides: readonly [Side, Side], warmup: number, count: number) => {
  const samples = { bwrap: [] as Array<number>, off: [] as Array<number> }
  let calls = 0
  await alternate(warmup + count, sides, async (side) => {
    const elapsed = await timedCreate(side.gateway)
    if (calls++ >= 2 * warmup) samples[side.mode].push(elapsed)
  })
  const pairedExtra = median(samples.bwrap.map((bwrap, i) => bwrap - samples.off[i]!))
  return { bwrap: summary(samples.bwrap), off: summary(samples.off), pairedExtraMs: round(pairedExtra) }
}

/** One session and the processes it added under the gateway: its agent, and bwrap's when sandboxed. */
const openSession = async (gateway: ClawdforgeGateway) => {
  const before = new Set(childPidsOf(gateway.pid))
  const id = await createSession(gateway)
  const tree: ReadonlyArray<TreeProcess> = childPidsOf(gateway.pid).filter((pid) => !before.has(pid)).flatMap(treeOf)
  return { id, tree }
}

/**
 * Sequential turns, one on each gateway in turn: latency, and the CPU the gateway process and the
 * agent's processes spent per turn (each gateway works only for its own turns, so its CPU over the
 * whole run is its own).
 */
const sequentialTurns = async (
  sessions: Record<Side["mode"], { readonly id: string; readonly tree: ReadonlyArray<TreeProcess> }>,
  sides: readonly [Side, Side],
  warmup: number,
  count: number
) => {
  const samples = { bwrap: [] as Array<number>, off: [] as Array<number> }
  await alternate(warmup, sides, ({ mode, gateway }) => turn(gateway, sessions[mode].id))
  const cpu = () => ({
    bwrap: { gateway: cpuMsOf(sides[0].gateway.pid), agent: treeCpuMs(sessions.bwrap.tree) },
    off: { gateway: cpuMsOf(sides[1].gateway.pid), agent: treeCpuMs(sessions.off.tree) }
  })
  const cpu0 = cpu()
  await alternate(count, sides, async ({ mode, gateway }) => {
    const t0 = now()
    await turn(gateway, sessions[mode].id)
    samples[mode].push(now() - t0)
  })
  const cpu1 = cpu()
  const of = (mode: Side["mode"]) => ({
    ...summary(samples[mode]),
    gatewayCpuMsPerTurn: round((cpu1[mode].gateway - cpu0[mode].gateway) / count),
    agentCpuMsPerTurn: round((cpu1[mode].agent - cpu0[mode].agent) / count)
  })
  return { turns: count, bwrap: of("bwrap"), off: of("off") }
}

/** The gateway's CPU per turn with several sessions busy at once (as the cpu question), rounds alternating. */
const parallelCpu = async (sides: readonly [Side, Side], sizes: Bench["sizes"]) => {
  const n = sizes.sandboxCpuSessions
  const ids = {
    bwrap: await mapLimit(Array.from({ length: n }), 5, () => createSession(sides[0].gateway)),
    off: await mapLimit(Array.from({ length: n }), 5, () => createSession(sides[1].gateway))
  }
  const cpuMs = { bwrap: 0, off: 0 }
  const loop = (gateway: ClawdforgeGateway, sessions: ReadonlyArray<string>, count: number) =>
    Promise.all(sessions.map(async (id) => {
      for (let i = 0; i < count; i++) await turn(gateway, id)
    }))
  try {
    for (const { mode, gateway } of sides) await loop(gateway, ids[mode], sizes.sandboxCpuWarmupTurns)
    await alternate(sizes.sandboxCpuRounds, sides, async ({ mode, gateway }) => {
      const cpu0 = cpuMsOf(gateway.pid)
      await loop(gateway, ids[mode], sizes.sandboxCpuTurnsPerRound)
      cpuMs[mode] += cpuMsOf(gateway.pid) - cpu0
    })
  } finally {
    for (const { mode, gateway } of sides) await mapLimit(ids[mode], 10, (id) => closeSession(gateway, id))
  }
  const turns = n * sizes.sandboxCpuRounds * sizes.sandboxCpuTurnsPerRound
  return { sessions: n, turns, bwrap: round(cpuMs.bwrap / turns), off: round(cpuMs.off / turns) }
}

const mb = (kb: number) => `${(kb / 1024).toFixed(1)} MB`
const signed = (x: number, unit: string, format: (x: number) => string) => `${x >= 0 ? "+" : ""}${format(x)} ${unit}`

/** The rows' metrics and targets, printed as skipped where bubblewrap is missing. */
const targetsFor = (sizes: Bench["sizes"]) => ({
  create: { metric: "create p50 ms, sandboxed", target: "<= +30 ms vs off" },
  turn: { metric: "turn p50 ms, sandboxed", target: "<= 1.1x off (noise)" },
  cpu: { metric: "server CPU ms/turn, sandboxed", target: "<= 1.1x off (noise)" },
  cpuParallel: { metric: `server CPU ms/turn, sandboxed, ${sizes.sandboxCpuSessions} sessions`, target: "<= 1.1x off (noise)" },
  idle: { metric: "idle agent RSS, sandboxed", target: "<= +10 MB vs off" }
})

const skipped = (targets: ReturnType<typeof targetsFor>): Answer => ({
  results: { skipped: "bwrap (bubblewrap) is not installed or cannot sandbox here" },
  rows: Object.values(targets).map((t): Row => ({ ...t, note: "skipped: install bubblewrap" }))
})

export const sandbox: Question = {
  name: "sandbox",
  run: async (bench: Bench) => {
    const { sizes, note } = bench
    const targets = targetsFor(sizes)
    // Loaded here, so that its trial bwrap runs only when this question does.
    const { bwrapAvailable } = await import("../test/support/Bubblewrap.js")
    if (!bwrapAvailable) {
      note("sandbox: skipped, install bubblewrap")
      return skipped(targets)
    }
    const [bwrap, off] = await Promise.all([
      startClawdforge({ env: { CLAWDFORGE_SANDBOX: "bwrap" } }),
      startClawdforge({ env: { CLAWDFORGE_SANDBOX: "off" } })
    ])
    const sides = [{ mode: "bwrap", gateway: bwrap }, { mode: "off", gateway: off }] as const
    // Where the question's time goes, in results: it should stay under a minute on 2 idle cores.
    const seconds: Record<string, number> = {}
    let phase = now()
    const lap = (name: string) => {
      seconds[name] = round((now() - phase) / 1000, 1)
      note(`sandbox: ${name} ${seconds[name]} s`)
      phase = now()
    }
    try {
      note("sandbox: an idle agent's memory, then sequential turns")
      const sessions = { bwrap: await openSession(bwrap), off: await openSession(off) }
      await Promise.all([turn(bwrap, sessions.bwrap.id), turn(off, sessions.off.id)])
      await sleep(sizes.sandboxIdleMs)
      const idle = {
        bwrap: { ...treeMemoryKb(sessions.bwrap.tree), processes: sessions.bwrap.tree.map((p) => p.name) },
        off: { ...treeMemoryKb(sessions.off.tree), processes: sessions.off.tree.map((p) => p.name) }
      }
      const turns = await sequentialTurns(sessions, sides, sizes.sandboxTurnWarmup, sizes.sandboxTurns).finally(() =>
        Promise.all([closeSession(bwrap, sessions.bwrap.id), closeSession(off, sessions.off.id)])
      )
      lap("idleAndTurns")
      note(`sandbox: server CPU with ${sizes.sandboxCpuSessions} sessions busy`)
      const cpu = await parallelCpu(sides, sizes)
      lap("parallelCpu")
      note("sandbox: creates")
      const create = await creates(sides, sizes.sandboxCreateWarmup, sizes.sandboxCreates)
      lap("creates")

      const createExtra = create.bwrap.p50 - create.off.p50
      const idleExtraKb = idle.bwrap.rssKb - idle.off.rssKb
      const results = { startMs: { bwrap: round(bwrap.startMs), off: round(off.startMs) }, create, turns, cpu, idle, seconds }
      const rows: Array<Row> = [
        {
          ...targets.create,
          gateway: ms(create.bwrap.p50),
          direct: `${ms(create.off.p50)} off`,
          ratio: signed(createExtra, "ms", ms),
          pass: createExtra <= 30,
          note: `${sizes.sandboxCreates} creates each, alternating; median of paired differences ` +
            `${signed(create.pairedExtraMs, "ms", ms)}; p99 ${ms(create.bwrap.p99)} vs ${ms(create.off.p99)}`
        },
        {
          ...targets.turn,
          gateway: ms(turns.bwrap.p50),
          direct: `${ms(turns.off.p50)} off`,
          ratio: ratio(turns.bwrap.p50, turns.off.p50, "off"),
          pass: turns.bwrap.p50 <= 1.1 * turns.off.p50,
          note: `${turns.turns} turns each, one here one there; 10% is noise allowance`
        },
        {
          ...targets.cpu,
          gateway: ms(turns.bwrap.gatewayCpuMsPerTurn),
          direct: `${ms(turns.off.gatewayCpuMsPerTurn)} off`,
          ratio: ratio(turns.bwrap.gatewayCpuMsPerTurn, turns.off.gatewayCpuMsPerTurn, "off"),
          pass: turns.bwrap.gatewayCpuMsPerTurn <= 1.1 * turns.off.gatewayCpuMsPerTurn,
          note: `sequential, gateway process only; agent tree ${ms(turns.bwrap.agentCpuMsPerTurn)} vs ` +
            `${ms(turns.off.agentCpuMsPerTurn)} ms/turn`
        },
        {
          ...targets.cpuParallel,
          gateway: ms(cpu.bwrap),
          direct: `${ms(cpu.off)} off`,
          ratio: ratio(cpu.bwrap, cpu.off, "off"),
          pass: cpu.bwrap <= 1.1 * cpu.off,
          note: `${cpu.turns} turns each, gateway process only; 10% is noise allowance`
        },
        {
          ...targets.idle,
          gateway: mb(idle.bwrap.rssKb),
          direct: `${mb(idle.off.rssKb)} off`,
          ratio: signed(idleExtraKb / 1024, "MB", (x) => x.toFixed(1)),
          pass: idleExtraKb <= 10 * 1024,
          note: `VmRSS summed over the session's processes (${idle.bwrap.processes.join(", ")} vs ` +
            `${idle.off.processes.join(", ")}); PSS ${mb(idle.bwrap.pssKb)} vs ${mb(idle.off.pssKb)}`
        }
      ]
      return { results, rows }
    } finally {
      await Promise.all([stopGateway(bwrap), stopGateway(off)])
    }
  }
}
