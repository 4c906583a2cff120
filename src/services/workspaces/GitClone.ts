import { Command, CommandExecutor } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { Duration, Effect, Option, Stream } from "effect"
import { realpathSync } from "node:fs"
import { lookup } from "node:dns/promises"
import * as net from "node:net"
import { isAbsolute, relative, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { BadRequest, GitCloneFailed } from "../../domain/Errors.js"
import type { AppName, SessionId } from "../../domain/Ids.js"
import type { GitSource } from "../../domain/Session.js"
import { AppConfig } from "../config/AppConfig.js"
import { addressRange, canonicalHost, isPublicAddress } from "../net/Addresses.js"
import { Sandbox } from "../sandbox/Sandbox.js"
import { AppLimits } from "../tenancy/AppLimits.js"

/** A repository as git is given it, and what people may see of it. */
export interface GitRemote {
  /** What `git clone` is given. */
  readonly href: string
  /** The URL with its user and password as `***`: in errors and logs. */
  readonly shown: string
  /** The URL without its password: the clone's `origin` (a token stays out of the workspace). */
  readonly origin: string
  readonly transport: "https" | "http" | "ssh" | "git" | "file"
  /** The host to check (none for `file`). */
  readonly host?: string | undefined
  /** The port the host is reached on (http(s): for pinning its checked addresses). */
  readonly port?: number | undefined
  /** `file`: the repository's real path on the gateway's disk (shown read-only to the clone's sandbox). */
  readonly path?: string | undefined
  /** Strings that must never appear in what the caller hears (the URL's user and password). */
  readonly secrets: ReadonlyArray<string>
}

/** A checked `git`: what the clone runs with. */
export interface ClonePlan {
  readonly remote: GitRemote
  readonly ref: string | undefined
  /** `host:port:addr,...` for curl (`http.curloptResolve`): the addresses checked, so git connects to no other. */
  readonly pinned: string | undefined
}

const badGit = (message: string) => new BadRequest({ message: `git: ${message}` })

/** `<transport>::<address>` (git's remote helpers: `ext::`, `fd::`, ...): never. */
const helperSyntax = /^([A-Za-z0-9][A-Za-z0-9+.-]*)::/
/** `scheme://...` */
const schemeSyntax = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//
/** scp-like `[user@]host:path`, as git reads it: a colon before any slash. */
const scpSyntax = /^(?:([^@/]+)@)?(\[[^\]/]+\]|[^:/[\]]+):(.*)$/s

const allowedSchemes = new Set(["https", "http", "ssh", "git", "file"])

/** Names that are loopback whatever DNS says (RFC 6761). */
const isLoopbackName = (host: string) => host === "localhost" || host.endsWith(".localhost")

const inside = (root: string, path: string) => {
  const rel = relative(root, path)
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel))
}

/**
 * `url` as git will be given it, or why not: only https, http, ssh and git URLs, scp-like `user@host:path`,
 * and (when `allowFile`) an absolute path or `file://`; never a remote helper (`ext::`), never anything git
 * could read as an option.
 */
