import { Data, Effect, Either, ExecutionStrategy, Exit, Option, Schedule, Scope } from "effect"
import { existsSync } from "node:fs"
import { mkdir, readdir, readFile, rmdir, writeFile } from "node:fs/promises"
import { basename, dirname, join } from "node:path"
import { AppConfig } from "../config/AppConfig.js"

/** One agent's cgroup, for as long as the scope it was made in. */
export interface AgentCgroup {
  /** Where a process writes its pid to join (one per v1 hierarchy, one in v2; none without cgroups). */
  readonly procsFiles: ReadonlyArray<string>
  /** Whether the kernel killed something in it for going past its memory limit. */
  readonly oomKilled: Effect.Effect<boolean>
  /** Its memory limit, to name in the error when it was passed. */
  readonly memoryMb: number
}

/**
 * `argv` that first writes its own pid into each of `procsFiles`, then execs `argv`: the process joins
 * the cgroup before it runs anything, so neither it nor a child ever runs outside. The files and `argv`
 * travel as arguments of the shell, never in its script. Exit 125 when it cannot join.
 */
export const enterCgroup = (procsFiles: ReadonlyArray<string>, argv: ReadonlyArray<string>): ReadonlyArray<string> =>
  procsFiles.length === 0 ? argv : [
    "/bin/sh",
    "-c",
    'while [ "$#" -gt 0 ] && [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"',
    "clawdforge-enter-cgroup",
    ...procsFiles,
    "--",
    ...argv
  ]

class CgroupFailure extends Data.TaggedError("CgroupFailure")<{ readonly message: string }> {}

const errorCode = (error: unknown) => (error as NodeJS.ErrnoException | undefined)?.code ?? String(error)

const read = (path: string) =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (error) => new CgroupFailure({ message: `cannot read ${path} (${errorCode(error)})` })
  })

const write = (path: string, value: string) =>
  Effect.tryPromise({
    try: () => writeFile(path, value),
    catch: (error) => new CgroupFailure({ message: `cannot write ${value.trim()} to ${path} (${errorCode(error)})` })
  })

const makeDirectory = (path: string) =>
  Effect.tryPromise({
    try: () => mkdir(path),
    catch: (error) => new CgroupFailure({ message: `cannot create the cgroup ${path} (${errorCode(error)})` })
  })

const pidsIn = (dir: string) =>
  read(join(dir, "cgroup.procs")).pipe(
    Effect.map((text) => text.split("\n").filter((line) => line.length > 0).map(Number)),
    // A cgroup that is gone holds nothing.
    Effect.orElseSucceed(() => [] as Array<number>)
  )

const killPid = (pid: number) => {
  try {
    process.kill(pid, "SIGKILL")
  } catch {
    // Already gone.
  }
}

/** `/proc/self/mountinfo` rows of cgroup file systems: where each is mounted and which part of it. */
interface CgroupMount {
  readonly fsType: "cgroup" | "cgroup2"
  readonly root: string
  readonly mountPoint: string
  readonly superOptions: ReadonlyArray<string>
}

const unescapeMountPath = (path: string) => path.replace(/\\([0-7]{3})/g, (_, octal) => String.fromCharCode(parseInt(octal, 8)))

const cgroupMounts = (mountinfo: string): ReadonlyArray<CgroupMount> =>
  mountinfo.split("\n").flatMap((line) => {
    const [before, after] = line.split(" - ")
    if (before === undefined || after === undefined) return []
    const fields = before.split(" ")
    const [fsType, , superOptions] = after.split(" ")
    if ((fsType !== "cgroup" && fsType !== "cgroup2") || fields.length < 5) return []
    return [{
      fsType,
      root: unescapeMountPath(fields[3]!),
      mountPoint: unescapeMountPath(fields[4]!),
      superOptions: (superOptions ?? "").split(",")
    }]
  })

/** `/proc/self/cgroup`: the gateway's own path per hierarchy (`""` is the v2 one), e.g. `memory` → `/a/b`. */
const ownPaths = (text: string): ReadonlyMap<string, string> =>
  new Map(text.split("\n").filter((line) => line.length > 0).flatMap((line) => {
    const [, controllers = "", ...path] = line.split(":")
    return controllers === "" ? [["", path.join(":")]] : controllers.split(",").map((c) => [c, path.join(":")])
  }))

/** Where `ownPath` (as /proc/self/cgroup says it) is in `mount`, or why it is not visible there. */
const directoryOf = (mount: CgroupMount, ownPath: string) => {
  if (mount.root === "/") return Effect.succeed(join(mount.mountPoint, ownPath))
  if (ownPath === mount.root || ownPath.startsWith(`${mount.root}/`)) {
    return Effect.succeed(join(mount.mountPoint, ownPath.slice(mount.root.length)))
  }
  return Effect.fail(new CgroupFailure({ message: `the gateway's cgroup ${ownPath} is not under ${mount.mountPoint}` }))
}

