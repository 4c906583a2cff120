/**
 * The environment every agent process starts with (ACP agents, acpx and what it starts, `/run`'s
 * claude), sandboxed or not: what the contract lists and nothing else of the gateway's. The gateway's
 * own variables (`CLAWDFORGE_*`, tokens, the database URL) never reach an agent unless an operator
 * names them in `CLAWDFORGE_AGENT_ENV_PASS`.
 */

/** Variables an agent gets from the gateway's environment when the gateway has them. */
const inherited = ["PATH", "LANG", "LC_ALL", "TZ"] as const

/** What the gateway decides for every agent: neither the registry nor an app moves these. */
const fixedByGateway = new Set(["HOME", "TMPDIR"])

export interface AgentEnvironmentOptions {
  /** The app's HOME (`<workspace_root>/<app>/.home`). */
  readonly home: string
  /** The agent's temp folder as the agent sees it (`/tmp` inside the sandbox). */
  readonly tmpdir: string
  /** The registry entry's `env` with the app's own environment (`clawdforge apps env`) over it. */
  readonly agentEnv: Readonly<Record<string, string>>
  /** `CLAWDFORGE_AGENT_ENV_PASS`. */
  readonly pass: ReadonlyArray<string>
  /** The gateway's environment, which only lends the listed variables. */
  readonly gatewayEnv: Readonly<Record<string, string | undefined>>
  /** Whether the gateway runs as root: agents then hear they are sandboxed (`IS_SANDBOX=1`). */
  readonly asRoot: boolean
}

export const agentEnvironment = (options: AgentEnvironmentOptions): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const name of [...inherited, ...options.pass]) {
    const value = options.gatewayEnv[name]
    if (value !== undefined) env[name] = value
  }
  env["PATH"] ??= "/usr/local/bin:/usr/bin:/bin"
  // Claude Code refuses to start as root unless told it is sandboxed.
  if (options.asRoot) env["IS_SANDBOX"] = "1"
  for (const [name, value] of Object.entries(options.agentEnv)) {
    if (!fixedByGateway.has(name)) env[name] = value
  }
  env["HOME"] = options.home
  env["TMPDIR"] = options.tmpdir
  return env
}
