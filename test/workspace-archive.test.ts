/**
 * `GET/PUT /sessions/{id}/archive` over real HTTP on loopback, with the demo agent's sessions and real
 * files: a workspace with links and a virtualenv-like tree goes out of one session and into another
 * intact; every hostile archive is refused whole, leaving the workspace as it was and nothing outside
 * it (the folders above it included); an agent swapping a folder for a link while archives are taken
 * never gets a byte from outside into one; with the sandbox, what an archive puts belongs to the agent.
 */
import { FetchHttpClient, HttpClient, HttpClientRequest, HttpServer } from "@effect/platform"
import { describe, expect, it, layer } from "@effect/vitest"
import { afterAll, beforeAll } from "vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync
} from "node:fs"
import { dirname, join } from "node:path"
import { gzipSync } from "node:zlib"
import * as tar from "tar"
import { makeClient } from "../src/client/EffectClient.js"
import { AgentPool } from "../src/services/sessions/AgentPool.js"
import { bwrapAvailable } from "./support/Bubblewrap.js"
import { api, type GatewayProcess, startGateway } from "./support/GatewayProcess.js"
import { agentText } from "./support/ScriptedAgent.js"
import { tempDir } from "./support/TempDirs.js"
import { appToken, layerTestGateway, otherToken, request } from "./support/TestGateway.js"

const mb = 1024 * 1024

/** A request with a raw body (or none), answered as bytes. */
const raw = (method: "GET" | "PUT", path: string, body?: Uint8Array, token = appToken) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    let req = HttpClientRequest.bearerToken(HttpClientRequest.make(method)(path), token)
    if (body !== undefined) req = HttpClientRequest.bodyUint8Array(req, body, "application/gzip")
    const response = yield* client.execute(req)
    const bytes = new Uint8Array(yield* response.arrayBuffer)
    const text = Buffer.from(bytes).toString("utf8")
    let json: any
    try {
      json = JSON.parse(text)
    } catch {
      json = undefined
    }
    return { status: response.status, headers: response.headers, bytes, json }
  }).pipe(Effect.scoped)

/** A new session of the demo agent, and its workspace folder. */
const openSession = (token = appToken) =>
  Effect.gen(function*() {
    const created = yield* request("POST", "/sessions", { token, body: { agent: "echo" } })
    expect(created.status, JSON.stringify(created.body)).toBe(200)
    const sid = created.body.session_id as string
    const state = yield* request("GET", `/sessions/${sid}`, { token })
    return { sid, cwd: state.body.cwd as string }
  })

/** Everything under a folder, never following a link: kind, link target, content hash, mode. */
const snapshot = (dir: string): Record<string, string> => {
  const out: Record<string, string> = {}
  const walk = (at: string, prefix: string) => {
    for (const name of readdirSync(at).sort()) {
      const path = join(at, name)
      const key = prefix + name
      const stats = lstatSync(path)
      if (stats.isSymbolicLink()) out[key] = `link -> ${readlinkSync(path)}`
      else if (stats.isDirectory()) {
        out[key] = "dir"
        walk(path, `${key}/`)
      } else out[key] = `file ${createHash("sha256").update(readFileSync(path)).digest("hex").slice(0, 16)} ${(stats.mode & 0o777).toString(8)}`
    }
  }
  walk(dir, "")
  return out
}

/** A tar.gz made by tar itself from a folder (links stored as links). */
const tarGzOf = (dir: string, gzip = true) => {
  const file = join(tempDir("clawdforge-tar-"), gzip ? "a.tar.gz" : "a.tar")
  tar.c({ sync: true, gzip, cwd: dir, file, portable: true }, readdirSync(dir))
  return new Uint8Array(readFileSync(file))
}

interface RawEntry {
  readonly path: string
  readonly type: "File" | "Directory" | "SymbolicLink" | "Link" | "FIFO" | "CharacterDevice"
  readonly linkpath?: string
  readonly data?: string | Buffer
}

