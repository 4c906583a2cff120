/** What every question gets from the runner, and what it gives back. */
import type { ClawdforgeGateway, Gateway } from "./gateways.js"

/** Sample counts, kept small enough for the whole run to take about 5 minutes on 2 cores. */
export const sizes = {
  starts: 5,
  idleMs: 3000,
  memorySessions: 50,
  turnWarmup: 300,
  turns: 2000,
  turnsLogOff: 1000,
  cpuSessions: 10,
  cpuWarmupTurns: 20,
  cpuTurnsPerSession: 300,
  throughputSessions: [1, 10, 50],
  throughputWindow: { warmupMs: 500, ms: 2500 },
  streamChunks: 20_000,
  streamWarmup: 1,
  streams: 3,
  createWarmup: 3,
  creates: 15,
  acpxTurns: 10,
  runWarmup: 3,
  runs: 20,
  ledgerFresh: 100_000,
  ledgerIdle: 2_000,
  ledgerExpired: 2_000,
  ledgerRecentlyClosed: 5_000,
  listWarmup: 10,
  lists: 100,
  storageHttpTurns: 100,
  storageReadWarmup: 20,
  storageReads: 300,
  storageWriteWarmup: 200,
  storageWrites: 2000,
  storageLargeWarmup: 2,
  storageLargeWrites: 10,
  storageLargeReads: 10,
  sandboxIdleMs: 2000,
  sandboxTurnWarmup: 100,
  sandboxTurns: 800,
  sandboxCpuSessions: 10,
  sandboxCpuWarmupTurns: 10,
  sandboxCpuRounds: 10,
  sandboxCpuTurnsPerRound: 10,
  sandboxCreateWarmup: 2,
  sandboxCreates: 20
}

export interface Bench {
  readonly sizes: typeof sizes
  /**
   * The shared clawdforge gateway (as `npm start` runs it, default logging, `--cpu-prof` under
   * BENCH_CPU_PROF), started on first use and stopped by the runner.
   */
  readonly gateway: () => Promise<ClawdforgeGateway>
  /** The shared bare gateway, started on first use and stopped by the runner. */
  readonly bare: () => Promise<Gateway>
  /** A progress line on stderr. */
  readonly note: (line: string) => void
}

/** One row of the printed table. Columns left empty print as blanks. */
export interface Row {
  readonly metric: string
  readonly gateway?: string
  readonly bare?: string
  /** The other floor or baseline: direct ACP, a direct spawn, acpx. */
  readonly direct?: string
  readonly ratio?: string
  readonly target?: string
  /** Whether the target is met; absent for rows without a target. */
  readonly pass?: boolean
  readonly note?: string
}

export interface Answer {
  readonly results: unknown
  readonly rows: ReadonlyArray<Row>
}

export interface Question {
  /** The name BENCH_ONLY takes. */
  readonly name: string
  readonly run: (bench: Bench) => Promise<Answer>
}

/** Milliseconds as the table prints them. */
export const ms = (x: number) => x.toFixed(x < 10 ? 2 : 1)

/** `a / b` as "1.23x <what>". */
export const ratio = (a: number, b: number, what: string) => `${(a / b).toFixed(2)}x ${what}`
