/**
 * `POST /sessions` with `git: {url, ref?}`: a real repository made with real git in a temp folder,
 * cloned by real gateway processes (file://, and http over a tiny `git http-backend` on loopback),
 * a branch, a tag and a commit checked out, the agent's first turn seeing the files; every refused
 * URL and ref (other transports, options in disguise, private hosts, a file URL without the
 * setting, a missing repository) a 400 leaving nothing behind: no folder, no session, no slot.
 * With bubblewrap: the clone runs in the session's sandbox, as the agent's user, under its network.
 */
import { execFileSync, spawn } from "node:child_process"
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { createServer, type Server, type ServerResponse } from "node:http"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { bwrapAvailable } from "./support/Bubblewrap.js"
import { git, makeRepository, type TestRepository } from "./support/GitRepository.js"
import { api, dataDir, type GatewayProcess, startGateway } from "./support/GatewayProcess.js"
import { until } from "./support/Poll.js"
import { probeResult } from "./support/Probe.js"
import { appName, otherApp, otherToken } from "./support/TestGateway.js"
import { tempDir } from "./support/TempDirs.js"

const asRoot = process.getuid?.() === 0
const agentUid = 65534

/** A tiny smart-HTTP git server on loopback: `git http-backend` as a CGI, serving the folders under `root`. */
const gitHttpServer = async (root: string): Promise<{ server: Server; port: number; requests: Array<string> }> => {
  const requests: Array<string> = []
  // The repositories may belong to the agent's user (the sandbox's tests): git serves them to root anyway.
  const globalConfig = join(tempDir("clawdforge-git-http-"), "gitconfig")
  writeFileSync(globalConfig, "[safe]\n\tdirectory = *\n")
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://127.0.0.1")
    requests.push(`${request.method} ${url.pathname} ${request.headers.authorization ?? ""}`)
    const cgi = spawn("git", ["http-backend"], {
      env: {
        PATH: process.env["PATH"]!,
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: "1",
        GIT_CONFIG_NOSYSTEM: "1",
        GIT_CONFIG_GLOBAL: globalConfig,
        HOME: root,
        REQUEST_METHOD: request.method ?? "GET",
        PATH_INFO: decodeURIComponent(url.pathname),
        QUERY_STRING: url.search.slice(1),
        CONTENT_TYPE: request.headers["content-type"] ?? "",
        REMOTE_ADDR: "127.0.0.1",
        ...(request.headers["content-encoding"] === undefined ? {} : { HTTP_CONTENT_ENCODING: String(request.headers["content-encoding"]) }),
        ...(request.headers["git-protocol"] === undefined ? {} : { GIT_PROTOCOL: String(request.headers["git-protocol"]) })
      }
    })
    request.pipe(cgi.stdin)
    const chunks: Array<Buffer> = []
    cgi.stdout.on("data", (chunk: Buffer) => chunks.push(chunk))
    cgi.on("close", () => {
      const output = Buffer.concat(chunks)
      const end = output.indexOf("\r\n\r\n")
      const head = output.subarray(0, end).toString("latin1").split("\r\n")
      let status = 200
      for (const line of head) {
        const [name, ...rest] = line.split(":")
        const value = rest.join(":").trim()
        if (name!.toLowerCase() === "status") status = Number(value.split(" ")[0])
        else if (name) response.setHeader(name, value)
      }
      response.writeHead(status)
      response.end(output.subarray(end + 4))
    })
  })
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done))
  return { server, port: (server.address() as { port: number }).port, requests }
}

/** What of the app's workspace root is left: its session folders (its HOME, `.home`, is the app's own). */
const sessionFolders = (data: string, app = appName) => {
  const root = join(data, "workspaces", app)
  return existsSync(root) ? readdirSync(root).filter((name) => name !== ".home") : []
}

const allSessions = async (gateway: GatewayProcess, token?: string) =>
  (await api(gateway, "GET", "/sessions?limit=1000", undefined, token)).body.sessions as Array<{ session_id: string }>

