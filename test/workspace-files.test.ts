/**
 * A session's files over real HTTP against real gateway processes and the demo agent: upload, a turn
 * that reads and changes the file, download; ETags and preconditions; the size caps and quotas; every
 * bad path we could think of (traversal in every encoding, absolute, NUL, backslash) and symlinks the
 * agent makes before a request or swaps during one, each checked to read nothing outside the workspace
 * and leave nothing there. With the sandbox on (bubblewrap), what the gateway writes belongs to the
 * agent's user, and a sandboxed agent changes an uploaded file in place.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { request as httpRequest } from "node:http"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { bwrapAvailable } from "./support/Bubblewrap.js"
import { api, dataDir, type GatewayProcess, startGateway } from "./support/GatewayProcess.js"
import { agentText } from "./support/ScriptedAgent.js"
import { tempDir } from "./support/TempDirs.js"
import { appName, appToken, otherApp, otherToken } from "./support/TestGateway.js"

const mb = 1024 * 1024

interface Reply {
  readonly status: number
  readonly headers: Record<string, string | Array<string> | undefined>
  readonly text: string
  readonly body: any
}

/**
 * One request with the path exactly as given (no URL normalization, so `..` and odd encodings reach
 * the gateway as a client could send them), a raw body, and the reply's bytes as text.
 */
const raw = (
  gateway: GatewayProcess,
  method: string,
  path: string,
  options: { body?: Buffer | string; headers?: Record<string, string>; token?: string; chunked?: boolean } = {}
) =>
  new Promise<Reply>((resolve, reject) => {
    const url = new URL(gateway.url)
    const body = options.body === undefined ? undefined : Buffer.from(options.body)
    const request = httpRequest({
      host: url.hostname,
      port: url.port,
      method,
      path,
      headers: {
        authorization: `Bearer ${options.token ?? appToken}`,
        ...(body !== undefined && !options.chunked ? { "content-length": String(body.length) } : {}),
        ...options.headers
      }
    }, (response) => {
      const chunks: Array<Buffer> = []
      response.on("data", (chunk: Buffer) => chunks.push(chunk))
      response.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8")
        let parsed: unknown = undefined
        try {
          parsed = JSON.parse(text)
        } catch {
          // bytes
        }
        resolve({ status: response.statusCode ?? 0, headers: response.headers, text, body: parsed })
      })
      response.on("error", reject)
    })
    request.on("error", reject)
    if (body !== undefined && options.chunked) {
      // Chunks of 64 KB, as a streaming client sends them (no Content-Length).
      for (let at = 0; at < body.length; at += 64 * 1024) request.write(body.subarray(at, at + 64 * 1024))
    } else if (body !== undefined) request.write(body)
    request.end()
  })

const put = (gateway: GatewayProcess, id: string, path: string, body: Buffer | string, headers: Record<string, string> = {}, token?: string) =>
  raw(gateway, "PUT", `/sessions/${id}/files/${path}`, { body, headers, ...(token === undefined ? {} : { token }) })
const get = (gateway: GatewayProcess, id: string, path: string, token?: string) =>
  raw(gateway, "GET", `/sessions/${id}/files/${path}`, token === undefined ? {} : { token })

const create = async (gateway: GatewayProcess, token = appToken) => {
  const created = await api(gateway, "POST", "/sessions", { agent: "echo" }, token)
  expect(created.status, JSON.stringify(created.body)).toBe(200)
  return created.body as { session_id: string; cwd: string }
}
const turn = async (gateway: GatewayProcess, id: string, prompt: string, token = appToken) => {
  const reply = await api(gateway, "POST", `/sessions/${id}/turn`, { prompt }, token)
  return { status: reply.status, body: reply.body, text: reply.status === 200 ? agentText(reply.body.events) : "" }
}
/** The JSON an agent command (`append`, `symlink`, `swap`, `edit`) answered. */
const answered = (text: string) => JSON.parse(text.slice(text.indexOf(": ") + 2))

