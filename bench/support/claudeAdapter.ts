/**
 * The real Claude ACP adapter (`@agentclientprotocol/claude-agent-acp`), installed with npm once
 * into the same cache the tests use (test/claude-adapter.test.ts): it brings a Claude Code binary of
 * a few hundred MB. Run without credentials (`IS_SANDBOX=1`, as root needs): `session/new` works,
 * a prompt asks for authentication.
 */
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync } from "node:fs"
import { homedir } from "node:os"
import { join } from "node:path"

export const claudeAdapterVersion = "0.101.0"
const cacheDir = join(homedir(), ".cache", "clawdforge-test", `claude-agent-acp-${claudeAdapterVersion}`)

/** The adapter's bin, installed first when the cache does not have it. */
export const claudeAdapterBin = (note: (line: string) => void) => {
  const bin = join(cacheDir, "node_modules", ".bin", "claude-agent-acp")
  if (existsSync(bin)) return bin
  note(`installing @agentclientprotocol/claude-agent-acp@${claudeAdapterVersion} into ${cacheDir}`)
  mkdirSync(cacheDir, { recursive: true })
  execFileSync("npm", [
    "install",
    "--no-audit",
    "--no-fund",
    "--no-save",
    "--prefix",
    cacheDir,
    `@agentclientprotocol/claude-agent-acp@${claudeAdapterVersion}`
  ], { stdio: "ignore", timeout: 300_000 })
  return bin
}

/** `CLAWDFORGE_AGENTS` registering the adapter as `claude`. */
export const claudeAgents = (bin: string) => JSON.stringify({ claude: { command: [bin], env: { IS_SANDBOX: "1" } } })
