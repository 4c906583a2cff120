/**
 * A process and everything it started, read from /proc: what one session's agent is made of (with
 * the sandbox: bwrap outside, bwrap as the namespace's init, the agent), its memory and CPU summed.
 */
import { readdirSync, readFileSync } from "node:fs"
import { cpuMsOf, vmRssKb } from "./processes.js"

export interface TreeProcess {
  readonly pid: number
  readonly ppid: number
  /** The command name (/proc/<pid>/comm). */
  readonly name: string
}

/** Every process now, by its parent. A process that exits while it is read is left out. */
const processes = (): ReadonlyArray<TreeProcess> =>
  readdirSync("/proc").filter((d) => /^\d+$/.test(d)).flatMap((d) => {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8")
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      return [{ pid: Number(d), ppid, name }]
    } catch {
      return []
    }
  })

/** The descendants of `root` (not `root` itself), parents before their children. */
export const descendantsOf = (root: number): ReadonlyArray<TreeProcess> => {
  const all = processes()
  const found: Array<TreeProcess> = []
  const parents = [root]
  while (parents.length > 0) {
    const parent = parents.shift()!
    for (const child of all.filter((p) => p.ppid === parent)) {
      found.push(child)
      parents.push(child.pid)
    }
  }
  return found
}

/** `pid` and its descendants; empty when it is gone. */
export const treeOf = (pid: number): ReadonlyArray<TreeProcess> => {
  const self = processes().find((p) => p.pid === pid)
  return self === undefined ? [] : [self, ...descendantsOf(pid)]
}

/** Proportional set size: shared pages divided among the processes that map them (smaps_rollup). */
export const pssKb = (pid: number) => {
  const line = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8").split("\n").find((l) => l.startsWith("Pss:"))
  return Number(line?.replace(/[^0-9]/g, "") ?? NaN)
}

/** VmRSS and PSS summed over `tree`; a process gone meanwhile counts nothing. */
export const treeMemoryKb = (tree: ReadonlyArray<TreeProcess>) => {
  let rss = 0
  let pss = 0
  for (const { pid } of tree) {
    try {
      // A zombie has no memory lines: NaN, counted as nothing.
      rss += vmRssKb(pid) || 0
      pss += pssKb(pid) || 0
    } catch {
      // exited
    }
  }
  return { rssKb: rss, pssKb: pss }
}

/** utime + stime summed over `tree`, in ms (ticks of 10 ms). */
export const treeCpuMs = (tree: ReadonlyArray<TreeProcess>) =>
  tree.reduce((sum, { pid }) => {
    try {
      return sum + cpuMsOf(pid)
    } catch {
      return sum
    }
  }, 0)