/** A tar written header by header, for entries tar's packer would never make (absolute, `..`, hostile links). */
const rawTar = (entries: ReadonlyArray<RawEntry>, gzip = true) => {
  const blocks: Array<Buffer> = []
  for (const entry of entries) {
    const data = entry.data === undefined ? Buffer.alloc(0) : Buffer.from(entry.data)
    const header = new tar.Header({
      path: entry.path,
      type: entry.type,
      mode: entry.type === "Directory" ? 0o755 : 0o644,
      size: data.length,
      mtime: new Date(),
      ...(entry.linkpath === undefined ? {} : { linkpath: entry.linkpath })
    })
    header.encode()
    blocks.push(header.block!, data, Buffer.alloc((512 - (data.length % 512)) % 512))
  }
  blocks.push(Buffer.alloc(1024))
  const bytes = Buffer.concat(blocks)
  return new Uint8Array(gzip ? gzipSync(bytes) : bytes)
}

/** The entries of a tar.gz as tar lists them: path -> kind (and link target), plus every file's bytes. */
const listArchive = (bytes: Uint8Array) => {
  const entries: Record<string, string> = {}
  const contents: Array<Buffer> = []
  const file = join(tempDir("clawdforge-list-"), "a.tar.gz")
  writeFileSync(file, bytes)
  tar.t({
    sync: true,
    file,
    onReadEntry: (entry) => {
      entries[entry.path.replace(/\/$/, "")] = entry.type === "SymbolicLink" ? `link -> ${entry.linkpath}` : entry.type
      entry.on("data", (chunk: Buffer) => contents.push(chunk))
    }
  })
  return { entries, content: Buffer.concat(contents).toString("latin1") }
}

/** A virtualenv as Python makes one, beside a link to a file outside the workspace and a long name. */
const makeVirtualenvTree = (dir: string) => {
  mkdirSync(join(dir, "venv/bin"), { recursive: true })
  mkdirSync(join(dir, "venv/lib/python3.11/site-packages/pkg"), { recursive: true })
  symlinkSync("/usr/bin/python3", join(dir, "venv/bin/python"))
  symlinkSync("python", join(dir, "venv/bin/python3"))
  symlinkSync("lib", join(dir, "venv/lib64"))
  writeFileSync(join(dir, "venv/pyvenv.cfg"), "home = /usr/bin\ninclude-system-site-packages = false\n")
  writeFileSync(join(dir, "venv/bin/activate"), "# This file must be used with \"source bin/activate\"\n", { mode: 0o755 })
  writeFileSync(join(dir, "venv/lib/python3.11/site-packages/pkg/__init__.py"), "VALUE = 42\n")
  writeFileSync(join(dir, "data.bin"), randomBytes(300_000))
  symlinkSync("/etc/passwd", join(dir, "passwd-link"))
  mkdirSync(join(dir, "empty"))
  const deep = join(dir, "n".repeat(120), "m".repeat(120))
  mkdirSync(deep, { recursive: true })
  writeFileSync(join(deep, "long-name.txt"), "long")
}

/** What must never change when an archive is refused: the workspace, the folders above it, the staging area. */
const guard = (cwd: string, outside = tempDir("clawdforge-outside-")) => {
  const appRoot = dirname(cwd)
  const root = dirname(appRoot)
  const before = {
    workspace: snapshot(cwd),
    app: readdirSync(appRoot).sort(),
    root: readdirSync(root).sort(),
    passwd: statSync("/etc/passwd")
  }
  return {
    outside,
    unchanged: () => {
      expect(snapshot(cwd)).toEqual(before.workspace)
      expect(readdirSync(appRoot).sort()).toEqual(before.app)
      expect(readdirSync(root).sort()).toEqual(before.root)
      expect(readdirSync(outside)).toEqual([])
      const passwd = statSync("/etc/passwd")
      expect([passwd.nlink, passwd.size, passwd.mtimeMs]).toEqual([before.passwd.nlink, before.passwd.size, before.passwd.mtimeMs])
      // The staging area keeps nothing of a refused archive.
      const staging = join(root, ".uploads")
      if (existsSync(staging)) expect(readdirSync(staging).filter((name) => name.startsWith("archive-"))).toEqual([])
    }
  }
}

const gateway = layerTestGateway({
  pool: AgentPool.Default,
  config: { CLAWDFORGE_WORKSPACE_MAX_MB: "4", CLAWDFORGE_MAX_LIVE_SESSIONS: "40" }
})