export const parseGitUrl = (url: string, allowFile: boolean): GitRemote | BadRequest => {
  // Control characters (newlines above all) have no place in a URL and would forge lines in git's config.
  if (/[\u0000-\u001f\u007f]/.test(url)) return badGit("the url may not hold control characters")
  if (url.startsWith("-")) return badGit("the url may not start with \"-\"")
  const helper = helperSyntax.exec(url)
  if (helper !== null) {
    return badGit(`the "${helper[1]}::" transport is not allowed: only https, http, ssh and git URLs`)
  }
  const scheme = schemeSyntax.exec(url)?.[1]?.toLowerCase()
  if (scheme !== undefined) {
    if (!allowedSchemes.has(scheme)) return badGit(`"${scheme}://" URLs are not allowed: only https, http, ssh and git`)
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      return badGit("the url is not a valid URL")
    }
    if (scheme === "file") return fileRemote(decodeURIComponent(parsed.pathname), parsed.hostname, allowFile)
    const host = parsed.hostname.replace(/^\[(.*)\]$/, "$1")
    if (host === "") return badGit("the url names no host")
    if (host.startsWith("-")) return badGit("the url's host may not start with \"-\"")
    // ssh:// and git:// hosts stay percent-encoded here: one that decodes to something else is checked as what it is not.
    if (host.includes("%")) return badGit("the url's host may not be percent-encoded")
    const user = decodeURIComponent(parsed.username)
    const password = decodeURIComponent(parsed.password)
    if (user.startsWith("-")) return badGit("the url's user may not start with \"-\"")
    const masked = new URL(parsed.href)
    if (masked.username !== "") masked.username = "***"
    if (masked.password !== "") masked.password = "***"
    const origin = new URL(parsed.href)
    origin.password = ""
    // A user in an http(s) URL is a credential too (a token as the user name).
    if (scheme === "http" || scheme === "https") origin.username = ""
    const port = parsed.port === "" ? (scheme === "https" ? 443 : scheme === "http" ? 80 : undefined) : Number(parsed.port)
    return {
      href: parsed.href,
      shown: masked.href,
      origin: origin.href,
      transport: scheme as GitRemote["transport"],
      host,
      port,
      secrets: [user, password, parsed.username, parsed.password].filter((s) => s.length > 0)
    }
  }
  const scp = url.startsWith("/") ? null : scpSyntax.exec(url)
  if (scp !== null) {
    const [, user = "", rawHost = "", path = ""] = scp
    const host = rawHost.replace(/^\[(.*)\]$/, "$1")
    if (host === "" || host.startsWith("-")) return badGit("the url's host may not be empty or start with \"-\"")
    if (host.includes("%")) return badGit("the url's host may not be percent-encoded")
    if (user.startsWith("-")) return badGit("the url's user may not start with \"-\"")
    if (path === "") return badGit("the url names no repository path after the host")
    return { href: url, shown: url, origin: url, transport: "ssh", host, port: undefined, secrets: [] }
  }
  return fileRemote(url, "", allowFile)
}

/** A repository on the gateway's own disk: allowed only by the operator, and only by an absolute path. */
const fileRemote = (path: string, host: string, allowFile: boolean): GitRemote | BadRequest => {
  if (!allowFile) {
    return badGit("a local path (or file:// URL) is allowed only when the operator sets CLAWDFORGE_GIT_ALLOW_FILE=true; " +
      "use an https, http, ssh or git URL")
  }
  if (host !== "" && host !== "localhost") return badGit("a file:// URL may not name a host")
  if (!isAbsolute(path)) return badGit("a local repository must be an absolute path")
  return {
    href: pathToFileURL(path).href,
    shown: path,
    origin: pathToFileURL(path).href,
    transport: "file",
    path,
    secrets: []
  }
}

