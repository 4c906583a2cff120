/**
 * What turns do to a workspace (`changes`), against the scripted agent as a real process changing real
 * files (its `edit` command), real git for the snapshots, over real HTTP on loopback: the stream's `done`
 * event, the `/turn` reply, the stored turn, the `turn.completed` webhook, `GET /sessions/{id}/changes`
 * with `since_turn` and diffs, and a write between turns counted since the start but in no turn.
 */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import type { AppName } from "../src/domain/Ids.js"
import { scriptedAgentPath } from "../src/services/agents/AgentRegistry.js"
import { maxKeptBytes, snapshotsDirOf } from "../src/services/workspaces/WorkspaceChanges.js"
import { manifestOf, maxWalkEntries, unchangedTree, type Walk, walkWorkspace } from "../src/services/workspaces/WorkspaceManifest.js"
import { Webhooks } from "../src/services/tenancy/Webhooks.js"
import { agentLogFile } from "./support/ScriptedAgent.js"
import { tempDir } from "./support/TempDirs.js"
import { streamTurn } from "./support/Sse.js"
import { appName, appToken, layerScriptedGateway, otherToken, request } from "./support/TestGateway.js"
import { loopbackReceivers, type Received, receiver } from "./support/WebhookReceiver.js"

// The scripted agent keeps its own state out of the workspace, so the changes are the test's alone.
const stateDir = tempDir("clawdforge-agent-state-")
const workspaces = tempDir("clawdforge-changes-ws-")
const agentEnv = { SCRIPTED_AGENT_STATE_DIR: stateDir }
const adminToken = "changes-admin-token-0123456789"

const create = Effect.map(
  request("POST", "/sessions", { token: appToken, body: { agent: "scripted-state" } }),
  (r) => {
    expect(r.status, JSON.stringify(r.body)).toBe(200)
    return { id: r.body.session_id as string, cwd: r.body.cwd as string }
  }
)

const edit = (edits: Record<string, string | null>) => `edit ${JSON.stringify(edits)}`

const changesOf = (sid: string, query: string, token = appToken) =>
  request("GET", `/sessions/${sid}/changes${query}`, { token })

const byPath = (changes: ReadonlyArray<any>) => [...changes].sort((a, b) => a.path < b.path ? -1 : 1)

/** A plain /turn's changes. */
const turnChanges = (sid: string, prompt: string) =>
  Effect.map(request("POST", `/sessions/${sid}/turn`, { token: appToken, body: { prompt } }), (r) => {
    expect(r.status, JSON.stringify(r.body)).toBe(200)
    return r.body.changes as ReadonlyArray<any>
  })

/** The private repository's index: every git snapshot rewrites it (a new file renamed in); none: git never ran. */
const indexOf = (sid: string) => {
  const path = join(snapshotsDirOf(workspaces, appName, sid), "index")
  if (!existsSync(path)) return undefined
  const stat = statSync(path, { bigint: true })
  return `${stat.ino}:${stat.mtimeNs}`
}

/** A walk that finished (a few entries never run past the walk's time). */
const walked = (dir: string): Walk => {
  const walk = walkWorkspace(dir)
  if (typeof walk !== "object") throw new Error(`the walk gave up: ${walk}`)
  return walk
}

/** `count` files of a few bytes, 100 to a folder. */
const fill = (cwd: string, count: number) => {
  for (let i = 0; i < count; i++) {
    mkdirSync(join(cwd, `d${Math.floor(i / 100)}`), { recursive: true })
    writeFileSync(join(cwd, `d${Math.floor(i / 100)}`, `f${i % 100}.txt`), `file ${i}\n`)
  }
}

/** The scripted agent, with its state kept outside the workspace. */
const gateway = () =>
  layerScriptedGateway(agentLogFile(), {
    CLAWDFORGE_WORKSPACE_ROOT: workspaces,
    CLAWDFORGE_AGENTS: JSON.stringify({ "scripted-state": { command: [process.execPath, scriptedAgentPath], env: agentEnv } }),
    CLAWDFORGE_ADMIN_TOKEN: adminToken,
    ...loopbackReceivers
  })

