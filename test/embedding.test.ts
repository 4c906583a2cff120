/** The embedding surface: an Effect program that uses the gateway's layers without HTTP. */
import { spawnSync } from "node:child_process"
import { resolve } from "node:path"
import { describe, expect, it } from "vitest"
import * as clawdforge from "../src/index.js"

const root = resolve(import.meta.dirname, "..")

describe("embedding", () => {
  it("the package surface exports the Api, the services, the layers and the clients", () => {
    for (const name of ["Api", "Sessions", "Ledger", "AgentPool", "Sweeper", "sweepOnce", "ServicesLive", "GatewayLive", "HttpAppLive", "makeClient", "createFetchClient"]) {
      expect(clawdforge, name).toHaveProperty(name)
    }
  })

  it("examples/embed.ts holds a conversation through the Sessions service", () => {
    const run = spawnSync(process.execPath, ["--import", "tsx", "examples/embed.ts"], {
      cwd: root,
      encoding: "utf8",
      timeout: 30_000
    })
    expect(run.status, run.stderr).toBe(0)
    const lines = run.stdout.trim().split("\n")
    expect(lines[0]).toMatch(/^session [A-Za-z0-9_-]{24} with echo$/)
    expect(lines[1]).toBe("turn 1 (end_turn): echo: hello from an embedding program")
    expect(lines[2]).toBe("turn 2 (end_turn): history: [\"hello from an embedding program\"]")
    expect(lines[3]).toBe("audit: create, turn, turn, close")
  })
})
