/** What does `POST /run` add to spawning the claude stand-in directly (the same fake claude)? */
import { spawn } from "node:child_process"
import { type Bench, ms, type Question } from "./support/bench.js"
import { expectOk } from "./support/http.js"
import { fakeClaude } from "./support/paths.js"
import { track } from "./support/processes.js"
import { timeEach } from "./support/timing.js"

const spawnFakeClaude = () =>
  new Promise<void>((done, fail) => {
    const child = track(spawn(fakeClaude, ["-p", "bench", "--output-format", "json"], { stdio: ["pipe", "pipe", "pipe"] }))
    let out = ""
    child.stdout!.on("data", (chunk) => out += chunk)
    child.stderr!.resume()
    child.stdin!.end()
    child.once("error", fail)
    child.once("close", (code) => {
      if (code !== 0) return fail(new Error(`fake claude exit ${code}`))
      JSON.parse(out)
      done()
    })
  })

export const claudeRun: Question = {
  name: "run",
  run: async (bench: Bench) => {
    const { sizes } = bench
    const gateway = await bench.gateway()
    const direct = await timeEach(spawnFakeClaude, sizes.runWarmup, sizes.runs)
    const viaGateway = await timeEach(
      async () => expectOk(await gateway.call("POST", "/run", { prompt: "bench" }), "run"),
      sizes.runWarmup,
      sizes.runs
    )
    return {
      results: { direct, gateway: viaGateway },
      rows: [{
        metric: "/run p50 ms",
        gateway: ms(viaGateway.p50),
        direct: `${ms(direct.p50)} spawn`,
        ratio: `${viaGateway.p50 >= direct.p50 ? "+" : ""}${ms(viaGateway.p50 - direct.p50)} ms`,
        note: "fake claude"
      }]
    }
  }
}
