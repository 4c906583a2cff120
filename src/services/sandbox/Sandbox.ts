import { Data, Effect, Option, Scope } from "effect"
import { spawnSync } from "node:child_process"
import {
  accessSync,
  chownSync,
  constants,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync
} from "node:fs"
import { tmpdir } from "node:os"
import { delimiter, dirname, isAbsolute, join, resolve, sep } from "node:path"
import { AgentFailed } from "../../domain/Errors.js"
import { AppConfig, type AgentNetwork } from "../config/AppConfig.js"
import { agentEnvironment } from "./AgentEnvironment.js"
import { AgentCgroups, enterCgroup } from "./AgentCgroups.js"
import { bridgeArgv, bridgePort, EgressProxy } from "./EgressProxy.js"

/** Start-up could not honour `CLAWDFORGE_SANDBOX=bwrap` (or a network mode that needs the sandbox): one line. */
export class SandboxUnavailable extends Data.TaggedError("SandboxUnavailable")<{
  readonly variable: string
  readonly message: string
}> {}

/** What one agent process is started as: the argv to spawn, its exact environment, its working folder. */
export interface LaunchPlan {
  readonly argv: ReadonlyArray<string>
  readonly env: Readonly<Record<string, string>>
  readonly cwd: string
  /** Why the agent died when the sandbox knows better than its exit code (the kernel killed it for memory). */
  readonly deathNote: Effect.Effect<string | undefined>
}

/** One agent to start: whose it is, where it works, what it runs with. */
export interface SandboxRequest {
  readonly app: string
  /** Names its cgroup: the session (or run) id. */
  readonly name: string
  readonly command: ReadonlyArray<string>
  /** Another program the command starts (acpx's agent), shown read-only as the command's own is. */
  readonly programs?: ReadonlyArray<string> | undefined
  /** The workspace: read-write, at the same path as on the host. */
  readonly cwd: string
  /** The registry entry's env with the app's own over it. */
  readonly env: Readonly<Record<string, string>>
  /** The app's own network rule (`network` limit); none: the gateway's. */
  readonly network?: AgentNetwork | undefined
}

/** Where the egress proxy's socket appears inside a sandbox. */
const proxySocketInside = "/run/clawdforge/egress.sock"

const isExecutableFile = (file: string) => {
  try {
    accessSync(file, constants.X_OK)
    return statSync(file).isFile()
  } catch {
    return false
  }
}

/** `bwrap` on the gateway's PATH. */
const findBwrap = (): string | undefined =>
  (process.env["PATH"] ?? "").split(delimiter).filter((dir) => dir.length > 0).map((dir) => join(dir, "bwrap"))
    .find(isExecutableFile)

/** A bare command name as the agent's PATH finds it; a path as it is. */
const whichIn = (command: string, path: string): string | undefined => {
  if (command.includes("/")) return isAbsolute(command) ? command : undefined
  return path.split(delimiter).filter((dir) => isAbsolute(dir)).map((dir) => join(dir, command)).find(isExecutableFile)
}

/** Folders the sandbox shows as the system: read-only, as they are on the host. */
const systemDirs = ["/usr", "/etc", "/opt"]
/** Merged-/usr links (`/bin -> usr/bin`) are recreated as links; real folders are bound. */
const systemTopLevel = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]
const isVisibleAsSystem = (path: string) => systemDirs.some((dir) => path === dir || path.startsWith(dir + sep))

/**
 * What of `path` (an absolute path in an agent's command) the agent must see to run it: inside a
 * `node_modules` tree, that whole tree (a package's own files and its dependencies); elsewhere the file
 * itself and every `node_modules` folder Node's resolution would look in on the way up, never the
 * folders around it (the gateway's own folder, its data).
 */
const programMounts = (path: string): Array<string> => {
  if (!existsSync(path) || path === "/") return []
  const mounts: Array<string> = []
  for (const candidate of new Set([path, realpathSync(path)])) {
    if (isVisibleAsSystem(candidate)) continue
    const index = candidate.indexOf(`${sep}node_modules${sep}`)
    if (index >= 0) {
      mounts.push(candidate.slice(0, index + `${sep}node_modules`.length))
      continue
    }
    mounts.push(candidate)
    for (let dir = dirname(candidate); dir !== dirname(dir); dir = dirname(dir)) {
      const modules = join(dir, "node_modules")
      // A linked node_modules (a workspace, a copy of the project) is shown where it is linked and where
      // it points to: modules resolved from either place are found.
      if (existsSync(modules)) mounts.push(modules, realpathSync(modules))
    }
  }
  return mounts
}

/** Drops bound paths that an earlier one already shows. */
const outermost = (paths: ReadonlyArray<string>) => {
  const sorted = [...new Set(paths)].sort((a, b) => a.length - b.length)
  return sorted.filter((path, i) => !sorted.slice(0, i).some((outer) => path.startsWith(outer + sep)))
}