/** The session's workspace on the host (its `cwd`). */
const cwdOf = async (gateway: GatewayProcess, sid: string) =>
  (await api(gateway, "GET", `/sessions/${sid}`)).body.cwd as string

describe("sessions cloned from a repository (file://, sandbox off)", () => {
  let gateway: GatewayProcess
  let data: string
  let source: TestRepository
  let http: Awaited<ReturnType<typeof gitHttpServer>>

  beforeAll(async () => {
    source = makeRepository()
    http = await gitHttpServer(source.root)
    data = dataDir()
    // One live agent at most: a create that left its slot taken would make the next one 503.
    gateway = await startGateway({ CLAWDFORGE_GIT_ALLOW_FILE: "true", CLAWDFORGE_MAX_LIVE_SESSIONS: "1" }, data)
  })
  afterAll(() => new Promise<void>((done) => http.server.close(() => done())))

  /** Creates (expecting 200), runs `check` on the session, then closes it (freeing the one slot). */
  const withClone = async (body: Record<string, unknown>, check: (sid: string, cwd: string) => Promise<void>) => {
    const created = await api(gateway, "POST", "/sessions", { agent: "echo", ...body })
    expect(created.status, JSON.stringify(created.body)).toBe(200)
    const sid = created.body.session_id as string
    try {
      await check(sid, await cwdOf(gateway, sid))
    } finally {
      await api(gateway, "DELETE", `/sessions/${sid}`)
    }
  }

  it("clones the default branch before the agent starts: its first turn sees the files", async () => {
    await withClone({ git: { url: source.repo } }, async (sid, cwd) => {
      expect(cwd).toBe(join(data, "workspaces", appName, sid))
      expect(readFileSync(join(cwd, "README.md"), "utf8")).toBe("# project\n")
      expect(git(cwd, "rev-parse", "HEAD")).toBe(source.second)
      expect(existsSync(join(cwd, "feature.txt"))).toBe(false)
      const listed = await api(gateway, "POST", `/sessions/${sid}/turn`, { prompt: "probe list ." })
      expect(listed.status, JSON.stringify(listed.body).slice(0, 300)).toBe(200)
      // The workspace holds the repository's files alone (the demo agent keeps its state in HOME).
      expect(probeResult(listed.body.events).entries).toEqual([".git", "README.md", "src"])
      const read = await api(gateway, "POST", `/sessions/${sid}/turn`, { prompt: "probe read src/app.txt" })
      expect(probeResult(read.body.events)).toEqual({ ok: true, bytes: 4 })
    })
  })

  it("checks out a branch (tracking origin's), a tag or a commit; a file:// URL is the same as the path", async () => {
    await withClone({ git: { url: source.repo, ref: "feature" } }, async (_, cwd) => {
      expect(git(cwd, "rev-parse", "HEAD")).toBe(source.feature)
      expect(git(cwd, "rev-parse", "--abbrev-ref", "HEAD")).toBe("feature")
      expect(git(cwd, "rev-parse", "--abbrev-ref", "feature@{upstream}")).toBe("origin/feature")
      expect(readFileSync(join(cwd, "feature.txt"), "utf8")).toBe("feature\n")
    })
    await withClone({ git: { url: `file://${source.repo}`, ref: "v1" } }, async (_, cwd) => {
      expect(git(cwd, "rev-parse", "HEAD")).toBe(source.first)
      expect(readdirSync(cwd).sort()).toEqual([".git", "README.md"])
    })
    await withClone({ git: { url: source.repo, ref: source.feature.slice(0, 12) } }, async (_, cwd) => {
      expect(git(cwd, "rev-parse", "HEAD")).toBe(source.feature)
    })
  })

  it("refuses every URL and ref it must (400, saying why) and leaves nothing: no folder, no session, no slot", async () => {
    const marker = join(source.root, "ext-ran")
    // The app's root exists once a session of the app did (made here for a run of this test alone).
    mkdirSync(join(data, "workspaces", appName), { recursive: true })
    const before = (await allSessions(gateway)).length
    // The sessions above are closed; their folders stay until the hard TTL.
    const folders = sessionFolders(data)
    const refused: Array<[unknown, string, RegExp]> = [
      [{ url: `ext::sh -c touch% ${marker}` }, "bad_request", /"ext::" transport is not allowed/],
      [{ url: "fd::3" }, "bad_request", /"fd::" transport/],
      [{ url: "-uhelp" }, "bad_request", /may not start with "-"/],
      [{ url: "--upload-pack=touch /tmp/x" }, "bad_request", /may not start with "-"/],
      [{ url: source.repo, ref: "--upload-pack=touch /tmp/x" }, "bad_request", /ref may not start with "-"/],
      [{ url: source.repo, ref: "-b" }, "bad_request", /ref may not start with "-"/],
      [{ url: source.repo, ref: "main~1" }, "bad_request", /ref must be a branch, tag or commit/],
      [{ url: "ssh://-oProxyCommand=touch%20x/repo" }, "bad_request", /host may not be empty or start with "-"|host may not start with "-"/],
      [{ url: "-oProxyCommand=x@host:repo" }, "bad_request", /may not start with "-"/],
      [{ url: "ssh://%2DoProxyCommand=x/repo" }, "bad_request", /host may not be percent-encoded/],
      [{ url: "git://127.0.0.%31/repo" }, "bad_request", /host may not be percent-encoded/],
      [{ url: "ftp://example.com/repo.git" }, "bad_request", /"ftp:\/\/" URLs are not allowed/],
      [{ url: "relative/path" }, "bad_request", /absolute path/],
      [{ url: `http://127.0.0.1:${http.port}/project` }, "bad_request", /127\.0\.0\.1 is loopback/],
      [{ url: `https://0x7f.1/project` }, "bad_request", /127\.0\.0\.1 is loopback/],
      [{ url: "http://localhost/project" }, "bad_request", /localhost is loopback/],
      [{ url: "git@10.0.0.1:org/repo.git" }, "bad_request", /10\.0\.0\.1 is private/],
      [{ url: "git://[::1]/repo" }, "bad_request", /::1 is loopback/],
      [{ url: join(data, "workspaces", appName) }, "bad_request", /may not lie in \(or hold\) the gateway's workspaces/],
      [{ url: join(source.root, "missing") }, "git_clone_failed", /does not exist/],
      [{ url: source.root }, "git_clone_failed", /not appear to be a git repository|not a git repository/],
      [{ url: source.repo, ref: "no-such-branch" }, "git_clone_failed", /no-such-branch/],
      [{ url: source.repo, extra: 1 }, "bad_request", /extra/]
    ]
    for (const [gitBody, code, message] of refused) {
      const reply = await api(gateway, "POST", "/sessions", { agent: "echo", git: gitBody })
      expect(reply.status, JSON.stringify(gitBody)).toBe(400)
      expect(reply.body, JSON.stringify(gitBody)).toMatchObject({ ok: false, error: code })
      expect(reply.body.message, JSON.stringify(gitBody)).toMatch(message)
      expect(sessionFolders(data), JSON.stringify(gitBody)).toEqual(folders)
    }
    const both = await api(gateway, "POST", "/sessions", { agent: "echo", cwd: "mine", git: { url: source.repo } })
    expect(both.status).toBe(400)
    expect(both.body.message).toMatch(/`git` or `cwd`, not both/)
    expect(existsSync(join(data, "workspaces", appName, "mine"))).toBe(false)
    expect(existsSync(marker)).toBe(false)
    expect(http.requests).toEqual([])
    expect((await allSessions(gateway)).length).toBe(before)
    // The one slot is free: nothing above kept it.
    await withClone({ git: { url: source.repo } }, async () => {})
  })

  it("OpenAPI's create takes `git` and names git_clone_failed", async () => {
    const document = await (await fetch(`${gateway.url}/openapi.json`)).json() as any
    expect(Object.keys(document.components.schemas.GitSource.properties).sort()).toEqual(["ref", "url"])
    expect(JSON.stringify(document.paths["/sessions"].post.responses["400"])).toMatch(/GitCloneFailed/)
  })
})

describe("sessions cloned over http (private hosts allowed, file:// not)", () => {
  let gateway: GatewayProcess
  let data: string
  let source: TestRepository
  let http: Awaited<ReturnType<typeof gitHttpServer>>
  // `/moved/...` answers a redirect to the git server; `/hang/...` never answers.
  let odd: { server: Server; port: number; hanging: Set<ServerResponse> }

  beforeAll(async () => {
    source = makeRepository()
    http = await gitHttpServer(source.root)
    const hanging = new Set<ServerResponse>()
    const server = createServer((request, response) => {
      if (request.url?.startsWith("/moved/")) {
        response.writeHead(302, { location: `http://127.0.0.1:${http.port}${request.url.slice("/moved".length)}` })
        response.end()
      } else {
        hanging.add(response)
      }
    })
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done))
    odd = { server, port: (server.address() as { port: number }).port, hanging }
    data = dataDir()
    gateway = await startGateway({ CLAWDFORGE_WEBHOOK_ALLOW_PRIVATE: "true", CLAWDFORGE_GIT_TIMEOUT_SECS: "3" }, data)
  })
  afterAll(async () => {
    for (const response of odd.hanging) response.destroy()
    odd.server.closeAllConnections()
    await new Promise<void>((done) => odd.server.close(() => done()))
    await new Promise<void>((done) => http.server.close(() => done()))
  })

  it("follows no redirect, and stops a clone past CLAWDFORGE_GIT_TIMEOUT_SECS: each a 400 leaving nothing", async () => {
    const before = sessionFolders(data)
    const served = http.requests.length
    const moved = await api(gateway, "POST", "/sessions", { agent: "echo", git: { url: `http://127.0.0.1:${odd.port}/moved/project` } })
    expect(moved.status).toBe(400)
    expect(moved.body.error).toBe("git_clone_failed")
    expect(http.requests.length).toBe(served)
    const started = Date.now()
    const hung = await api(gateway, "POST", "/sessions", { agent: "echo", git: { url: `http://127.0.0.1:${odd.port}/hang/project` } })
    expect(hung.status).toBe(400)
    expect(hung.body).toMatchObject({ error: "git_clone_failed" })
    expect(hung.body.message).toMatch(/did not finish within 3s \(CLAWDFORGE_GIT_TIMEOUT_SECS\)/)
    expect(Date.now() - started).toBeLessThan(10_000)
    expect(sessionFolders(data)).toEqual(before)
    // git (and its remote helper) stopped with it.
    await until("git to stop", () => odd.hanging.size > 0 && [...odd.hanging].every((response) => response.socket?.destroyed !== false))
  })

  it("clones from a loopback http server with a ref; credentials go neither into origin nor into errors", async () => {
    const created = await api(gateway, "POST", "/sessions", {
      agent: "echo",
      git: { url: `http://robot:s3cret-token@127.0.0.1:${http.port}/project`, ref: "v1" }
    })
    expect(created.status, JSON.stringify(created.body)).toBe(200)
    const cwd = await cwdOf(gateway, created.body.session_id)
    expect(git(cwd, "rev-parse", "HEAD")).toBe(source.first)
    expect(git(cwd, "remote", "get-url", "origin")).toBe(`http://127.0.0.1:${http.port}/project`)
    expect(readFileSync(join(cwd, ".git", "config"), "utf8")).not.toMatch(/s3cret|robot/)
    expect(http.requests.some((line) => line.startsWith("GET /project/info/refs"))).toBe(true)

    const missing = await api(gateway, "POST", "/sessions", {
      agent: "echo",
      git: { url: `http://robot:s3cret-token@127.0.0.1:${http.port}/missing` }
    })
    expect(missing.status).toBe(400)
    expect(missing.body.error).toBe("git_clone_failed")
    expect(missing.body.message).toMatch(/not found|404/)
    expect(JSON.stringify(missing.body)).not.toMatch(/s3cret|robot/)
    expect(gateway.output()).not.toMatch(/s3cret/)
    expect(sessionFolders(data)).toEqual([created.body.session_id])
  })

  it("refuses a path or file:// URL without CLAWDFORGE_GIT_ALLOW_FILE", async () => {
    for (const url of [source.repo, `file://${source.repo}`]) {
      const reply = await api(gateway, "POST", "/sessions", { agent: "echo", git: { url } })
      expect(reply.status).toBe(400)
      expect(reply.body.message).toMatch(/CLAWDFORGE_GIT_ALLOW_FILE=true/)
    }
    expect(sessionFolders(data, otherApp)).toEqual([])
  })
})