describe("workspace changes", () => {
  it.scopedLive("each turn's changes (done event, reply, stored turn, webhook); since_turn with diffs; a write between turns in no turn", () =>
    Effect.gen(function*() {
      const hook = yield* Effect.promise(() => receiver(() => 200))
      yield* Effect.flatMap(Webhooks, (webhooks) => webhooks.set(appName as AppName, hook.url))
      // The gateway's copy of the webhook configuration is at most 2 s old.
      yield* Effect.sleep("2200 millis")

      const { cwd, id } = yield* create
      // Written before the first turn (as an upload is): since the start, in no turn.
      writeFileSync(join(cwd, "before.txt"), "uploaded first\n")

      // Turn 1, streamed: adds three files (one in a new folder); what it writes under .git and .home is left out.
      const { events } = yield* streamTurn(id, edit({
        "a.txt": "one\n",
        "dir/b.txt": "bee\n",
        "gone.txt": "x",
        "bin.dat": "\u0000\u0001binary",
        ".git/HEAD": "ref: refs/heads/main\n",
        ".home/secret": "not listed"
      }))
      const done = events.at(-1)!
      expect(done.event).toBe("done")
      const turn1 = [
        { path: "a.txt", status: "added", size: 4 },
        { path: "bin.dat", status: "added", size: 8 },
        { path: "dir/b.txt", status: "added", size: 4 },
        { path: "gone.txt", status: "added", size: 1 }
      ]
      expect(byPath(done.data.changes)).toEqual(turn1)

      // Between turns, as an upload does: no turn's change.
      writeFileSync(join(cwd, "upload.txt"), "between turns\n")

      // Turn 2, plain /turn: modifies one file and deletes another.
      const reply = yield* request("POST", `/sessions/${id}/turn`, {
        token: appToken,
        body: { prompt: edit({ "a.txt": "one\ntwo\n", "gone.txt": null }) }
      })
      expect(reply.status, JSON.stringify(reply.body)).toBe(200)
      const turn2 = [
        { path: "a.txt", status: "modified", size: 8 },
        { path: "gone.txt", status: "deleted", size: 1 }
      ]
      expect(byPath(reply.body.changes)).toEqual(turn2)

      // Turn 3 changes nothing.
      const quiet = yield* request("POST", `/sessions/${id}/turn`, { token: appToken, body: { prompt: "hello" } })
      expect(quiet.body.changes).toEqual([])

      // The stored turns keep them.
      for (const [n, expected] of [[1, turn1], [2, turn2], [3, []]] as const) {
        const stored = yield* request("GET", `/sessions/${id}/turns/${n}`, { token: appToken })
        expect(stored.status).toBe(200)
        expect(byPath(stored.body.changes)).toEqual(expected)
      }
      const listed = yield* request("GET", `/sessions/${id}/turns`, { token: appToken })
      expect(listed.body.turns.map((t: any) => t.changes.length)).toEqual([4, 2, 0])

      // So does each turn.completed webhook.
      yield* Effect.promise(() =>
        new Promise<void>((done, fail) => {
          const started = Date.now()
          const check = () => {
            if (hook.received.length >= 3) return done()
            if (Date.now() - started > 15_000) return fail(new Error(`webhooks: ${hook.received.length} of 3`))
            setTimeout(check, 50)
          }
          check()
        })
      )
      const payloads = (hook.received as Array<Received>).map((r) => JSON.parse(r.body)).sort((a, b) =>
        a.turn_index - b.turn_index
      )
      expect(payloads.map((p) => p.event)).toEqual(["turn.completed", "turn.completed", "turn.completed"])
      expect(byPath(payloads[0].changes)).toEqual(turn1)
      expect(byPath(payloads[1].changes)).toEqual(turn2)
      expect(payloads[2].changes).toEqual([])

      // Since the session began: both writes outside turns included; gone.txt came and went.
      const sinceStart = yield* changesOf(id, "?since_turn=0&diff=true")
      expect(sinceStart.status, JSON.stringify(sinceStart.body)).toBe(200)
      expect(sinceStart.body.changes.map((c: any) => [c.path, c.status, c.size])).toEqual([
        ["a.txt", "added", 8],
        ["before.txt", "added", 15],
        ["bin.dat", "added", 8],
        ["dir/b.txt", "added", 4],
        ["upload.txt", "added", 14]
      ])
      const a0 = sinceStart.body.changes.find((c: any) => c.path === "a.txt")
      expect(a0.diff).toContain("--- /dev/null")
      expect(a0.diff).toContain("+++ b/a.txt")
      expect(a0.diff).toContain("+one\n+two")
      // A binary file has no diff.
      expect(sinceStart.body.changes.find((c: any) => c.path === "bin.dat").diff).toBeUndefined()
      // since_turn=0 is the default.
      expect((yield* changesOf(id, "")).body.count).toBe(5)

      // After turn 1: turn 2's changes and the write between them.
      const sinceOne = yield* changesOf(id, "?since_turn=1&diff=true")
      expect(sinceOne.body.changes.map((c: any) => [c.path, c.status, c.size])).toEqual([
        ["a.txt", "modified", 8],
        ["gone.txt", "deleted", 1],
        ["upload.txt", "added", 14]
      ])
      const a1 = sinceOne.body.changes[0].diff as string
      expect(a1).toContain("--- a/a.txt")
      expect(a1).toContain("+++ b/a.txt")
      expect(a1).toContain(" one\n+two")
      expect(sinceOne.body.changes[1].diff).toContain("-x")
      // Without diff=true, no diffs.
      expect((yield* changesOf(id, "?since_turn=1")).body.changes.every((c: any) => c.diff === undefined)).toBe(true)

      // After the last turn: nothing, until something changes.
      expect((yield* changesOf(id, "?since_turn=3")).body).toEqual({ ok: true, session_id: id, since_turn: 3, count: 0, changes: [] })
      mkdirSync(join(cwd, "later"))
      writeFileSync(join(cwd, "later", "c.txt"), "c\n")
      expect((yield* changesOf(id, "?since_turn=3")).body.changes).toEqual([{ path: "later/c.txt", status: "added", size: 2 }])

      // The console's view (the admin token): the files now, each readable from a snapshot.
      const files = yield* request("GET", `/admin/sessions/${id}/files`, { token: adminToken })
      expect(files.status, JSON.stringify(files.body)).toBe(200)
      expect(files.body.files.map((f: any) => [f.path, f.size, f.type])).toEqual([
        ["a.txt", 8, "file"],
        ["before.txt", 15, "file"],
        ["bin.dat", 8, "file"],
        ["dir/b.txt", 4, "file"],
        ["later/c.txt", 2, "file"],
        ["upload.txt", 14, "file"]
      ])
      const client = yield* HttpClient.HttpClient
      const bytes = yield* client.execute(
        HttpClientRequest.get(`/admin/sessions/${id}/files/dir/b.txt`).pipe(HttpClientRequest.bearerToken(adminToken))
      ).pipe(Effect.flatMap((response) => Effect.map(response.text, (text) => [response.status, text] as const)), Effect.scoped)
      expect(bytes).toEqual([200, "bee\n"])
      const notThere = yield* request("GET", `/admin/sessions/${id}/files/.home/secret`, { token: adminToken })
      expect([notThere.status, notThere.body.error]).toEqual([404, "file_not_found"])
      // A `..` that reaches the handler is refused (one the URL resolves is just another path inside).
      for (const path of ["%2e%2e%2fa.txt", "dir%2f..%2f..%2fa.txt", "dir%5cb.txt"]) {
        const refused = yield* request("GET", `/admin/sessions/${id}/files/${path}`, { token: adminToken })
        expect([400, 404], path).toContain(refused.status)
        expect(refused.body.ok, path).toBe(false)
      }
      // An app's token is not the operators'.
      expect((yield* request("GET", `/admin/sessions/${id}/files`, { token: appToken })).status).toBe(401)

      // The snapshots are outside the workspace, and outside the app's root.
      const snapshots = snapshotsDirOf(workspaces, appName, id)
      expect(existsSync(join(snapshots, "turns", "3"))).toBe(true)
      expect(readdirSync(cwd).sort()).toEqual([".git", ".home", "a.txt", "before.txt", "bin.dat", "dir", "later", "upload.txt"])

      // Bad questions: a turn it does not have, a bad number, another app's session, no session.
      const missing = yield* changesOf(id, "?since_turn=9")
      expect([missing.status, missing.body.error]).toEqual([404, "turn_not_found"])
      const bad = yield* changesOf(id, "?since_turn=-1")
      expect([bad.status, bad.body.error]).toEqual([400, "bad_request"])
      const other = yield* changesOf(id, "?since_turn=0", otherToken)
      expect([other.status, other.body.error]).toEqual([404, "session_not_found"])
      expect((yield* changesOf("no-such-session-0000000", "")).status).toBe(404)

      // A closed session's workspace is still there: its changes too.
      expect((yield* request("DELETE", `/sessions/${id}`, { token: appToken })).status).toBe(200)
      expect((yield* changesOf(id, "?since_turn=2")).body.count).toBe(1)
      yield* Effect.promise(() => hook.close())
    }).pipe(Effect.provide(gateway())), 60_000)

  it.scopedLive("a turn that changes nothing runs no git; a same-size rewrite at once is seen; a write between turns is in no turn", () =>
    Effect.gen(function*() {
      const { cwd, id } = yield* create
      // An empty workspace: quiet turns never start git (its index is never written), and since_turn still answers.
      expect(yield* turnChanges(id, "hello")).toEqual([])
      expect(yield* turnChanges(id, "hello")).toEqual([])
      expect(indexOf(id)).toBeUndefined()
      expect((yield* changesOf(id, "?since_turn=2")).body.count).toBe(0)

      // A file, then the same file rewritten with the same size by the very next turn (well within a second).
      expect(yield* turnChanges(id, edit({ "a.txt": "one\n" }))).toEqual([{ path: "a.txt", status: "added", size: 4 }])
      expect(indexOf(id)).toBeDefined()
      expect(yield* turnChanges(id, edit({ "a.txt": "two\n" }))).toEqual([{ path: "a.txt", status: "modified", size: 4 }])
      expect(yield* turnChanges(id, edit({ "a.txt": "six\n", "b/c.txt": "c\n" }))).toEqual([
        { path: "a.txt", status: "modified", size: 4 },
        { path: "b/c.txt", status: "added", size: 2 }
      ])

      // Once its files are older than the racy window, a quiet turn runs no git at all.
      yield* Effect.sleep("1500 millis")
      expect(yield* turnChanges(id, "hello")).toEqual([])
      const settled = indexOf(id)
      expect(yield* turnChanges(id, "hello")).toEqual([])
      expect(yield* turnChanges(id, "hello")).toEqual([])
      expect(indexOf(id)).toBe(settled)

      // Written between turns (as an upload is): seen as the next turn starts, in no turn's changes.
      writeFileSync(join(cwd, "upload.txt"), "between\n")
      expect(yield* turnChanges(id, "hello")).toEqual([])
      expect(indexOf(id)).not.toBe(settled)
      expect((yield* changesOf(id, "?since_turn=8")).body.changes).toEqual([{ path: "upload.txt", status: "added", size: 8 }])

      // After quiet, settled turns, the same-size rewrite is still a modification; so is a deletion.
      yield* Effect.sleep("1500 millis")
      expect(yield* turnChanges(id, "hello")).toEqual([])
      expect(yield* turnChanges(id, edit({ "a.txt": "ten\n" }))).toEqual([{ path: "a.txt", status: "modified", size: 4 }])
      expect(yield* turnChanges(id, edit({ "b/c.txt": null }))).toEqual([{ path: "b/c.txt", status: "deleted", size: 2 }])
      // An empty folder left behind is no file: the tree is the same.
      expect(yield* turnChanges(id, "hello")).toEqual([])
    }).pipe(Effect.provide(gateway())), 60_000)

  it.scopedLive("a turn that changes one file in a 3,000-file workspace is exact", () =>
    Effect.gen(function*() {
      const { cwd, id } = yield* create
      fill(cwd, 3_000)
      expect(yield* turnChanges(id, "hello")).toEqual([])
      expect(yield* turnChanges(id, edit({ "d17/f42.txt": "file 1742 changed\n" }))).toEqual([
        { path: "d17/f42.txt", status: "modified", size: 18 }
      ])
      // Same size, an addition and a deletion in one turn.
      expect(byPath(yield* turnChanges(id, edit({ "d3/f3.txt": "FILE 303\n", "d29/new.txt": "n\n", "d0/f0.txt": null }))))
        .toEqual([
          { path: "d0/f0.txt", status: "deleted", size: 7 },
          { path: "d29/new.txt", status: "added", size: 2 },
          { path: "d3/f3.txt", status: "modified", size: 9 }
        ])
      expect(yield* turnChanges(id, "hello")).toEqual([])
      expect((yield* changesOf(id, "?since_turn=0")).body.count).toBe(3_000)
    }).pipe(Effect.provide(gateway())), 60_000)

  it("the walk: what it leaves out, what it does not follow, its bound, and the racy window", () => {
    const dir = tempDir("clawdforge-manifest-")
    mkdirSync(join(dir, ".git"))
    writeFileSync(join(dir, ".git", "HEAD"), "x")
    mkdirSync(join(dir, ".home"))
    writeFileSync(join(dir, ".home", "secret"), "x")
    mkdirSync(join(dir, "empty"))
    const empty = walked(dir)
    expect(empty.files).toBe(0)
    writeFileSync(join(dir, "a.txt"), "one\n")
    // A link is one entry, never followed (it points at a tree far past the bound).
    symlinkSync("/usr", join(dir, "usr"))
    const fresh = walked(dir)
    expect(fresh.files).toBe(2)
    // Just written: inside the racy window, so an equal walk still asks git.
    const racy = manifestOf(fresh, "tree-1")
    expect(racy.settled).toBe(false)
    expect(walked(dir).digest).toBe(fresh.digest)
    expect(unchangedTree(racy, walkWorkspace(dir))).toBeUndefined()
    // Older than the window: equal walks mean the same tree; any moved stat does not.
    const old = { ...fresh, startedNs: fresh.startedNs + 2_000_000_000n }
    expect(unchangedTree(manifestOf(old, "tree-1"), walkWorkspace(dir))).toBe("tree-1")
    // A file system whose clock is 5 s behind the wall clock keeps the window open that much longer.
    expect(manifestOf(old, "tree-1", { fsNowNs: old.startedNs - 5_000_000_000n, wallNowNs: old.startedNs }).settled).toBe(false)
    // A file made and removed again (as between a walk and git's snapshot) moves its folder: not the same.
    writeFileSync(join(dir, "empty", "brief.txt"), "x")
    rmSync(join(dir, "empty", "brief.txt"))
    expect(walked(dir).digest).not.toBe(fresh.digest)
    const later = walked(dir)
    const settledLater = manifestOf({ ...later, startedNs: later.startedNs + 2_000_000_000n }, "tree-2")
    expect(unchangedTree(settledLater, walkWorkspace(dir))).toBe("tree-2")
    writeFileSync(join(dir, "a.txt"), "two\n")
    expect(unchangedTree(settledLater, walkWorkspace(dir))).toBeUndefined()
    // A repository nested in the workspace is git's to see (a gitlink); so is a workspace past the bound.
    mkdirSync(join(dir, "sub", ".git"), { recursive: true })
    expect(walkWorkspace(dir)).toBe("bound")
    const big = tempDir("clawdforge-manifest-big-")
    fill(big, maxWalkEntries + 1)
    expect(["bound", "busy"]).toContain(walkWorkspace(big))
  })

  it.scopedLive("a file past the size kept is listed by size, never diffed, and its copy is not kept", () =>
    Effect.gen(function*() {
      const { cwd, id } = yield* create
      const size = maxKeptBytes + 1024
      const turn = yield* request("POST", `/sessions/${id}/turn`, {
        token: appToken,
        body: { prompt: `edit ${JSON.stringify({ "small.txt": "s\n" })}` }
      })
      expect(turn.status).toBe(200)
      writeFileSync(join(cwd, "big.bin"), Buffer.alloc(size, 7))
      const grown = yield* request("POST", `/sessions/${id}/turn`, { token: appToken, body: { prompt: "hello" } })
      // Written between turns: in no turn.
      expect(grown.body.changes).toEqual([])
      const since = yield* changesOf(id, "?since_turn=1&diff=true")
      expect(since.body.changes).toEqual([{ path: "big.bin", status: "added", size }])
      // The objects kept are small: the big file's copy went.
      const objects = join(snapshotsDirOf(workspaces, appName, id), "objects")
      let kept = 0
      for (const dir of readdirSync(objects)) {
        for (const file of readdirSync(join(objects, dir))) kept += statSync(join(objects, dir, file)).size
      }
      expect(kept).toBeLessThan(1024 * 1024)
      // Deleted by a turn: listed with the size it had.
      const removed = yield* request("POST", `/sessions/${id}/turn`, {
        token: appToken,
        body: { prompt: `edit ${JSON.stringify({ "big.bin": null })}` }
      })
      expect(removed.body.changes).toEqual([{ path: "big.bin", status: "deleted", size }])
    }).pipe(Effect.provide(gateway())), 60_000)
})
