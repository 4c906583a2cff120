/**
 * The agents' egress proxy (`CLAWDFORGE_AGENT_NETWORK=allow:...`) and the bridge that runs in front of
 * an agent inside its sandbox: real loopback servers, real unix sockets, real processes, real bwrap.
 */
import { Effect, Exit, Layer, Logger, ManagedRuntime, Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, readFileSync, statSync } from "node:fs"
import { lookup } from "node:dns/promises"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest"
import type { AllowedHost } from "../src/services/config/AppConfig.js"
import {
  bridgeArgv,
  bridgePath,
  bridgePort,
  canonicalHost,
  EgressProxy,
  isPublicAddress,
  matchingEntry
} from "../src/services/sandbox/EgressProxy.js"
import { bwrapAvailable } from "./support/Bubblewrap.js"

interface LogLine {
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, unknown>
}

/** A loopback HTTP server that answers with its name, the path and the headers it was sent. */
const loopbackServer = async (name: string) => {
  const server = http.createServer((request, response) => {
    response.writeHead(200, { "content-type": "application/json", "x-served-by": name })
    response.end(JSON.stringify({ name, path: request.url, headers: request.headers }))
  })
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done))
  return { server, port: (server.address() as AddressInfo).port }
}

/** An absolute-form request sent to the proxy's socket. */
const viaProxy = (socketPath: string, url: string, headers: http.OutgoingHttpHeaders = {}) =>
  new Promise<{ readonly status: number; readonly body: string }>((done, fail) => {
    const request = http.request({ socketPath, path: url, headers: { host: new URL(url).host, ...headers } })
    request.on("response", (response) => {
      let body = ""
      response.setEncoding("utf8").on("data", (chunk) => body += chunk).on("end", () => done({ status: response.statusCode!, body }))
    })
    request.on("error", fail)
    request.end()
  })

/** `CONNECT authority` through the proxy; when it is let through, one HTTP/1.0 GET through the tunnel. */
const viaTunnel = (socketPath: string, authority: string) =>
  new Promise<{ readonly status: number; readonly tunnelled: string }>((done, fail) => {
    const request = http.request({ socketPath, method: "CONNECT", path: authority })
    request.on("connect", (response, socket, head) => {
      let tunnelled = head.toString("utf8")
      socket.setEncoding("utf8").on("data", (chunk: string) => tunnelled += chunk)
      socket.on("end", () => done({ status: response.statusCode!, tunnelled }))
      socket.on("error", fail)
      if (response.statusCode === 200) socket.write(`GET /tunnelled HTTP/1.0\r\nHost: ${authority}\r\n\r\n`)
    })
    request.on("error", fail)
    request.end()
  })

const children = new Set<ChildProcess>()

/** A process run to its end, killed in afterEach if the test leaves it running. */
const run = (command: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = process.env) => {
  const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] })
  children.add(child)
  let stdout = ""
  let stderr = ""
  child.stdout!.setEncoding("utf8").on("data", (chunk) => stdout += chunk)
  child.stderr!.setEncoding("utf8").on("data", (chunk) => stderr += chunk)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>(
    (done) =>
      child.once("close", (code, signal) => {
        children.delete(child)
        done({ code, signal, stdout, stderr })
      })
  )
  return { child, exited, stdout: () => stdout }
}