describe.skipIf(!bwrapAvailable)("the clone in the session's sandbox", () => {
  let gateway: GatewayProcess
  let data: string
  let source: TestRepository
  let http: Awaited<ReturnType<typeof gitHttpServer>>

  beforeAll(async () => {
    source = makeRepository()
    // git serves a repository only to its owner: the agent's user clones it.
    if (asRoot) execFileSync("chown", ["-R", `${agentUid}:${agentUid}`, source.repo])
    chmodSync(source.root, 0o755)
    http = await gitHttpServer(source.root)
    data = dataDir()
    gateway = await startGateway({
      CLAWDFORGE_SANDBOX: "bwrap",
      CLAWDFORGE_GIT_ALLOW_FILE: "true",
      CLAWDFORGE_WEBHOOK_ALLOW_PRIVATE: "true",
      // app-b's agents (and so its clones) have no network at all.
      CLAWDFORGE_APP_LIMITS: JSON.stringify({ [otherApp]: { network: "none" } })
    }, data)
  })
  afterAll(() => new Promise<void>((done) => http.server.close(() => done())))

  it("clones as the agent's user: the files are the agent's to change", async () => {
    const created = await api(gateway, "POST", "/sessions", { agent: "echo", git: { url: source.repo, ref: "feature" } })
    expect(created.status, JSON.stringify(created.body)).toBe(200)
    const sid = created.body.session_id as string
    const cwd = await cwdOf(gateway, sid)
    const owner = asRoot ? agentUid : process.getuid!()
    for (const path of ["README.md", "feature.txt", "src/app.txt", ".git/HEAD", "."]) {
      expect(statSync(join(cwd, path)).uid, path).toBe(owner)
    }
    const wrote = await api(gateway, "POST", `/sessions/${sid}/turn`, { prompt: "probe write feature.txt" })
    expect(probeResult(wrote.body.events)).toEqual({ ok: true })
    expect(readFileSync(join(cwd, "feature.txt"), "utf8")).toBe("probe\n")
  })

  it("clones under the app's network rule: with `network: none` the loopback server is out of reach", async () => {
    const url = `http://127.0.0.1:${http.port}/project`
    const allowed = await api(gateway, "POST", "/sessions", { agent: "echo", git: { url } })
    expect(allowed.status, JSON.stringify(allowed.body)).toBe(200)
    const before = http.requests.length
    const cut = await api(gateway, "POST", "/sessions", { agent: "echo", git: { url } }, otherToken)
    expect(cut.status).toBe(400)
    expect(cut.body.error).toBe("git_clone_failed")
    expect(cut.body.message).toMatch(/Failed to connect|Couldn't connect|unable to access/)
    expect(http.requests.length).toBe(before)
    expect(sessionFolders(data, otherApp)).toEqual([])
    expect(await allSessions(gateway, otherToken)).toEqual([])
  })
})
