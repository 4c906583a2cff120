/**
 * `git` on create in a gateway cluster (the `postgres` project only): the create is the entity's
 * message to the node that owns the new session, which clones into the workspace root every node
 * shares before it starts the agent; a clone that fails there is the caller's 400 `git_clone_failed`
 * on whichever node took the request, leaving nothing.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { type ClusterNode, clusterEnv, clusterStatus, startCluster, stopCluster, untilFormed } from "./support/Cluster.js"
import { api } from "./support/GatewayProcess.js"
import { git, makeRepository } from "./support/GitRepository.js"
import { postgres } from "./support/Ledgers.js"
import { createDatabase } from "./support/Postgres.js"
import { appName } from "./support/TestGateway.js"

const server = postgres!
let nodes: Array<ClusterNode> = []
afterAll(() => stopCluster(nodes))

describe("a cluster's sessions from a repository", () => {
  it("every node clones the sessions it owns; a failed clone is 400 git_clone_failed through any node", async () => {
    const source = makeRepository()
    const env = clusterEnv(await createDatabase(server), { CLAWDFORGE_GIT_ALLOW_FILE: "true" })
    nodes = await startCluster(env, 2)
    await untilFormed(nodes[0]!, 2)
    const root = join(env.CLAWDFORGE_WORKSPACE_ROOT, appName)
    const folders = () => existsSync(root) ? readdirSync(root).filter((name) => name !== ".home").sort() : []

    // Until both nodes run one: the creates taken by node 0 for sessions node 1 owns are cloned there.
    const sessions: Array<string> = []
    for (let i = 0; i < 24; i++) {
      const created = await api(nodes[0]!.gateway, "POST", "/sessions", { agent: "echo", git: { url: source.repo, ref: "feature" } })
      expect(created.status, JSON.stringify(created.body)).toBe(200)
      sessions.push(created.body.session_id)
      const cwd = created.body.cwd as string
      expect(readFileSync(join(cwd, "feature.txt"), "utf8")).toBe("feature\n")
      expect(git(cwd, "rev-parse", "HEAD")).toBe(source.feature)
      const status = await clusterStatus(nodes[0]!)
      if (status.nodes.every((node) => node.live_sessions > 0)) break
    }
    expect((await clusterStatus(nodes[0]!)).nodes.map((node) => node.live_sessions > 0)).toEqual([true, true])
    expect(folders()).toEqual([...sessions].sort())

    for (let i = 0; i < 8; i++) {
      const failed = await api(nodes[i % 2]!.gateway, "POST", "/sessions", { agent: "echo", git: { url: source.repo, ref: "no-such-ref" } })
      expect(failed.status, JSON.stringify(failed.body)).toBe(400)
      expect(failed.body).toMatchObject({ ok: false, error: "git_clone_failed" })
      expect(failed.body.message).toMatch(/no-such-ref/)
    }
    expect(folders()).toEqual([...sessions].sort())
    const listed = await api(nodes[1]!.gateway, "GET", "/sessions?limit=1000")
    expect(listed.body.sessions.map((s: { session_id: string }) => s.session_id).sort()).toEqual([...sessions].sort())
  }, 120_000)
})