/** `ref`: a branch, tag or commit, never something git would read as an option or a path. */
export const checkGitRef = (ref: string): string | undefined => {
  if (ref.startsWith("-")) return "the ref may not start with \"-\""
  if (/[\u0000-\u0020\u007f~^:?*[\\]/.test(ref) || ref.includes("..") || ref.includes("@{")) {
    return "the ref must be a branch, tag or commit name (no spaces, control characters, \"..\", \"~\", \"^\", \":\", " +
      "\"?\", \"*\", \"[\", \"\\\" or \"@{\")"
  }
  return undefined
}

/** How long a create waits for a host's DNS answer before it lets git try (and fail) by itself. */
const lookupTimeout = Duration.seconds(5)
/** What of git's stderr the caller hears. */
const messageLines = 6
const stderrLimit = 64 * 1024

const collect = (stream: Stream.Stream<Uint8Array, unknown>, limit: number) =>
  stream.pipe(
    Stream.decodeText(),
    Stream.runFold("", (acc, chunk) => acc.length >= limit ? acc : (acc + chunk).slice(0, limit)),
    Effect.orElseSucceed(() => "")
  )

/**
 * The clone run in the workspace: the repository without a checkout when a ref follows, the ref
 * checked out (a branch as a local branch tracking origin's, a tag or commit detached), and `origin`
 * set to the URL without its credentials. Positional values arrive as "$1".."$3", never in the script.
 */
const cloneScript = [
  "set -e",
  "if [ -n \"$2\" ]; then git clone --quiet --no-checkout -- \"$1\" .; git checkout --quiet \"$2\" --; " +
  "else git clone --quiet -- \"$1\" .; fi",
  "if [ \"$3\" != \"$1\" ]; then git remote set-url origin \"$3\"; fi"
].join("\n")

/**
 * A create's `git: {url, ref?}`: the URL and ref checked (transports, options, hosts as webhooks' are),
 * then the repository cloned into the session's fresh workspace before its agent starts, in a sandbox
 * of its own that is the agent's in all but its command (the same workspace, HOME, user, network rule
 * and cgroup limits; Sandbox.launch), or, with the sandbox off, as a plain child with the clean agent
 * environment. git runs with no system or global config, no credential helper, no prompt, only the
 * allowed protocols (for submodules and redirects too: redirects are not followed), and a timeout.
 */
export class GitClone extends Effect.Service<GitClone>()("clawdforge/GitClone", {
  effect: Effect.gen(function*() {
    const config = yield* AppConfig
    const sandbox = yield* Sandbox
    const limits = yield* AppLimits
    const executor = yield* CommandExecutor.CommandExecutor
    const workspaceRoot = resolve(config.workspaceRoot)
    const allowPrivate = config.webhookAllowPrivate

    /** Why the host may not be cloned from (as a webhook's may not be reached), or its checked addresses. */
    const checkHost = (host: string) =>
      Effect.gen(function*() {
        const canonical = canonicalHost(host)
        if (allowPrivate) return [] as ReadonlyArray<string>
        if (isLoopbackName(canonical)) return yield* badGit(`the host ${canonical} is loopback: only public hosts`)
        if (net.isIP(canonical) !== 0) {
          if (isPublicAddress(canonical)) return [canonical]
          return yield* badGit(`the host ${canonical} is ${addressRange(canonical)}: only public addresses`)
        }
        const addresses = yield* Effect.tryPromise(() => lookup(canonical, { all: true })).pipe(
          Effect.timeout(lookupTimeout),
          Effect.orElseSucceed(() => [])
        )
        const refused = addresses.find((entry) => !isPublicAddress(entry.address))
        if (refused !== undefined) {
          return yield* badGit(
            `the host ${canonical} resolves to ${refused.address} (${addressRange(refused.address)}): only public addresses`
          )
        }
        return addresses.map((entry) => entry.address)
      })

    /**
     * The create's `git` checked before anything is made for the session: a 400 naming what is wrong, or
     * the plan the clone runs.
     */
    const check = Effect.fn("GitClone.check")(function*(git: GitSource, cwd: string | undefined) {
      if (cwd !== undefined) {
        return yield* badGit("a session cloned from a repository works in a fresh workspace of its own: give `git` or `cwd`, not both")
      }
      const remote = parseGitUrl(git.url, config.gitAllowFile)
      if (remote instanceof BadRequest) return yield* remote
      if (git.ref !== undefined) {
        const refused = checkGitRef(git.ref)
        if (refused !== undefined) return yield* badGit(refused)
      }
      if (remote.path !== undefined) {
        // Another session's workspace (any app's) or an app's HOME is never a repository to clone from.
        let real: string
        try {
          real = realpathSync(remote.path)
        } catch {
          return yield* new GitCloneFailed({ message: `fatal: repository '${remote.shown}' does not exist` })
        }
        if (inside(workspaceRoot, real) || inside(real, workspaceRoot)) {
          return yield* badGit("a local repository may not lie in (or hold) the gateway's workspaces")
        }
        return { remote: { ...remote, path: real }, ref: git.ref, pinned: undefined } satisfies ClonePlan
      }
      const addresses = yield* checkHost(remote.host!)
      // http(s) connects to the addresses checked here, not to a second DNS answer.
      const pinned = (remote.transport === "https" || remote.transport === "http") && addresses.length > 0 &&
          net.isIP(canonicalHost(remote.host!)) === 0
        ? `${canonicalHost(remote.host!)}:${remote.port}:${addresses.map((a) => net.isIPv6(a) ? `[${a}]` : a).join(",")}`
        : undefined
      return { remote, ref: git.ref, pinned } satisfies ClonePlan
    })

    /** git's stderr as the caller hears it: its first lines, every credential of the URL masked. */
    const gitMessage = (remote: GitRemote, stderr: string, fallback: string) => {
      let text = stderr.split(remote.href).join(remote.shown)
      for (const secret of remote.secrets) text = text.split(secret).join("***")
      // Whatever URL git names with credentials (a redirect's, a submodule's): masked too.
      text = text.replace(/(\/\/)[^/@\s]+@/g, "$1***@")
      const lines = text.split("\n").map((line) => line.trimEnd()).filter((line) => line.length > 0 && !line.startsWith("hint:"))
      return lines.length === 0 ? fallback : lines.slice(0, messageLines).join("\n").slice(0, 2000)
    }

    /** What git runs with: no config but this, no prompts, only the allowed protocols. */
    const gitEnvironment = (plan: ClonePlan): Record<string, string> => {
      const protocols = ["https", "http", "ssh", "git", ...(plan.remote.transport === "file" ? ["file"] : [])]
      const settings: Array<readonly [string, string]> = [
        ["protocol.allow", "never"],
        ...protocols.map((protocol) => [`protocol.${protocol}.allow`, "always"] as const),
        // An empty value resets the helpers: none asks or stores anything.
        ["credential.helper", ""],
        // A redirect could lead to a host no check has seen.
        ["http.followRedirects", "false"],
        ["core.hooksPath", "/dev/null"],
        ["submodule.recurse", "false"],
        ...(plan.pinned === undefined ? [] : [["http.curloptResolve", plan.pinned] as const])
      ]
      const env: Record<string, string> = {
        GIT_TERMINAL_PROMPT: "0",
        GIT_CONFIG_NOSYSTEM: "1",
        GIT_CONFIG_GLOBAL: "/dev/null",
        GIT_ALLOW_PROTOCOL: protocols.join(":"),
        GIT_SSH_COMMAND: "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
        GIT_CONFIG_COUNT: String(settings.length)
      }
      settings.forEach(([key, value], i) => {
        env[`GIT_CONFIG_KEY_${i}`] = key
        env[`GIT_CONFIG_VALUE_${i}`] = value
      })
      return env
    }

    /**
     * Clones `plan` into `cwd` (the session's fresh, empty workspace) as the session's agent would run:
     * in its sandbox, as its user, under the app's network rule. A failure is 400 `git_clone_failed`
     * with git's first lines; the caller removes the workspace.
     */
    const clone = Effect.fn("GitClone.clone")(function*(app: AppName, id: SessionId, cwd: string, plan: ClonePlan) {
      const network = yield* limits.networkFor(app)
      const failed = (message: string) => new GitCloneFailed({ message })
      const timeout = config.gitCloneTimeout
      const outcome = yield* Effect.scoped(
        Effect.gen(function*() {
          const launch = yield* sandbox.launch({
            app,
            name: `${id}-git`,
            command: ["sh", "-c", cloneScript, "git-clone", plan.remote.href, plan.ref ?? "", plan.remote.origin],
            // A local repository is shown to the clone's sandbox, read-only, where it is.
            programs: plan.remote.path === undefined ? undefined : [plan.remote.path],
            cwd,
            env: gitEnvironment(plan),
            network: Option.getOrUndefined(network)
          }).pipe(Effect.mapError((error) => failed(`git could not start: ${error.message}`)))
          const [bin, ...args] = launch.argv
          const process = yield* executor.start(
            Command.make(bin!, ...args).pipe(
              Command.env(launch.env, { extendEnv: false }),
              Command.workingDirectory(launch.cwd),
              Command.feed("")
            )
          )
          const [stderr, exitCode] = yield* Effect.all([
            collect(process.stderr, stderrLimit),
            process.exitCode,
            Stream.runDrain(process.stdout)
          ], { concurrency: "unbounded" })
          return { stderr, exitCode: exitCode as number }
        })
      ).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => failed(`git clone of ${plan.remote.shown} did not finish within ${Duration.format(timeout)} (CLAWDFORGE_GIT_TIMEOUT_SECS)`)
        }),
        Effect.catchTag("SystemError", "BadArgument", (error) => Effect.fail(failed(`git could not start: ${error.message}`)))
      )
      if (outcome.exitCode !== 0) {
        return yield* failed(gitMessage(plan.remote, outcome.stderr, `git clone of ${plan.remote.shown} failed (exit ${outcome.exitCode})`))
      }
    })

    return { check, clone } as const
  }),
  dependencies: [AppConfig.Default, Sandbox.Default, AppLimits.Default, NodeContext.layer]
}) {}