const v1Period = 100_000

/** How the gateway makes agents' cgroups on this host, found once. */
interface Hierarchy {
  readonly version: "v1" | "v2"
  /** The folders agents' cgroups are made in: one per v1 controller, or the single v2 one. */
  readonly parents: ReadonlyArray<string>
  /** Writes the limits into a new agent's cgroup folders (same order as `parents`). */
  readonly writeLimits: (dirs: ReadonlyArray<string>) => Effect.Effect<void, CgroupFailure>
  readonly oomKilled: (dirs: ReadonlyArray<string>) => Effect.Effect<boolean, CgroupFailure>
}

interface Limits {
  readonly memoryMb: number
  readonly pids: number
  readonly cpus: Option.Option<number>
}

const controllersFor = (limits: Limits) => Option.isSome(limits.cpus) ? ["memory", "pids", "cpu"] : ["memory", "pids"]

/** cgroup v1: a hierarchy per controller; the gateway's parent folder in each. */
const v1Hierarchy = (limits: Limits, mounts: ReadonlyArray<CgroupMount>, own: ReadonlyMap<string, string>, parentName: string) =>
  Effect.gen(function*() {
    const parents = yield* Effect.forEach(controllersFor(limits), (controller) => {
      const mount = mounts.find((m) => m.fsType === "cgroup" && m.superOptions.includes(controller))
      const ownPath = own.get(controller)
      if (mount === undefined || ownPath === undefined) {
        return Effect.fail(new CgroupFailure({ message: `no cgroup v1 ${controller} hierarchy is mounted` }))
      }
      return Effect.map(directoryOf(mount, ownPath), (dir) => join(dir, parentName))
    })
    const bytes = String(limits.memoryMb * 1024 * 1024)
    const writeLimits = ([memory, pids, cpu]: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        yield* write(join(memory!, "memory.limit_in_bytes"), bytes)
        // With swap accounting on, memory plus swap gets the same ceiling: swap is no way around it.
        const memsw = join(memory!, "memory.memsw.limit_in_bytes")
        if (existsSync(memsw)) yield* write(memsw, bytes)
        yield* write(join(pids!, "pids.max"), String(limits.pids))
        if (cpu !== undefined && Option.isSome(limits.cpus)) {
          yield* write(join(cpu, "cpu.cfs_period_us"), String(v1Period))
          yield* write(join(cpu, "cpu.cfs_quota_us"), String(Math.max(1000, Math.round(limits.cpus.value * v1Period))))
        }
      })
    // `oom_kill` (kernel 4.13+) counts the kernel's kills; older kernels only count hits of the limit.
    const oomKilled = ([memory]: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        const control = yield* read(join(memory!, "memory.oom_control"))
        const kills = /^oom_kill (\d+)$/m.exec(control)
        if (kills !== null) return Number(kills[1]) > 0
        return Number((yield* read(join(memory!, "memory.failcnt"))).trim()) > 0
      })
    return { version: "v1", parents, writeLimits, oomKilled } satisfies Hierarchy
  })

/**
 * cgroup v2: one tree. Agents' cgroups go in a parent under the gateway's own cgroup, whose
 * subtree_control must hand down memory, pids (and cpu); a cgroup that does so may hold no processes
 * itself ("no internal processes"), so when the gateway's cgroup holds some, they move into a leaf first.
 */