layer(gateway, { timeout: 60_000 })("workspace archives", (it) => {
  it.effect("a workspace with links and a virtualenv goes out of one session and into another intact", () =>
    Effect.gen(function*() {
      const source = yield* openSession()
      makeVirtualenvTree(source.cwd)
      const got = yield* raw("GET", `/sessions/${source.sid}/archive`)
      expect(got.status).toBe(200)
      expect(got.headers["content-type"]).toBe("application/gzip")
      expect(got.headers["content-disposition"]).toContain(`${source.sid}.tar.gz`)
      const { entries, content } = listArchive(got.bytes)
      // Links stored as links, never followed: the password file's text is not in the archive.
      expect(entries["venv/bin/python"]).toBe("link -> /usr/bin/python3")
      expect(entries["venv/lib64"]).toBe("link -> lib")
      expect(entries["passwd-link"]).toBe("link -> /etc/passwd")
      expect(content).not.toContain("root:x:0:0")
      // Names relative to the workspace's root.
      expect(Object.keys(entries).every((path) => !path.startsWith("/") && !path.includes(".."))).toBe(true)

      const target = yield* openSession()
      const put = yield* raw("PUT", `/sessions/${target.sid}/archive`, got.bytes)
      expect(put.status, JSON.stringify(put.json)).toBe(200)
      expect(put.json).toMatchObject({ ok: true })
      expect(put.json.entries).toBe(Object.keys(entries).length)
      expect(snapshot(target.cwd)).toEqual(snapshot(source.cwd))
      expect(readlinkSync(join(target.cwd, "venv/bin/python"))).toBe("/usr/bin/python3")
      expect(readFileSync(join(target.cwd, "venv/lib64/python3.11/site-packages/pkg/__init__.py"), "utf8")).toBe("VALUE = 42\n")
      // GNU tar reads it too.
      const unpacked = tempDir("clawdforge-gnutar-")
      const file = join(unpacked, "..", `${target.sid}.tar.gz`)
      writeFileSync(file, got.bytes)
      const gnu = spawn("tar", ["-xzf", file, "-C", unpacked])
      const code = yield* Effect.async<number | null>((resume) => void gnu.once("close", (c) => resume(Effect.succeed(c))))
      expect(code).toBe(0)
      expect(snapshot(unpacked)).toEqual(snapshot(source.cwd))
    }))

  it.effect("a plain tar merges into the folders already there; a file or link replaces one, never through it", () =>
    Effect.gen(function*() {
      const { sid, cwd } = yield* openSession()
      mkdirSync(join(cwd, "src/keep"), { recursive: true })
      writeFileSync(join(cwd, "src/keep/old.txt"), "old")
      writeFileSync(join(cwd, "src/main.py"), "print('before')\n")
      const outside = tempDir("clawdforge-outside-")
      writeFileSync(join(outside, "target.txt"), "outside")
      symlinkSync(join(outside, "target.txt"), join(cwd, "was-a-link"))
      // Made by tar itself, not gzipped.
      const upload = tempDir("clawdforge-upload-")
      mkdirSync(join(upload, "src/new"), { recursive: true })
      writeFileSync(join(upload, "src/main.py"), "print('after')\n")
      writeFileSync(join(upload, "src/new/added.txt"), "added")
      writeFileSync(join(upload, "was-a-link"), "now a file")
      const put = yield* raw("PUT", `/sessions/${sid}/archive`, tarGzOf(upload, false))
      expect(put.status, JSON.stringify(put.json)).toBe(200)
      expect(readFileSync(join(cwd, "src/keep/old.txt"), "utf8")).toBe("old")
      expect(readFileSync(join(cwd, "src/main.py"), "utf8")).toBe("print('after')\n")
      expect(readFileSync(join(cwd, "src/new/added.txt"), "utf8")).toBe("added")
      expect(lstatSync(join(cwd, "was-a-link")).isFile()).toBe(true)
      expect(readFileSync(join(outside, "target.txt"), "utf8")).toBe("outside")
      // A hard link between two files of the archive is kept as one.
      const linked = yield* raw("PUT", `/sessions/${sid}/archive`, rawTar([
        { path: "first.txt", type: "File", data: "shared" },
        { path: "second.txt", type: "Link", linkpath: "first.txt" }
      ]))
      expect(linked.status, JSON.stringify(linked.json)).toBe(200)
      expect(statSync(join(cwd, "second.txt")).ino).toBe(statSync(join(cwd, "first.txt")).ino)
    }))

  it.effect("the Effect client downloads and uploads archives as bytes", () =>
    Effect.gen(function*() {
      const source = yield* openSession()
      makeVirtualenvTree(source.cwd)
      const target = yield* openSession()
      const url = yield* HttpServer.addressFormattedWith(Effect.succeed)
      const client = yield* makeClient({ baseUrl: url, token: appToken }).pipe(Effect.provide(FetchHttpClient.layer))
      const bytes = yield* client.getArchive({ path: { id: source.sid } })
      expect(bytes).toBeInstanceOf(Uint8Array)
      expect(listArchive(bytes).entries["venv/lib64"]).toBe("link -> lib")
      const put = yield* client.putArchive({ path: { id: target.sid }, payload: bytes })
      expect(put).toMatchObject({ ok: true, entries: Object.keys(listArchive(bytes).entries).length })
      expect(readlinkSync(join(target.cwd, "venv/bin/python"))).toBe("/usr/bin/python3")
      const refused = yield* Effect.flip(client.putArchive({ path: { id: target.sid }, payload: rawTar([{ path: "../x", type: "File", data: "x" }]) }))
      expect(refused).toMatchObject({ _tag: "BadArchive", error: "bad_archive" })
    }))

  const refusals: ReadonlyArray<{ readonly name: string; readonly archive: (outside: string, cwd: string) => Uint8Array; readonly says: RegExp }> = [
    {
      name: "an absolute entry",
      archive: (outside) => rawTar([{ path: "ok.txt", type: "File", data: "fine" }, { path: join(outside, "abs.txt"), type: "File", data: "x" }]),
      says: /absolute/
    },
    { name: "`../x`", archive: () => rawTar([{ path: "ok.txt", type: "File", data: "fine" }, { path: "../x", type: "File", data: "x" }]), says: /\.\./ },
    { name: "`a/../../x`", archive: () => rawTar([{ path: "a/", type: "Directory" }, { path: "a/../../x", type: "File", data: "x" }]), says: /\.\./ },
    {
      name: "a symlink, then a file through it",
      archive: (outside) =>
        rawTar([
          { path: "ok.txt", type: "File", data: "fine" },
          { path: "escape", type: "SymbolicLink", linkpath: outside },
          { path: "escape/pwned.txt", type: "File", data: "x" }
        ]),
      says: /symlink "escape"/
    },
    {
      name: "a symlink, then another entry in its place",
      archive: (outside) =>
        rawTar([{ path: "escape", type: "SymbolicLink", linkpath: join(outside, "file") }, { path: "escape", type: "File", data: "x" }]),
      says: /replaces the symlink/
    },
    { name: "a hard link to /etc/passwd", archive: () => rawTar([{ path: "passwd", type: "Link", linkpath: "/etc/passwd" }]), says: /hard link/ },
    {
      name: "a hard link out of the workspace",
      archive: () => rawTar([{ path: "ok.txt", type: "File", data: "fine" }, { path: "h", type: "Link", linkpath: "../../outside.txt" }]),
      says: /hard link/
    },
    {
      name: "a hard link to a file the archive does not hold",
      archive: () => rawTar([{ path: "h", type: "Link", linkpath: "existing.txt" }]),
      says: /hard link/
    },
    { name: "a FIFO", archive: () => rawTar([{ path: "fifo", type: "FIFO" }]), says: /FIFO/ },
    { name: "a device", archive: () => rawTar([{ path: "null", type: "CharacterDevice" }]), says: /CharacterDevice/ },
    { name: "a backslash in a name", archive: () => rawTar([{ path: "a\\..\\..\\x", type: "File", data: "x" }]), says: /backslash/ },
    {
      name: "a link already in the workspace that the archive writes through",
      archive: () => rawTar([{ path: "ok.txt", type: "File", data: "fine" }, { path: "escape/pwned.txt", type: "File", data: "x" }]),
      says: /symlink/
    },
    {
      name: "a folder over a file of the workspace",
      archive: () => rawTar([{ path: "existing.txt/inner.txt", type: "File", data: "x" }]),
      says: /existing\.txt/
    },
    {
      name: "a truncated gzip",
      archive: () => {
        const whole = rawTar([{ path: "ok.txt", type: "File", data: "fine" }, { path: "big.bin", type: "File", data: randomBytes(200_000) }])
        return whole.subarray(0, Math.floor(whole.length / 2))
      },
      says: /not a valid tar/
    },
    {
      name: "a truncated tar",
      archive: () => rawTar([{ path: "ok.txt", type: "File", data: "fine" }, { path: "big.bin", type: "File", data: randomBytes(20_000) }], false).subarray(0, 6_000),
      says: /not a valid tar/
    },
    { name: "not a tar", archive: () => new Uint8Array(Buffer.from("this is not an archive, only some text ".repeat(40))), says: /not a valid tar/ },
    { name: "an empty body", archive: () => new Uint8Array(0), says: /not a valid tar/ }
  ]

  for (const refusal of refusals) {
    it.effect(`refused whole: ${refusal.name}`, () =>
      Effect.gen(function*() {
        const { sid, cwd } = yield* openSession()
        writeFileSync(join(cwd, "existing.txt"), "kept")
        // The agent's own link out of its workspace (for the archive that would write through it).
        const outside = tempDir("clawdforge-outside-")
        symlinkSync(outside, join(cwd, "escape"))
        const fence = guard(cwd, outside)
        const put = yield* raw("PUT", `/sessions/${sid}/archive`, refusal.archive(outside, cwd))
        expect(put.status, JSON.stringify(put.json)).toBe(400)
        expect(put.json).toMatchObject({ ok: false, error: "bad_archive" })
        expect(put.json.message).toMatch(refusal.says)
        fence.unchanged()
        expect(readFileSync(join(cwd, "existing.txt"), "utf8")).toBe("kept")
        expect(existsSync(join(dirname(cwd), "x"))).toBe(false)
        expect(existsSync(join(dirname(dirname(cwd)), "outside.txt"))).toBe(false)
      }))
  }

  it.effect("a bomb past the workspace's quota is refused from its header: 413, nothing extracted", () =>
    Effect.gen(function*() {
      const { sid, cwd } = yield* openSession()
      const fence = guard(cwd)
      // 64 MB of zeros, a few KB gzipped, declared in the first header: past the 4 MB quota at once.
      const header = new tar.Header({ path: "zeros.bin", type: "File", size: 64 * mb, mode: 0o644, mtime: new Date() })
      header.encode()
      const bomb = new Uint8Array(gzipSync(Buffer.concat([
        rawTarBlock("small.txt", "fits"),
        header.block!,
        Buffer.alloc(64 * mb),
        Buffer.alloc(1024)
      ])))
      expect(bomb.length).toBeLessThan(mb)
      const put = yield* raw("PUT", `/sessions/${sid}/archive`, bomb)
      expect(put.status, JSON.stringify(put.json)).toBe(413)
      expect(put.json).toMatchObject({ ok: false, error: "workspace_quota" })
      fence.unchanged()
      // Many small files past the quota too.
      const many = rawTar(Array.from({ length: 90 }, (_, i) => ({ path: `f${i}.bin`, type: "File" as const, data: Buffer.alloc(50_000, i) })))
      const again = yield* raw("PUT", `/sessions/${sid}/archive`, many)
      expect(again.status).toBe(413)
      fence.unchanged()
    }))

  it.effect("another app's session is 404 both ways; a closed session's archive can be read, not changed", () =>
    Effect.gen(function*() {
      const { sid, cwd } = yield* openSession()
      writeFileSync(join(cwd, "mine.txt"), "mine")
      const fence = guard(cwd)
      expect((yield* raw("GET", `/sessions/${sid}/archive`, undefined, otherToken)).status).toBe(404)
      const put = yield* raw("PUT", `/sessions/${sid}/archive`, rawTar([{ path: "theirs.txt", type: "File", data: "x" }]), otherToken)
      expect(put.status).toBe(404)
      expect(put.json).toMatchObject({ error: "session_not_found" })
      expect((yield* raw("GET", `/sessions/nope-0000000000000000/archive`)).status).toBe(404)
      fence.unchanged()
      expect((yield* request("DELETE", `/sessions/${sid}`, { token: appToken })).status).toBe(200)
      const got = yield* raw("GET", `/sessions/${sid}/archive`)
      expect(got.status).toBe(200)
      expect(listArchive(got.bytes).entries["mine.txt"]).toBe("File")
      const closedPut = yield* raw("PUT", `/sessions/${sid}/archive`, rawTar([{ path: "late.txt", type: "File", data: "x" }]))
      expect(closedPut.status).toBe(410)
      fence.unchanged()
    }))

  it.effect("an agent swapping a folder for a link while archives are taken never gets a byte from outside into one", () =>
    Effect.gen(function*() {
      const { sid, cwd } = yield* openSession()
      const outside = tempDir("clawdforge-outside-")
      writeFileSync(join(outside, "stolen.txt"), "OUTSIDE-SECRET")
      mkdirSync(join(cwd, "dir"))
      writeFileSync(join(cwd, "dir/inside.txt"), "inside")
      symlinkSync(outside, join(cwd, "link"))
      // A loop in another process: the folder and a link to the outside take turns under one name.
      const swapper = spawn("sh", ["-c", "while true; do mv dir real; mv link dir; mv dir link; mv real dir; done"], {
        cwd,
        stdio: "ignore"
      })
      yield* Effect.addFinalizer(() => Effect.sync(() => swapper.kill("SIGKILL")))
      let sawDir = 0
      for (let i = 0; i < 40; i++) {
        const got = yield* raw("GET", `/sessions/${sid}/archive`)
        expect(got.status).toBe(200)
        const { entries, content } = listArchive(got.bytes)
        expect(content).not.toContain("OUTSIDE-SECRET")
        expect(Object.keys(entries).filter((path) => path.endsWith("stolen.txt"))).toEqual([])
        if (entries["dir/inside.txt"] === "File") sawDir++
      }
      swapper.kill("SIGKILL")
      expect(sawDir).toBeGreaterThan(0)
    }).pipe(Effect.scoped))
})