const until = async (what: string, check: () => boolean, ms = 10_000) => {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

afterEach(() => {
  for (const child of children) child.kill("SIGKILL")
})

describe("what the proxy lets through", () => {
  const entries: ReadonlyArray<AllowedHost> = [
    { host: "*.example.com", port: undefined },
    { host: "api.test", port: 443 },
    { host: "127.0.0.1", port: 8080 }
  ]

  it("matches exact hosts, *.suffix patterns (names only) and ports", () => {
    expect(matchingEntry(entries, "a.example.com", 80)).toEqual(entries[0])
    expect(matchingEntry(entries, "a.b.example.com", 443)).toEqual(entries[0])
    expect(matchingEntry(entries, "example.com", 443)).toBeUndefined()
    expect(matchingEntry(entries, "badexample.com", 443)).toBeUndefined()
    expect(matchingEntry(entries, "api.test", 443)).toEqual(entries[1])
    expect(matchingEntry(entries, "api.test", 80)).toBeUndefined()
    expect(matchingEntry(entries, "127.0.0.1", 8080)).toEqual(entries[2])
    expect(matchingEntry(entries, "127.0.0.1", 8081)).toBeUndefined()
    expect(matchingEntry([{ host: "*.0.1", port: undefined }], "127.0.0.1", 80)).toBeUndefined()
  })

  it("compares hosts in one spelling", () => {
    expect(canonicalHost("Example.COM.")).toBe("example.com")
    expect(canonicalHost("0x7f.1")).toBe("127.0.0.1")
    expect(canonicalHost("2130706433")).toBe("127.0.0.1")
    expect(canonicalHost("[::FFFF:127.0.0.1]")).toBe("127.0.0.1")
    expect(canonicalHost("[0:0::1]")).toBe("::1")
    expect(canonicalHost("*.example.com")).toBe("*.example.com")
  })

  it("takes only public unicast addresses for names", () => {
    for (
      const address of [
        "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "169.254.169.254", "0.0.0.0",
        "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "ff02::1", "::ffff:10.0.0.1",
        "::ffff:127.0.0.1"
      ]
    ) expect([address, isPublicAddress(address)]).toEqual([address, false])
    expect(isPublicAddress("93.184.216.34")).toBe(true)
    expect(isPublicAddress("2606:4700:4700::1111")).toBe(true)
  })
})

describe("EgressProxy", () => {
  const logs: Array<LogLine> = []
  const collecting = Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ annotations, logLevel, message }) => {
      logs.push({
        level: logLevel.label,
        message: Array.isArray(message) ? message.join(" ") : String(message),
        annotations: Object.fromEntries(annotations)
      })
    })
  )
  let runtime: ManagedRuntime.ManagedRuntime<EgressProxy, never>
  let folder: string
  let a: Awaited<ReturnType<typeof loopbackServer>>
  let b: Awaited<ReturnType<typeof loopbackServer>>
  let scope: Scope.CloseableScope

  const open = (app: string, hosts: ReadonlyArray<AllowedHost>) =>
    runtime.runPromise(Effect.flatMap(EgressProxy, (proxy) => proxy.open({ app, hosts })).pipe(Scope.extend(scope)))

  beforeAll(async () => {
    runtime = ManagedRuntime.make(EgressProxy.Default.pipe(Layer.provide(collecting)))
    folder = (await runtime.runPromise(EgressProxy)).folder
    a = await loopbackServer("A")
    b = await loopbackServer("B")
  })

  afterEach(async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    logs.length = 0
  })

  afterAll(async () => {
    for (const { server } of [a, b]) {
      server?.closeAllConnections()
      await new Promise((done) => server?.close(done))
    }
    await runtime?.dispose()
    // The layer's socket folder goes with it.
    expect(existsSync(folder)).toBe(false)
  })

  beforeEach(() => {
    scope = Effect.runSync(Scope.make())
  })

  it("serves a private socket the agent's user can use, removed when the scope closes", async () => {
    expect(folder).toMatch(/\/clawdforge-egress-[^/]+$/)
    expect(statSync(folder).mode & 0o777).toBe(0o711)
    const { socketPath } = await open("app1", [{ host: "127.0.0.1", port: a.port }])
    expect(socketPath.startsWith(`${folder}/`)).toBe(true)
    expect(statSync(socketPath).isSocket()).toBe(true)
    expect(statSync(socketPath).mode & 0o777).toBe(0o666)

    // Another uid than the gateway's (the agent's) gets through it.
    const nobody = run("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, "-e", `
      const http = require("node:http")
      http.get({ socketPath: ${JSON.stringify(socketPath)}, path: "http://127.0.0.1:${a.port}/as-nobody" }, (res) => {
        console.log(res.statusCode); res.resume()
      }).on("error", (e) => console.log(e.code))
    `])
    const byNobody = await nobody.exited
    expect(byNobody.stdout.trim(), byNobody.stderr).toBe("200")

    // A tunnel still open when the scope closes is cut, and the socket file goes.
    const tunnel = await new Promise<import("node:net").Socket>((done, fail) => {
      http.request({ socketPath, method: "CONNECT", path: `127.0.0.1:${a.port}` })
        .on("connect", (_response, socket) => done(socket as import("node:net").Socket))
        .on("error", fail)
        .end()
    })
    const cut = new Promise<void>((done) => tunnel.once("close", () => done()))
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await cut
    expect(existsSync(socketPath)).toBe(false)
  })

  it("tunnels and forwards to an allowed host, refuses another with 403 and one warning line", async () => {
    const { socketPath } = await open("app1", [{ host: "127.0.0.1", port: a.port }])

    const tunnelled = await viaTunnel(socketPath, `127.0.0.1:${a.port}`)
    expect(tunnelled.status).toBe(200)
    expect(tunnelled.tunnelled).toContain("\"name\":\"A\"")
    expect(tunnelled.tunnelled).toContain("\"path\":\"/tunnelled\"")

    const forwarded = await viaProxy(socketPath, `http://127.0.0.1:${a.port}/hello?x=1`, {
      "proxy-authorization": "Basic c2VjcmV0",
      "x-keep": "kept",
      "connection": "x-drop",
      "x-drop": "dropped"
    })
    expect(forwarded.status).toBe(200)
    const seen = JSON.parse(forwarded.body) as { name: string; path: string; headers: Record<string, string> }
    expect(seen.name).toBe("A")
    expect(seen.path).toBe("/hello?x=1")
    expect(seen.headers["x-keep"]).toBe("kept")
    expect(seen.headers["proxy-authorization"]).toBeUndefined()
    expect(seen.headers["x-drop"]).toBeUndefined()
    // The same address in another spelling is the same host.
    expect((await viaTunnel(socketPath, `[::ffff:127.0.0.1]:${a.port}`)).status).toBe(200)
    expect(logs).toEqual([])

    const refusedTunnel = await viaTunnel(socketPath, `127.0.0.1:${b.port}`)
    expect(refusedTunnel.status).toBe(403)
    expect(refusedTunnel.tunnelled).not.toContain("\"name\":\"B\"")
    const refusedGet = await viaProxy(socketPath, `http://127.0.0.1:${b.port}/private?token=sekrit`)
    expect(refusedGet.status).toBe(403)
    expect(refusedGet.body).toContain(`127.0.0.1:${b.port}`)

    await until("two log lines", () => logs.length >= 2)
    expect(logs).toHaveLength(2)
    for (const line of logs) {
      expect(line.level).toBe("WARN")
      expect(line.annotations).toMatchObject({ app: "app1", host: `127.0.0.1:${b.port}` })
      // Nothing else of the request: no path, no query, no header.
      expect(JSON.stringify(line)).not.toMatch(/sekrit|private|token/)
    }
  })

  it("answers 502 when an allowed host does not answer", async () => {
    const closed = await loopbackServer("closed")
    await new Promise((done) => closed.server.close(done))
    const { socketPath } = await open("app1", [{ host: "127.0.0.1", port: undefined }])
    expect((await viaTunnel(socketPath, `127.0.0.1:${closed.port}`)).status).toBe(502)
    expect((await viaProxy(socketPath, `http://127.0.0.1:${closed.port}/`)).status).toBe(502)
    expect(logs).toEqual([])
  })

  it("refuses a name entry that resolves to loopback; `localhost` itself is the operator's word", async () => {
    // A name this machine resolves to loopback other than `localhost` (Debian's /etc/hosts has the
    // host's own name or ip6-localhost): what a DNS rebinding to the gateway looks like.
    const named = readFileSync("/etc/hosts", "utf8").split("\n")
      .map((line) => line.replace(/#.*/, "").trim().split(/\s+/))
      .filter(([address]) => address !== undefined && (address.startsWith("127.") || address === "::1"))
      .flatMap(([, ...names]) => names)
      .filter((name) => name !== "localhost" && !name.startsWith("localhost."))
    const resolvable: Array<string> = []
    for (const name of named) {
      if ((await lookup(name, { all: true }).catch(() => [])).length > 0) resolvable.push(name)
    }
    expect(resolvable, "/etc/hosts names no loopback host but localhost").not.toEqual([])
    const name = resolvable[0]!

    const { socketPath } = await open("app2", [
      { host: name, port: a.port },
      { host: "localhost", port: a.port }
    ])
    expect((await viaTunnel(socketPath, `${name}:${a.port}`)).status).toBe(403)
    expect((await viaProxy(socketPath, `http://${name}:${a.port}/`)).status).toBe(403)
    expect((await viaTunnel(socketPath, `localhost:${a.port}`)).status).toBe(200)
    expect((await viaProxy(socketPath, `http://localhost:${a.port}/`)).status).toBe(200)
    await until("two log lines", () => logs.length >= 2)
    expect(logs.map((line) => line.annotations)).toEqual([
      expect.objectContaining({ app: "app2", host: `${name}:${a.port}` }),
      expect.objectContaining({ app: "app2", host: `${name}:${a.port}` })
    ])
  })

  describe("in a real sandbox (bwrap, its own network namespace)", () => {

    it.runIf(bwrapAvailable)("reaches the allowed host only through the bridge", async () => {
      const { socketPath } = await open("app3", [{ host: "127.0.0.1", port: a.port }])
      const script = `(async () => {
        const http = require("node:http")
        const proxy = new URL(process.env.HTTP_PROXY)
        const get = (options) => new Promise((done) => {
          const request = http.request({ timeout: 3000, ...options }, (response) => {
            let body = ""
            response.on("data", (chunk) => body += chunk).on("end", () => done({ status: response.statusCode, body }))
          })
          request.on("error", (error) => done({ error: error.code }))
          request.on("timeout", () => request.destroy(Object.assign(new Error("timeout"), { code: "TIMEOUT" })))
          request.end()
        })
        const viaProxy = await get({ host: proxy.hostname, port: proxy.port, path: "http://127.0.0.1:${a.port}/inside" })
        const refused = await get({ host: proxy.hostname, port: proxy.port, path: "http://127.0.0.1:${b.port}/inside" })
        const direct = await get({ host: "127.0.0.1", port: ${a.port}, path: "/direct" })
        console.log(JSON.stringify({ viaProxy, refused, direct }))
      })()`
      const [node, bridge, port, socket, separator, ...argv] = bridgeArgv(socketPath, [process.execPath, "-e", script])
      expect([node, bridge, port, socket, separator]).toEqual([process.execPath, bridgePath, "3128", socketPath, "--"])
      expect(bridgePort).toBe(3128)
      const sandboxed = run("bwrap", [
        "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
        "--tmpfs", "/tmp", "--bind", folder, folder,
        node!, bridge!, port!, socket!, separator!, ...argv
      ], { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HTTP_PROXY: `http://127.0.0.1:${bridgePort}` })
      const result = await sandboxed.exited
      expect(result.code, result.stderr).toBe(0)
      const seen = JSON.parse(result.stdout) as Record<string, { status?: number; body?: string; error?: string }>
      expect(seen["viaProxy"]!.status).toBe(200)
      expect(JSON.parse(seen["viaProxy"]!.body!)).toMatchObject({ name: "A", path: "/inside" })
      expect(seen["refused"]!.status).toBe(403)
      expect(seen["direct"]!.error).toBe("ECONNREFUSED")
      await until("the refusal's log line", () => logs.length >= 1)
      expect(logs[0]!.annotations).toMatchObject({ app: "app3", host: `127.0.0.1:${b.port}` })
    })
  })
})

