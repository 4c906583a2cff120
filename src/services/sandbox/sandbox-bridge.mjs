// sandbox-bridge.mjs — runs inside an agent's sandbox (its own network namespace, the agent's user),
// in front of the agent: `node sandbox-bridge.mjs <port> <socketPath> -- <argv...>`.
//
// It listens on 127.0.0.1:<port>, the sandbox's own loopback, and pipes every connection to the
// gateway's egress proxy on the unix socket bound into the sandbox (the only way out), so the agent
// can be given `HTTPS_PROXY=http://127.0.0.1:<port>`. Then it runs argv with stdio inherited (an ACP
// agent speaks on stdin/stdout) and the environment as it is, passes SIGTERM/SIGINT/SIGHUP on, and
// ends as argv ends: with its exit code, or by its signal. Plain Node, no dependencies.
import { spawn } from "node:child_process"
import { createConnection, createServer } from "node:net"
import { constants } from "node:os"

const [portText, socketPath, separator, ...argv] = process.argv.slice(2)
const port = Number(portText)
if (!Number.isInteger(port) || port < 0 || port > 65535 || !socketPath || separator !== "--" || argv.length === 0) {
  process.stderr.write("usage: node sandbox-bridge.mjs <port> <socketPath> -- <argv...>\n")
  process.exit(2)
}

const server = createServer({ allowHalfOpen: true }, (client) => {
  const upstream = createConnection({ path: socketPath, allowHalfOpen: true })
  const end = () => {
    client.destroy()
    upstream.destroy()
  }
  client.on("error", end).on("close", end)
  upstream.on("error", end).on("close", end)
  client.pipe(upstream)
  upstream.pipe(client)
})

server.once("error", (error) => {
  process.stderr.write(`sandbox-bridge: cannot listen on 127.0.0.1:${port}: ${error.message}\n`)
  process.exit(1)
})

// Listening first: the agent may use its proxy as soon as it starts.
server.listen(port, "127.0.0.1", () => {
  const child = spawn(argv[0], argv.slice(1), { stdio: "inherit" })
  const forward = (signal) => child.kill(signal)
  const forwarded = ["SIGTERM", "SIGINT", "SIGHUP"]
  for (const signal of forwarded) process.on(signal, forward)

  child.once("error", (error) => {
    process.stderr.write(`sandbox-bridge: cannot start ${argv[0]}: ${error.message}\n`)
    process.exit(127)
  })
  child.once("exit", (code, signal) => {
    server.close()
    if (signal === null) process.exit(code ?? 1)
    // Die the same way, so whoever waits on the sandbox sees the agent's signal.
    for (const name of forwarded) process.off(name, forward)
    process.kill(process.pid, signal)
    // A signal whose default is not to end the process (rare): the shell's convention.
    setTimeout(() => process.exit(128 + (constants.signals[signal] ?? 0)), 100)
  })
})