/**
 * Every agent process in a box of its own (`CLAWDFORGE_SANDBOX`): bubblewrap with its own mount, PID,
 * IPC and UTS namespaces (and network, unless the network mode is `host`), the system read-only, its
 * program read-only, its workspace and its app's HOME read-write, a private `/tmp`; as an unprivileged
 * user when the gateway is root; in a cgroup of its own with the memory, process and CPU limits
 * (AgentCgroups, with or without the sandbox); with the clean environment (AgentEnvironment) always.
 */
export class Sandbox extends Effect.Service<Sandbox>()("clawdforge/Sandbox", {
  effect: Effect.gen(function*() {
    const config = yield* AppConfig
    const cgroups = yield* AgentCgroups
    const egress = yield* EgressProxy
    const asRoot = process.getuid?.() === 0
    const workspaceRoot = resolve(config.workspaceRoot)
    // The agent's user when the gateway is root; otherwise the gateway's own (unprivileged) user.
    const agentUser = asRoot ? { uid: config.agentUid, gid: config.agentGid } : undefined
    // As root, bwrap mounts with the gateway's rights (so a workspace under a private folder can be
    // shown) and the agent drops to its user inside, keeping no capability; as another user, bwrap
    // maps that user into a user namespace of its own.
    const namespaces = agentUser === undefined
      ? ["--unshare-all"]
      : ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try", "--unshare-net", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    const dropPrivileges = agentUser === undefined
      ? []
      : ["setpriv", `--reuid=${agentUser.uid}`, `--regid=${agentUser.gid}`, "--clear-groups", "--"]

    /** The bubblewrap argv for one agent, up to and excluding its command. */
    const bwrapArgs = (bwrap: string, options: {
      readonly cwd: string
      readonly home: string
      readonly command: ReadonlyArray<string>
      readonly path: string
      readonly shareNet: boolean
      readonly socket: string | undefined
    }) => {
      const args = [
        bwrap,
        ...namespaces,
        ...(options.shareNet ? ["--share-net"] : []),
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "clawdforge-agent"
      ]
      for (const dir of systemDirs) if (existsSync(dir)) args.push("--ro-bind", dir, dir)
      for (const top of systemTopLevel) {
        if (!existsSync(top)) continue
        const stat = lstatSync(top)
        if (stat.isSymbolicLink()) args.push("--symlink", readlinkSync(top), top)
        else args.push("--ro-bind", top, top)
      }
      args.push("--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp")
      // The program and what it loads; node itself when it lives outside the system folders.
      const programs = options.command.flatMap((arg, i) => {
        const path = i === 0 ? whichIn(arg, options.path) : isAbsolute(arg) ? arg : undefined
        return path === undefined ? [] : programMounts(path)
      })
      const readOnly = outermost([...programs, ...programMounts(process.execPath)])
      const readWrite = [options.cwd, options.home]
      // The folders on the way to what is shown, made anew and open to the agent's user (the host's may be
      // private, e.g. under /root): it sees their names, nothing else of them.
      const ancestors = new Set<string>()
      for (const path of [...readOnly, ...readWrite]) {
        for (let dir = dirname(path); dir !== dirname(dir); dir = dirname(dir)) {
          if (!isVisibleAsSystem(dir) && dir !== "/tmp") ancestors.add(dir)
        }
      }
      const shown = [...readOnly, ...readWrite]
      for (const dir of [...ancestors].sort((a, b) => a.length - b.length)) {
        if (!shown.some((path) => dir === path || dir.startsWith(path + sep))) args.push("--perms", "0755", "--dir", dir)
      }
      for (const path of readOnly) args.push("--ro-bind", path, path)
      for (const path of readWrite) args.push("--bind", path, path)
      if (options.socket !== undefined) {
        args.push("--perms", "0755", "--dir", "/run", "--perms", "0755", "--dir", dirname(proxySocketInside))
        args.push("--bind", options.socket, proxySocketInside)
      }
      args.push("--chdir", options.cwd, "--", ...dropPrivileges)
      return args
    }

    /** Whether a trivial sandbox starts here, as agents will be started. */
    const trial = (bwrap: string): string | undefined => {
      const probe = mkdtempSync(join(tmpdir(), "clawdforge-sandbox-trial-"))
      try {
        const argv = [
          ...bwrapArgs(bwrap, { cwd: probe, home: probe, command: ["/bin/true"], path: "/usr/bin:/bin", shareNet: false, socket: undefined }),
          "/bin/true"
        ]
        const run = spawnSync(argv[0]!, argv.slice(1), { env: { PATH: "/usr/bin:/bin" }, timeout: 10_000, encoding: "utf8" })
        if (run.error !== undefined) return run.error.message
        return run.status === 0 ? undefined : (run.stderr.trim().split("\n").pop() || `exit code ${run.status}`)
      } finally {
        rmSync(probe, { recursive: true, force: true })
      }
    }

    const bwrap = config.sandbox === "off" ? undefined : findBwrap()
    const failure = config.sandbox === "off"
      ? "CLAWDFORGE_SANDBOX=off"
      : bwrap === undefined
      ? "bwrap (bubblewrap) is not installed"
      : trial(bwrap)
    if (failure !== undefined && config.sandbox === "bwrap") {
      return yield* Effect.die(new SandboxUnavailable({ variable: "CLAWDFORGE_SANDBOX", message: `bwrap: cannot sandbox agents here (${failure})` }))
    }
    const sandboxed = failure === undefined && bwrap !== undefined
    if (!sandboxed && config.agentNetwork._tag !== "host") {
      return yield* Effect.die(new SandboxUnavailable({
        variable: "CLAWDFORGE_AGENT_NETWORK",
        message: `${config.agentNetwork._tag} needs the sandbox, which is off (${failure})`
      }))
    }

    const limits = cgroups.available
      ? `limited by a cgroup ${cgroups.version} each (${config.agentMemoryMb} MB, ${config.agentPids} processes` +
        `${Option.match(config.agentCpus, { onNone: () => "", onSome: (cpus) => `, ${cpus} CPUs` })})`
      : `not limited (no cgroups: ${cgroups.reason ?? "unavailable"})`
    // Said once the gateway serves (`announce`), so that a start refused later (a port taken) prints only its refusal.
    const announce = sandboxed
      ? Effect.logInfo(
        `agents run sandboxed (bubblewrap${agentUser === undefined ? "" : `, as uid ${agentUser.uid}`}, network ${config.agentNetwork._tag}), ${limits}`
      )
      : Effect.logWarning(
        `agents run unsandboxed (${failure}): each sees the machine as the gateway's user does; ${limits}`
      )

    /** `<workspace_root>/<app>/.home`: the app's agents' HOME (settings, credentials, session history). */
    const homeOf = (app: string) => {
      const home = join(workspaceRoot, app, ".home")
      mkdirSync(home, { recursive: true, mode: 0o700 })
      if (sandboxed && agentUser !== undefined) chownSync(home, agentUser.uid, agentUser.gid)
      return home
    }

    /**
     * The plan to start one agent process, with what it holds (its cgroup, its proxy) until the scope
     * closes; the caller spawns `argv` with exactly `env` in `cwd`.
     */
    const launch = (request: SandboxRequest) =>
      Effect.gen(function*() {
        const failed = (message: string) => new AgentFailed({ message: `agent could not start: ${message}` })
        const home = yield* Effect.try({ try: () => homeOf(request.app), catch: (e) => failed(`no HOME (${String(e)})`) })
        if (sandboxed && agentUser !== undefined) {
          yield* Effect.try({
            try: () => chownSync(request.cwd, agentUser.uid, agentUser.gid),
            catch: (e) => failed(`cannot give the workspace to the agent's user (${String(e)})`)
          })
        }
        const env = agentEnvironment({
          home,
          tmpdir: sandboxed ? "/tmp" : tmpdir(),
          agentEnv: request.env,
          pass: config.agentEnvPass,
          gatewayEnv: process.env,
          asRoot
        })
        const cgroup = yield* cgroups.make(request.name)
        const deathNote = Effect.map(cgroup.oomKilled, (killed) =>
          killed
            ? `the kernel killed it: it went past its memory limit of ${cgroup.memoryMb} MB (CLAWDFORGE_AGENT_MEMORY_MB)`
            : undefined)
        if (!sandboxed || bwrap === undefined) {
          return { argv: enterCgroup(cgroup.procsFiles, request.command), env, cwd: request.cwd, deathNote } satisfies LaunchPlan
        }
        const network = request.network ?? config.agentNetwork
        const socket = network._tag === "allow"
          ? (yield* egress.open({ app: request.app, hosts: network.hosts })).socketPath
          : undefined
        const command = socket === undefined ? request.command : bridgeArgv(proxySocketInside, request.command)
        if (socket !== undefined) {
          const proxy = `http://127.0.0.1:${bridgePort}`
          Object.assign(env, { HTTPS_PROXY: proxy, HTTP_PROXY: proxy, https_proxy: proxy, http_proxy: proxy })
        }
        const argv = enterCgroup(cgroup.procsFiles, [
          ...bwrapArgs(bwrap, {
            cwd: request.cwd,
            home,
            command: [...command, ...(request.programs ?? [])],
            path: env["PATH"]!,
            shareNet: network._tag === "host",
            socket
          }),
          ...command
        ])
        return { argv, env, cwd: request.cwd, deathNote } satisfies LaunchPlan
      })

    return {
      /** `bwrap` when agents are sandboxed, `off` when not. */
      mode: sandboxed ? "bwrap" as const : "off" as const,
      /** Whether each agent gets a cgroup with its limits. */
      limited: cgroups.available,
      /** The uid agents run as, when the gateway (root) gives them another. */
      agentUser,
      homeOf,
      /** Logs how agents run (sandboxed or not, their limits): the gateway's start-up line, once it listens. */
      announce,
      launch: launch as (request: SandboxRequest) => Effect.Effect<LaunchPlan, AgentFailed, Scope.Scope>
    } as const
  }),
  dependencies: [AppConfig.Default, AgentCgroups.Default, EgressProxy.Default]
}) {}
