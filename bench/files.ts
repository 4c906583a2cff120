/**
 * How fast do a workspace's files go in and out? A 10 MB file uploaded (`PUT /sessions/{id}/files/...`,
 * streamed from disk) and downloaded (`GET`, read to its end) through the shared gateway, in MB/s,
 * against `cp` of the same file on the same disk in the same run (the floor: one read, one write).
 */
import { execFile } from "node:child_process"
import { randomBytes } from "node:crypto"
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import http from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { type Bench, type Question, ratio } from "./support/bench.js"
import { closeSession, createSession, token } from "./support/gateways.js"
import { keepAlive } from "./support/http.js"
import { median, now, round } from "./support/stats.js"

const fileMb = 10
const rounds = 7
const run = promisify(execFile)

/** One request on the bench's keep-alive agent; resolves with its status once the answer has been read to its end. */
const exchange = (port: number, method: string, path: string, body?: string) =>
  new Promise<{ status: number; bytes: number }>((resolve, reject) => {
    const request = http.request({
      host: "127.0.0.1",
      port,
      method,
      path,
      agent: keepAlive,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-length": fileMb * 1024 * 1024 }) }
    }, (response) => {
      let bytes = 0
      response.on("data", (chunk: Buffer) => bytes += chunk.length)
      response.on("end", () => resolve({ status: response.statusCode ?? 0, bytes }))
      response.on("error", reject)
    })
    request.on("error", reject)
    if (body === undefined) request.end()
    else createReadStream(body).pipe(request)
  })

/** Megabytes per second for the median of `rounds` timed runs of `once`. */
const rate = async (once: () => Promise<void>) => {
  const samples: Array<number> = []
  await once()
  for (let i = 0; i < rounds; i++) {
    const t0 = now()
    await once()
    samples.push(now() - t0)
  }
  const ms = median(samples)
  return { mb_per_s: round(fileMb / (ms / 1000), 1), median_ms: round(ms, 1) }
}

export const files: Question = {
  name: "files",
  run: async (bench: Bench) => {
    const gateway = await bench.gateway()
    const scratch = mkdtempSync(join(tmpdir(), "clawdforge-bench-files-"))
    try {
      const source = join(scratch, "source.bin")
      writeFileSync(source, randomBytes(fileMb * 1024 * 1024))
      // cp onto the same disk as the gateway's workspaces (its data folder), as an upload lands there.
      const copy = join(gateway.workspaces, "bench-cp-target.bin")
      const cp = await rate(async () => {
        await run("cp", [source, copy])
      })
      rmSync(copy, { force: true })
      const id = await createSession(gateway)
      const path = `/sessions/${id}/files/bench/upload.bin`
      const upload = await rate(async () => {
        const reply = await exchange(gateway.port, "PUT", path, source)
        if (reply.status !== 200 && reply.status !== 201) throw new Error(`upload answered ${reply.status}`)
      })
      const download = await rate(async () => {
        const reply = await exchange(gateway.port, "GET", path)
        if (reply.status !== 200 || reply.bytes !== fileMb * 1024 * 1024) throw new Error(`download answered ${reply.status}, ${reply.bytes} bytes`)
      })
      await closeSession(gateway, id)
      const row = (what: string, measured: { mb_per_s: number; median_ms: number }) => ({
        metric: `${what} ${fileMb} MB MB/s`,
        gateway: String(measured.mb_per_s),
        direct: `${cp.mb_per_s} cp`,
        ratio: ratio(measured.mb_per_s, cp.mb_per_s, "cp"),
        target: ">= 0.25x cp",
        pass: measured.mb_per_s >= 0.25 * cp.mb_per_s,
        note: `median of ${rounds}: ${measured.median_ms} ms (cp ${cp.median_ms} ms)`
      })
      return {
        results: { file_mb: fileMb, rounds, cp, upload, download },
        rows: [row("upload", upload), row("download", download)]
      }
    } finally {
      rmSync(scratch, { recursive: true, force: true })
    }
  }
}