describe("sandbox-bridge.mjs", () => {
  const bridge = (argv: ReadonlyArray<string>) =>
    run(process.execPath, [bridgePath, "0", "/nonexistent/egress.sock", "--", ...argv])

  it("exits with the program's exit code", async () => {
    const result = await bridge([process.execPath, "-e", "process.stdout.write('hi'); process.exit(7)"]).exited
    expect(result).toMatchObject({ code: 7, signal: null, stdout: "hi" })
  })

  it("passes SIGTERM on and exits as the program does", async () => {
    const started = bridge([
      process.execPath,
      "-e",
      "process.on('SIGTERM', () => { console.log('got SIGTERM'); process.exit(3) }); console.log('ready'); setInterval(() => {}, 1000)"
    ])
    await until("the program to start", () => started.stdout().includes("ready"))
    started.child.kill("SIGTERM")
    expect(await started.exited).toMatchObject({ code: 3, signal: null })
    expect(started.stdout()).toContain("got SIGTERM")
  })

  it("dies of the program's signal", async () => {
    const result = await bridge([process.execPath, "-e", "process.kill(process.pid, 'SIGTERM')"]).exited
    expect(result).toMatchObject({ code: null, signal: "SIGTERM" })
  })

  it("refuses a command line without `--`", async () => {
    const result = await run(process.execPath, [bridgePath, "0", "/x.sock", "node"]).exited
    expect(result.code).toBe(2)
    expect(result.stderr).toContain("usage")
  })
})