/** Every file under `dir` (folders walked, links not followed), relative. */
const filesUnder = (dir: string, prefix = ""): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesUnder(join(dir, entry.name), `${prefix}${entry.name}/`) : [`${prefix}${entry.name}`]
  )

describe("a session's files over HTTP", () => {
  let gateway: GatewayProcess
  let data: string
  // Beside the workspaces, where the agent's links point: nothing may be read from or written here.
  let outside: string
  const secret = "OUTSIDE-SECRET-3141592653"

  beforeAll(async () => {
    data = dataDir()
    outside = tempDir("clawdforge-outside-")
    mkdirSync(join(outside, "dir"))
    writeFileSync(join(outside, "dir", "secret.txt"), secret)
    writeFileSync(join(outside, "secret.txt"), secret)
    gateway = await startGateway({
      CLAWDFORGE_MAX_LIVE_SESSIONS: "40",
      CLAWDFORGE_MAX_FILE_MB: "2",
      CLAWDFORGE_WORKSPACE_MAX_MB: "3",
      CLAWDFORGE_APP_LIMITS: JSON.stringify({ [otherApp]: { max_disk_mb: 4 } })
    }, data)
  })

  /** Nothing outside the workspace changed: the outside folder holds its two secrets, as they were. */
  const outsideUntouched = () => {
    expect(filesUnder(outside).sort()).toEqual(["dir/secret.txt", "secret.txt"])
    expect(readFileSync(join(outside, "dir", "secret.txt"), "utf8")).toBe(secret)
    expect(readFileSync(join(outside, "secret.txt"), "utf8")).toBe(secret)
  }

  it("uploads a file, a turn reads and changes it, and the download has the change", async () => {
    const { session_id: id, cwd } = await create(gateway)
    const created = await put(gateway, id, "src/notes/todo.txt", "first line\n", { "content-type": "text/plain" })
    expect(created.status, created.text).toBe(201)
    expect(created.body).toMatchObject({ ok: true, path: "src/notes/todo.txt", size: 11 })
    expect(created.headers.etag).toBe(created.body.etag)
    expect(readFileSync(join(cwd, "src/notes/todo.txt"), "utf8")).toBe("first line\n")

    const changed = await turn(gateway, id, "append src/notes/todo.txt second line")
    expect(changed.status).toBe(200)
    expect(answered(changed.text)).toEqual({ ok: true, before: "first line\n", after: "first line\nsecond line" })

    const download = await get(gateway, id, "src/notes/todo.txt")
    expect(download.status).toBe(200)
    expect(download.text).toBe("first line\nsecond line")
    expect(download.headers["content-type"]).toBe("text/plain; charset=utf-8")
    expect(download.headers.etag).not.toBe(created.body.etag)

    const listing = await api(gateway, "GET", `/sessions/${id}/files?path=src&recursive=true`)
    expect(listing.status).toBe(200)
    expect(listing.body.entries.map((entry: any) => [entry.path, entry.type, entry.size])).toEqual([
      ["src/notes", "dir", 0],
      ["src/notes/todo.txt", "file", 22]
    ])
    expect(listing.body.entries[1].mtime).toBeGreaterThan(1_700_000_000)
    const top = await api(gateway, "GET", `/sessions/${id}/files`)
    expect(top.body.entries.map((entry: any) => entry.path)).toContain("src")
    expect(top.body.entries.every((entry: any) => !entry.path.includes("/"))).toBe(true)

    // Bytes round-trip exactly; an unknown extension is application/octet-stream.
    const bytes = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7919) % 256))
    expect((await put(gateway, id, "data.bin", bytes)).status).toBe(201)
    const back = await new Promise<Buffer>((resolve) => {
      const url = new URL(gateway.url)
      httpRequest({ host: url.hostname, port: url.port, path: `/sessions/${id}/files/data.bin`, headers: { authorization: `Bearer ${appToken}` } }, (response) => {
        expect(response.headers["content-type"]).toBe("application/octet-stream")
        const chunks: Array<Buffer> = []
        response.on("data", (chunk: Buffer) => chunks.push(chunk))
        response.on("end", () => resolve(Buffer.concat(chunks)))
      }).end()
    })
    expect(back.equals(bytes)).toBe(true)
  })

  it("answers ETags and refuses with 412 what If-Match or If-None-Match: * rule out", async () => {
    const { session_id: id } = await create(gateway)
    const first = await put(gateway, id, "a.txt", "one", { "if-none-match": "*" })
    expect(first.status).toBe(201)
    const again = await put(gateway, id, "a.txt", "two", { "if-none-match": "*" })
    expect(again.status).toBe(412)
    expect(again.body).toMatchObject({ ok: false, error: "precondition_failed" })
    expect((await get(gateway, id, "a.txt")).text).toBe("one")

    const stale = await put(gateway, id, "a.txt", "two", { "if-match": '"not-the-etag"' })
    expect(stale.status).toBe(412)
    const replaced = await put(gateway, id, "a.txt", "two", { "if-match": first.body.etag })
    expect(replaced.status).toBe(200)
    expect(replaced.body).toMatchObject({ ok: true, path: "a.txt", size: 3 })
    expect((await get(gateway, id, "a.txt")).headers.etag).toBe(replaced.body.etag)
    // The old version is gone: its ETag no longer matches.
    expect((await put(gateway, id, "a.txt", "three", { "if-match": first.body.etag })).status).toBe(412)
    // If-Match on a file that does not exist fails too.
    expect((await put(gateway, id, "missing.txt", "x", { "if-match": first.body.etag })).status).toBe(412)
    expect((await get(gateway, id, "missing.txt")).body).toMatchObject({ ok: false, error: "file_not_found" })
    // `If-None-Match` other than `*` means nothing on a PUT: a 400 says so.
    expect((await put(gateway, id, "a.txt", "x", { "if-none-match": '"abc"' })).status).toBe(400)
  })

  it("refuses a file over CLAWDFORGE_MAX_FILE_MB with 413, from its length or while it streams, leaving nothing", async () => {
    const { session_id: id, cwd } = await create(gateway)
    const big = Buffer.alloc(2 * mb + 1, 120)
    const declared = await put(gateway, id, "big.bin", big)
    expect(declared.status).toBe(413)
    expect(declared.body).toMatchObject({ ok: false, error: "file_too_large", limit_bytes: 2 * mb })
    const streamed = await raw(gateway, "PUT", `/sessions/${id}/files/big.bin`, { body: big, chunked: true })
    expect(streamed.status).toBe(413)
    expect(streamed.body.error).toBe("file_too_large")
    expect(existsSync(join(cwd, "big.bin"))).toBe(false)
    // The staging area holds nothing afterwards (no half upload left behind).
    expect(readdirSync(join(data, "workspaces", ".uploads"))).toEqual([])
    // Exactly at the limit is fine, streamed or not.
    expect((await raw(gateway, "PUT", `/sessions/${id}/files/ok.bin`, { body: big.subarray(0, 2 * mb), chunked: true })).status).toBe(201)
  })

  it("deletes files, and folders only with recursive=true; a folder is no download", async () => {
    const { session_id: id, cwd } = await create(gateway)
    await put(gateway, id, "tree/a/b.txt", "b")
    await put(gateway, id, "tree/c.txt", "c")
    expect((await get(gateway, id, "tree")).body).toMatchObject({ ok: false, error: "is_a_directory" })
    expect((await raw(gateway, "DELETE", `/sessions/${id}/files/tree`)).body).toMatchObject({ error: "is_a_directory" })
    const file = await raw(gateway, "DELETE", `/sessions/${id}/files/tree/c.txt`)
    expect(file.status).toBe(200)
    expect(file.body).toEqual({ ok: true })
    expect((await raw(gateway, "DELETE", `/sessions/${id}/files/tree/c.txt`)).body).toMatchObject({ error: "file_not_found" })
    expect((await raw(gateway, "DELETE", `/sessions/${id}/files/tree?recursive=true`)).status).toBe(200)
    expect(existsSync(join(cwd, "tree"))).toBe(false)
    expect((await put(gateway, id, "dir/x.txt", "x")).status).toBe(201)
    expect((await put(gateway, id, "dir", "x")).body).toMatchObject({ error: "is_a_directory" })
  })

  it("is another app's session's 404; a closed session's files stay readable, not writable", async () => {
    const { session_id: id } = await create(gateway)
    await put(gateway, id, "kept.txt", "kept")
    for (const reply of [
      await get(gateway, id, "kept.txt", otherToken),
      await put(gateway, id, "x.txt", "x", {}, otherToken),
      await raw(gateway, "GET", `/sessions/${id}/files`, { token: otherToken }),
      await raw(gateway, "DELETE", `/sessions/${id}/files/kept.txt`, { token: otherToken }),
      await get(gateway, "no-such-session-0123456789", "kept.txt")
    ]) {
      expect(reply.status).toBe(404)
      expect(reply.body.error).toBe("session_not_found")
    }
    expect((await api(gateway, "DELETE", `/sessions/${id}`)).status).toBe(200)
    expect((await get(gateway, id, "kept.txt")).text).toBe("kept")
    expect((await api(gateway, "GET", `/sessions/${id}/files`)).status).toBe(200)
    expect((await put(gateway, id, "x.txt", "x")).status).toBe(410)
    expect((await raw(gateway, "DELETE", `/sessions/${id}/files/kept.txt`)).status).toBe(410)
  })

  it("refuses every path that leaves the workspace, in every encoding, with 400 bad_path", async () => {
    const { session_id: id } = await create(gateway)
    await put(gateway, id, "a/inside.txt", "inside")
    const base = `/sessions/${id}/files`
    const refused = [
      "../secret.txt", "a/../../secret.txt", "..", "a/..", "%2e%2e/secret.txt", "%2E%2E/%2E%2E/etc/passwd",
      ".%2e/secret.txt", "a/%2e%2e/%2e%2e/x", "..%2fsecret.txt", "..%2Fsecret.txt", "a%2f..%2f..%2fsecret.txt",
      "%252e%252e/secret.txt", "%25252e%25252e/x", "..%252fx", "a%5c..%5c..%5csecret.txt", "a%5Cb", "a%00b",
      "a%2500b", "%2fetc%2fpasswd", "%2F%2Fetc/passwd", "./a/inside.txt", "a%2f%2finside.txt", "a/./inside.txt"
    ]
    for (const path of refused) {
      for (const method of ["GET", "PUT", "DELETE"]) {
        const reply = await raw(gateway, method, `${base}/${path}`, method === "PUT" ? { body: "x" } : {})
        expect(reply.status, `${method} ${path}: ${reply.text}`).toBe(400)
        expect(reply.body?.error, `${method} ${path}`).toBe("bad_path")
      }
    }
    for (const query of ["..", "../..", "a/..", "%2e%2e", "%252e%252e", "/etc", "a%5Cb", "a%00b"]) {
      const reply = await raw(gateway, "GET", `${base}?path=${query}`)
      expect(reply.status, `list ${query}: ${reply.text}`).toBe(400)
      expect(reply.body.error).toBe("bad_path")
    }
    // Slashes the router folds (`files//etc/passwd` is `etc/passwd`): looked up inside the workspace, never at /etc.
    for (const path of ["/etc/passwd", "//etc/passwd"]) {
      const reply = await get(gateway, id, path)
      expect(reply.body.error, path).toBe("file_not_found")
      expect(reply.text).not.toContain("root:")
    }
    // A raw backslash in the URL (which a client may send as is).
    const backslash = await raw(gateway, "GET", `${base}/a\\..\\..\\secret.txt`)
    expect([400]).toContain(backslash.status)
    expect(backslash.text).not.toContain(secret)
    outsideUntouched()
    expect((await get(gateway, id, "a/inside.txt")).text).toBe("inside")
  })

  it("never follows a symlink the agent made: outside, to a parent, in the middle of a path, or a file's", async () => {
    const { session_id: id, cwd } = await create(gateway)
    const other = await create(gateway)
    await put(gateway, other.session_id, "neighbour.txt", "neighbour")
    await put(gateway, id, "a/b/inside.txt", "inside")
    for (const [target, link] of [
      [join(outside, "dir"), "out"],
      ["..", "up"],
      [join(outside, "dir"), "a/mid"],
      [join(outside, "secret.txt"), "file-link"],
      ["b", "a/sibling"]
    ]) {
      const made = await turn(gateway, id, `symlink ${target} ${link}`)
      expect(answered(made.text), made.text).toEqual({ ok: true })
    }
    const bad = async (method: string, path: string, body?: string) => {
      const reply = await raw(gateway, method, `/sessions/${id}/files/${path}`, body === undefined ? {} : { body })
      expect(reply.status, `${method} ${path}: ${reply.text}`).toBe(400)
      expect(reply.body.error).toBe("bad_path")
      expect(reply.text).not.toContain(secret)
    }
    await bad("GET", "out/secret.txt")
    await bad("GET", "out")
    await bad("GET", `up/${other.session_id}/neighbour.txt`)
    await bad("GET", "a/mid/secret.txt")
    await bad("GET", "file-link")
    await bad("GET", "a/sibling/inside.txt")
    await bad("PUT", "out/new.txt", "x")
    await bad("PUT", "out/deeper/new.txt", "x")
    await bad("PUT", `up/${other.session_id}/neighbour.txt`, "overwritten")
    await bad("PUT", "a/mid/new.txt", "x")
    await bad("PUT", "file-link", "overwritten")
    await bad("DELETE", "out/secret.txt")
    await bad("DELETE", "a/mid/secret.txt")
    for (const path of ["out", "up", "a/mid", "a/sibling"]) {
      // Listing a link shows the link itself, never what it points to.
      const listed = await raw(gateway, "GET", `/sessions/${id}/files?path=${path}&recursive=true`)
      expect(listed.status, path).toBe(200)
      expect(listed.body.entries.map((entry: any) => [entry.path, entry.type])).toEqual([[path, "symlink"]])
      const through = await raw(gateway, "GET", `/sessions/${id}/files?path=${path}/x`)
      expect(through.status, path).toBe(400)
      expect(through.body.error).toBe("bad_path")
    }
    // Listed as links, never entered.
    const all = await api(gateway, "GET", `/sessions/${id}/files?recursive=true`)
    const byPath = new Map(all.body.entries.map((entry: any) => [entry.path, entry.type]))
    expect(byPath.get("out")).toBe("symlink")
    expect(byPath.get("up")).toBe("symlink")
    expect(byPath.get("a/mid")).toBe("symlink")
    expect(byPath.get("file-link")).toBe("symlink")
    expect([...byPath.keys()].some((path) => String(path).startsWith("out/") || String(path).startsWith("up/"))).toBe(false)
    // Deleting a link removes the link, never what it points to.
    expect((await raw(gateway, "DELETE", `/sessions/${id}/files/out?recursive=true`)).status).toBe(200)
    expect((await raw(gateway, "DELETE", `/sessions/${id}/files/file-link`)).status).toBe(200)
    expect(existsSync(join(cwd, "out"))).toBe(false)
    outsideUntouched()
    expect((await get(gateway, other.session_id, "neighbour.txt")).text).toBe("neighbour")
  })

  it("reads and writes nothing outside while the agent swaps a folder for a link during the requests", async () => {
    const { session_id: id } = await create(gateway)
    await put(gateway, id, "swapped/known.txt", "inside")
    // The turn runs for 4 s in the background, swapping `swapped` for a link to the outside folder.
    const queued = await api(gateway, "POST", `/sessions/${id}/turns`, { prompt: `swap swapped ${join(outside, "dir")} 4000` })
    expect(queued.status).toBe(202)
    const until = Date.now() + 3_500
    const seen = new Map<string, number>()
    let n = 0
    while (Date.now() < until) {
      n++
      const [read, write, listed, removed] = await Promise.all([
        get(gateway, id, "swapped/known.txt"),
        put(gateway, id, `swapped/new-${n}.txt`, "written"),
        raw(gateway, "GET", `/sessions/${id}/files?path=swapped`),
        raw(gateway, "DELETE", `/sessions/${id}/files/swapped/secret.txt`)
      ])
      for (const reply of [read, write, listed, removed]) {
        expect(reply.text).not.toContain(secret)
        expect(reply.status).not.toBe(500)
        seen.set(`${reply.status}`, (seen.get(`${reply.status}`) ?? 0) + 1)
      }
      if (read.status === 200) expect(read.text).toBe("inside")
      if (listed.status === 200) expect(listed.body.entries.map((entry: any) => entry.path)).not.toContain("swapped/secret.txt")
      expect([200, 400, 404]).toContain(read.status)
      expect([201, 400, 404]).toContain(write.status)
      expect([400, 404]).toContain(removed.status)
    }
    const swap = await until200(() => api(gateway, "GET", `/sessions/${id}/turns/1`))
    expect(swap.body.status).toBe("completed")
    const swapped = answered(agentText(swap.body.events))
    expect(swapped.swaps, JSON.stringify(swapped)).toBeGreaterThan(10)
    // Both outcomes happened: requests that found the folder, and ones that found the link.
    expect(seen.get("400") ?? 0).toBeGreaterThan(0)
    expect((seen.get("200") ?? 0) + (seen.get("201") ?? 0)).toBeGreaterThan(0)
    outsideUntouched()
  }, 30_000)

  it("keeps a session within CLAWDFORGE_WORKSPACE_MAX_MB: 413 on a PUT past it, 429 for turns once a turn went past it", async () => {
    const { session_id: id, cwd } = await create(gateway)
    expect((await put(gateway, id, "one.bin", Buffer.alloc(1.5 * mb))).status).toBe(201)
    expect((await put(gateway, id, "two.bin", Buffer.alloc(1.4 * mb))).status).toBe(201)
    const past = await put(gateway, id, "three.bin", Buffer.alloc(0.5 * mb))
    expect(past.status).toBe(413)
    expect(past.body).toMatchObject({ ok: false, error: "workspace_quota", limit_mb: 3 })
    // Streamed without a length: refused once past, nothing kept.
    const streamed = await raw(gateway, "PUT", `/sessions/${id}/files/three.bin`, { body: Buffer.alloc(0.5 * mb), chunked: true })
    expect(streamed.status).toBe(413)
    expect(streamed.body.error).toBe("workspace_quota")
    expect(existsSync(join(cwd, "three.bin"))).toBe(false)
    // Replacing a file with a smaller one fits.
    expect((await put(gateway, id, "two.bin", Buffer.alloc(1.2 * mb))).status).toBe(200)
    // A turn takes the workspace past its quota: the next turn is 429 until files go.
    const grow = await turn(gateway, id, `edit ${JSON.stringify({ "grown.txt": "g".repeat(0.9 * mb) })}`)
    expect(grow.status).toBe(200)
    const refused = await turn(gateway, id, "hello")
    expect(refused.status).toBe(429)
    expect(refused.body).toMatchObject({ ok: false, error: "workspace_quota", limit_mb: 3 })
    expect((await raw(gateway, "DELETE", `/sessions/${id}/files/grown.txt`)).status).toBe(200)
    expect((await turn(gateway, id, "hello")).status).toBe(200)
  }, 30_000)

  it("keeps an app within its max_disk_mb (CLAWDFORGE_APP_LIMITS): 429 disk_quota on uploads, creates and turns", async () => {
    const limits = await api(gateway, "GET", "/limits", undefined, otherToken)
    expect(limits.body.limits.max_disk_mb).toBe(4)
    expect((await api(gateway, "GET", "/limits")).body.limits.max_disk_mb).toBe(10240)
    const first = await create(gateway, otherToken)
    const second = await create(gateway, otherToken)
    expect((await put(gateway, first.session_id, "a.bin", Buffer.alloc(1.9 * mb), {}, otherToken)).status).toBe(201)
    expect((await put(gateway, second.session_id, "b.bin", Buffer.alloc(1.9 * mb), {}, otherToken)).status).toBe(201)
    const past = await put(gateway, second.session_id, "c.bin", Buffer.alloc(0.5 * mb), {}, otherToken)
    expect(past.status).toBe(429)
    expect(past.body).toMatchObject({ ok: false, error: "disk_quota", limit_mb: 4 })
    // A turn writes the rest: the app is at its limit, so its creates and turns are refused.
    const fill = await turn(gateway, first.session_id, `edit ${JSON.stringify({ "fill.txt": "f".repeat(0.3 * mb) })}`, otherToken)
    expect(fill.status).toBe(200)
    const refusedCreate = await api(gateway, "POST", "/sessions", { agent: "echo" }, otherToken)
    expect(refusedCreate.status).toBe(429)
    expect(refusedCreate.body.error).toBe("disk_quota")
    const refusedTurn = await turn(gateway, second.session_id, "hello", otherToken)
    expect(refusedTurn.status).toBe(429)
    expect(refusedTurn.body.error).toBe("disk_quota")
    // Another app is not held back.
    const mine = await create(gateway)
    expect((await put(gateway, mine.session_id, "mine.bin", Buffer.alloc(0.5 * mb))).status).toBe(201)
    // Files deleted: room again.
    expect((await raw(gateway, "DELETE", `/sessions/${first.session_id}/files/a.bin`, { token: otherToken })).status).toBe(200)
    expect((await turn(gateway, second.session_id, "hello", otherToken)).status).toBe(200)
    expect((await api(gateway, "POST", "/sessions", { agent: "echo" }, otherToken)).status).toBe(200)
  }, 30_000)

  afterAll(() => {
    outsideUntouched()
  })
})

