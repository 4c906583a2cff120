/**
 * The real Claude ACP adapter (`@agentclientprotocol/claude-agent-acp`), installed with npm once into
 * a cache the tests and the bench share: it brings a Claude Code binary of a few hundred MB. Run
 * without credentials (`IS_SANDBOX=1`, as root needs): `session/new` works, a prompt asks for
 * authentication.
 */
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs"
import { homedir } from "node:os"
import { join } from "node:path"

export const claudeAdapterVersion = "0.101.0"
/** Where the adapter is installed (kept between runs, outside the run's temp folder). */
export const claudeAdapterDir = join(homedir(), ".cache", "clawdforge-test", `claude-agent-acp-${claudeAdapterVersion}`)

/** The adapter's bin, installed first when the cache does not have it. */
export const claudeAdapterBin = (note: (line: string) => void = () => {}) => {
  const bin = join(claudeAdapterDir, "node_modules", ".bin", "claude-agent-acp")
  if (existsSync(bin)) return bin
  note(`installing @agentclientprotocol/claude-agent-acp@${claudeAdapterVersion} into ${claudeAdapterDir}`)
  mkdirSync(claudeAdapterDir, { recursive: true })
  execFileSync("npm", [
    "install",
    "--no-audit",
    "--no-fund",
    "--no-save",
    "--prefix",
    claudeAdapterDir,
    `@agentclientprotocol/claude-agent-acp@${claudeAdapterVersion}`
  ], { stdio: "ignore", timeout: 300_000 })
  return bin
}

/** Processes whose command line runs something from the adapter's folder. */
export const claudeAdapterProcesses = () =>
  readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(claudeAdapterDir)
    } catch {
      return false
    }
  })

/** `CLAWDFORGE_AGENTS` registering the adapter as `claude`. */
export const claudeAgents = (bin: string) => JSON.stringify({ claude: { command: [bin], env: { IS_SANDBOX: "1" } } })