/** One file's header and bytes, padded: for archives assembled by hand. */
const rawTarBlock = (path: string, text: string) => {
  const data = Buffer.from(text)
  const header = new tar.Header({ path, type: "File", size: data.length, mode: 0o644, mtime: new Date() })
  header.encode()
  return Buffer.concat([header.block!, data, Buffer.alloc((512 - (data.length % 512)) % 512)])
}

// A gateway process of its own: the sandboxed agent runs as the agent's user there, as in production.
describe.skipIf(!bwrapAvailable)("with the sandbox (install bubblewrap to run these)", () => {
  let gateway: GatewayProcess
  const asRoot = process.getuid?.() === 0
  beforeAll(async () => {
    gateway = await startGateway({ CLAWDFORGE_SANDBOX: "bwrap" })
  })
  afterAll(() => gateway?.stop())

  it("what an archive puts belongs to the agent's user, links included", async () => {
    const created = await api(gateway, "POST", "/sessions", { agent: "echo" })
    expect(created.status, JSON.stringify(created.body)).toBe(200)
    const sid = created.body.session_id as string
    const cwd = created.body.cwd as string
    const put = await fetch(`${gateway.url}/sessions/${sid}/archive`, {
      method: "PUT",
      headers: { authorization: `Bearer ${appToken}`, "content-type": "application/gzip" },
      body: rawTar([
        { path: "pkg/", type: "Directory" },
        { path: "pkg/mod.py", type: "File", data: "x = 1\n" },
        { path: "pkg/link", type: "SymbolicLink", linkpath: "/usr/bin/python3" }
      ])
    })
    expect(put.status, await put.clone().text()).toBe(200)
    const expected = asRoot ? 65534 : process.getuid!()
    for (const path of ["pkg", "pkg/mod.py", "pkg/link"]) expect(lstatSync(join(cwd, path)).uid, path).toBe(expected)
    // The agent (that user, in its sandbox) changes and adds files in the folders the archive made.
    const turn = await api(gateway, "POST", `/sessions/${sid}/turn`, {
      prompt: `edit ${JSON.stringify({ "pkg/mod.py": "x = 2\n", "pkg/new.py": "y = 1\n" })}`
    })
    expect(turn.status).toBe(200)
    expect(agentText(turn.body.events)).toBe(`edit: ${JSON.stringify({ ok: true, written: 2, deleted: 0 })}`)
    expect(readFileSync(join(cwd, "pkg/mod.py"), "utf8")).toBe("x = 2\n")
    expect(lstatSync(join(cwd, "pkg/new.py")).uid).toBe(expected)
  }, 60_000)
})