/** Polls until the request answers 200 with a finished turn. */
const until200 = async (request: () => Promise<{ status: number; body: any }>) => {
  const deadline = Date.now() + 15_000
  for (;;) {
    const reply = await request()
    if (reply.status === 200 && !["queued", "running"].includes(reply.body.status)) return reply
    if (Date.now() > deadline) throw new Error(`still ${JSON.stringify(reply.body).slice(0, 300)}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

describe.skipIf(!bwrapAvailable)("a sandboxed agent and the files it was given (install bubblewrap to run these)", () => {
  let gateway: GatewayProcess
  const asRoot = process.getuid?.() === 0

  beforeAll(async () => {
    gateway = await startGateway({ CLAWDFORGE_SANDBOX: "bwrap" })
  })

  it("gives every upload and the folders made for it to the agent's user, who changes them in place", async () => {
    const { session_id: id, cwd } = await create(gateway)
    expect((await put(gateway, id, "given/deep/file.txt", "given\n")).status).toBe(201)
    if (asRoot) {
      // The gateway runs as root here: the agent runs as nobody (65534), and owns what it was given.
      for (const path of ["given", "given/deep", "given/deep/file.txt"]) {
        expect(statSync(join(cwd, path)).uid, path).toBe(65534)
      }
    }
    const changed = await turn(gateway, id, "append given/deep/file.txt changed by the agent")
    expect(changed.status, JSON.stringify(changed.body).slice(0, 300)).toBe(200)
    expect(answered(changed.text)).toMatchObject({ ok: true, after: "given\nchanged by the agent" })
    // It can add files to the folders the upload made.
    const added = await turn(gateway, id, `edit ${JSON.stringify({ "given/deep/added.txt": "added" })}`)
    expect(answered(added.text)).toMatchObject({ ok: true, written: 1 })
    expect((await get(gateway, id, "given/deep/added.txt")).text).toBe("added")
    expect((await get(gateway, id, "given/deep/file.txt")).text).toBe("given\nchanged by the agent")
    // A replaced file is the agent's again.
    expect((await put(gateway, id, "given/deep/file.txt", "replaced\n")).status).toBe(200)
    expect(answered((await turn(gateway, id, "append given/deep/file.txt again")).text)).toMatchObject({ ok: true, after: "replaced\nagain" })
    void appName
  }, 30_000)
})