const v2Hierarchy = (limits: Limits, mount: CgroupMount, own: ReadonlyMap<string, string>, parentName: string) =>
  Effect.gen(function*() {
    const ownPath = own.get("")
    if (ownPath === undefined) return yield* new CgroupFailure({ message: "/proc/self/cgroup has no cgroup v2 line" })
    const dir = yield* directoryOf(mount, ownPath)
    const wanted = controllersFor(limits)
    const offered = (yield* read(join(dir, "cgroup.controllers"))).trim().split(" ")
    const missing = wanted.filter((c) => !offered.includes(c))
    if (missing.length > 0) {
      return yield* new CgroupFailure({ message: `cgroup v2 controllers ${missing.join(", ")} are not delegated to ${dir}` })
    }
    const enabled = (yield* read(join(dir, "cgroup.subtree_control"))).trim().split(" ")
    const toEnable = wanted.filter((c) => !enabled.includes(c))
    if (toEnable.length > 0) {
      const residents = yield* pidsIn(dir)
      // Only the host's root cgroup (the one without cgroup.type; a container's "/" is not it) is exempt
      // from the rule: any other is emptied first, the gateway and whatever shares its cgroup, or
      // enabling fails with EBUSY.
      if (existsSync(join(dir, "cgroup.type")) && residents.length > 0) {
        const leaf = join(dir, "clawdforge-gateway")
        if (!existsSync(leaf)) yield* makeDirectory(leaf)
        yield* Effect.forEach(residents, (pid) =>
          write(join(leaf, "cgroup.procs"), String(pid)).pipe(
            // A process that exited meanwhile need not move.
            Effect.catchAll((failure) => existsSync(`/proc/${pid}`) ? Effect.fail(failure) : Effect.void)
          ), { discard: true })
      }
      yield* write(join(dir, "cgroup.subtree_control"), toEnable.map((c) => `+${c}`).join(" "))
    }
    const writeLimits = ([agent]: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        yield* write(join(agent!, "memory.max"), String(limits.memoryMb * 1024 * 1024))
        // Swap is no way around the memory limit.
        const swap = join(agent!, "memory.swap.max")
        if (existsSync(swap)) yield* write(swap, "0")
        yield* write(join(agent!, "pids.max"), String(limits.pids))
        if (Option.isSome(limits.cpus)) {
          yield* write(join(agent!, "cpu.max"), `${Math.max(1000, Math.round(limits.cpus.value * v1Period))} ${v1Period}`)
        }
      })
    const oomKilled = ([agent]: ReadonlyArray<string>) =>
      Effect.map(read(join(agent!, "memory.events")), (events) => Number(/^oom_kill (\d+)$/m.exec(events)?.[1] ?? 0) > 0)
    return { version: "v2", parents: [join(dir, parentName)], writeLimits, oomKilled } satisfies Hierarchy
  })

/** Kills every process in `dirs` until none is left (a fork bomb keeps forking while it is killed). */
const emptyCgroups = (dirs: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const pids = (yield* Effect.forEach(dirs, pidsIn)).flat()
    if (pids.length === 0) return
    for (const dir of dirs) {
      // v2 (5.14+) kills the whole cgroup at once; elsewhere, one process at a time.
      const kill = join(dir, "cgroup.kill")
      if (existsSync(kill)) yield* write(kill, "1").pipe(Effect.ignore)
    }
    new Set(pids).forEach(killPid)
    return yield* new CgroupFailure({ message: `processes still in ${dirs.join(", ")}: ${pids.slice(0, 5).join(" ")}` })
  }).pipe(
    Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo("5 seconds"))),
    Effect.catchAll((failure) => Effect.logWarning(`agent cgroup not emptied: ${failure.message}`))
  )

/** Removes an empty cgroup; rmdir fails (EBUSY) while a killed process is still exiting, so it tries again. */
const removeCgroup = (dir: string) =>
  Effect.tryPromise({
    try: () => rmdir(dir).catch((error) => errorCode(error) === "ENOENT" ? undefined : Promise.reject(error)),
    catch: (error) => new CgroupFailure({ message: `cannot remove the cgroup ${dir} (${errorCode(error)})` })
  }).pipe(
    Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("2 seconds"))),
    Effect.catchAll((failure) => Effect.logWarning(failure.message))
  )

/** A cgroup folder's subfolders: agents' cgroups left in a parent. */
const childCgroups = (dir: string) =>
  Effect.tryPromise(() => readdir(dir, { withFileTypes: true })).pipe(
    Effect.map((entries) => entries.filter((e) => e.isDirectory()).map((e) => join(dir, e.name))),
    Effect.orElseSucceed(() => [] as Array<string>)
  )

/** Kills and removes the agents' cgroups left in `parents` (same names in each v1 hierarchy). */
const clearParents = (parents: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const children = (yield* Effect.forEach(parents, childCgroups)).flat()
    yield* emptyCgroups(children)
    yield* Effect.forEach(children, removeCgroup, { discard: true })
  })

/** A folder name from anything: what cgroupfs takes, never `.`/`..` or a control file's name. */
const cgroupName = (name: string, sequence: number) =>
  `agent-${name.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 80)}-${sequence}`

let instances = 0

/**
 * Parents left by gateways that died without closing their layer (killed): their agents are orphans.
 * Only folders of processes that are gone here are touched.
 */
const sweepDeadParents = (parent: string) =>
  Effect.gen(function*() {
    const siblings = yield* childCgroups(dirname(parent))
    const dead = siblings.filter((dir) => {
      const owner = /^clawdforge-(\d+)-\d+$/.exec(basename(dir))?.[1]
      return owner !== undefined && dir !== parent && !existsSync(`/proc/${owner}`)
    })
    yield* Effect.forEach(dead, (dir) => clearParents([dir]).pipe(Effect.zipRight(removeCgroup(dir))), { discard: true })
  })

/**
 * A cgroup per agent with the memory, process and CPU limits (`CLAWDFORGE_AGENT_MEMORY_MB`, `_PIDS`,
 * `_CPUS`), made under a parent of the gateway's own cgroup (v2, or v1 where that is the host's
 * hierarchy). Where the gateway cannot create cgroups, `available` is false, `reason` says why in one
 * line, and agents get no cgroup.
 */
export class AgentCgroups extends Effect.Service<AgentCgroups>()("clawdforge/AgentCgroups", {
  scoped: Effect.gen(function*() {
    const config = yield* AppConfig
    const limits: Limits = { memoryMb: config.agentMemoryMb, pids: config.agentPids, cpus: config.agentCpus }
    // Several gateways may live in one process (tests, a cluster's nodes): each has a parent of its own.
    const parentName = `clawdforge-${process.pid}-${++instances}`
    let sequence = 0

    /** The agent's cgroup folders with its limits, killed and removed when the scope closes. */
    const create = (hierarchy: Hierarchy, name: string) =>
      Effect.gen(function*() {
        const leaf = cgroupName(name, ++sequence)
        const dirs = hierarchy.parents.map((parent) => join(parent, leaf))
        for (const dir of dirs) yield* Effect.acquireRelease(makeDirectory(dir), () => removeCgroup(dir))
        // Registered after the folders, so it runs before they are removed.
        yield* Effect.addFinalizer(() => emptyCgroups(dirs))
        yield* hierarchy.writeLimits(dirs)
        return {
          procsFiles: dirs.map((dir) => join(dir, "cgroup.procs")),
          oomKilled: hierarchy.oomKilled(dirs).pipe(Effect.orElseSucceed(() => false)),
          memoryMb: limits.memoryMb
        } satisfies AgentCgroup
      })

    /** Finds the hierarchy, makes the parent (removed with the layer) and a trial agent's cgroup in it. */
    const detect = Effect.gen(function*() {
      const mounts = cgroupMounts(yield* read("/proc/self/mountinfo"))
      const own = ownPaths(yield* read("/proc/self/cgroup"))
      const unified = mounts.find((m) => m.fsType === "cgroup2")
      // A hybrid host mounts a cgroup2 tree with no controllers beside the v1 ones: v2 only when it has them.
      const unifiedControllers = unified === undefined
        ? ""
        : yield* read(join(unified.mountPoint, "cgroup.controllers")).pipe(Effect.orElseSucceed(() => ""))
      const hierarchy = unified !== undefined && /\bmemory\b/.test(unifiedControllers)
        ? yield* v2Hierarchy(limits, unified, own, parentName)
        : yield* v1Hierarchy(limits, mounts, own, parentName)
      for (const parent of hierarchy.parents) {
        yield* sweepDeadParents(parent)
        // A folder of this name is left by a dead gateway that had our pid: empty it and take it over.
        const made = existsSync(parent) ? clearParents([parent]) : makeDirectory(parent)
        yield* Effect.acquireRelease(made, () => clearParents([parent]).pipe(Effect.zipRight(removeCgroup(parent))))
      }
      if (hierarchy.version === "v2") {
        yield* write(join(hierarchy.parents[0]!, "cgroup.subtree_control"), controllersFor(limits).map((c) => `+${c}`).join(" "))
      }
      yield* Effect.scoped(create(hierarchy, "trial"))
      return hierarchy
    })

    // A detection that fails half-way removes what it made at once, not when the layer closes.
    const detection = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
    const found = yield* detect.pipe(
      Scope.extend(detection),
      Effect.tapError((failure) => Scope.close(detection, Exit.fail(failure))),
      Effect.either
    )

    /** The agent's own cgroup until the scope closes; without cgroups, one with no procs files. */
    const make = Effect.fn("AgentCgroups.make")(function*(name: string) {
      if (Either.isLeft(found)) {
        return { procsFiles: [], oomKilled: Effect.succeed(false), memoryMb: limits.memoryMb } satisfies AgentCgroup
      }
      return yield* create(found.right, name).pipe(Effect.orDie)
    })

    return {
      /** Whether each agent gets a cgroup with its limits. */
      available: Either.isRight(found),
      version: Either.isRight(found) ? found.right.version : "none" as const,
      /** Why agents get no cgroup, in one line (undefined when they do). */
      reason: Either.isLeft(found) ? found.left.message : undefined,
      limits,
      make
    } as const
  }),
  dependencies: [AppConfig.Default]
}) {}
