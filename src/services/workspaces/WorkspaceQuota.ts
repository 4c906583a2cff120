import { Effect, Schedule } from "effect"
import { access, type FileHandle, lstat, open, readdir } from "node:fs/promises"
import { join } from "node:path"
import type { AppName } from "../../domain/Ids.js"
import { DiskQuota, WorkspaceOverQuota, WorkspaceQuotaExceeded } from "../../domain/WorkspaceFiles.js"
import { AppConfig } from "../config/AppConfig.js"
import { AppLimits } from "../tenancy/AppLimits.js"
import { directoryFlags, fdPath } from "./Descriptors.js"
import { WorkspacePaths } from "./WorkspacePaths.js"

const mb = 1024 * 1024
/** How many names of a folder are looked at together (the thread pool does the lstat calls). */
const statBatch = 64

/**
 * The bytes a folder holds: its files' sizes (a hard-linked file once), walked without following a
 * link (each folder opened with O_NOFOLLOW, read through its descriptor); undefined when the folder
 * itself is gone. A folder below it that vanishes while it is walked counts as empty.
 */
export const measureFolder = async (dir: string): Promise<number | undefined> => {
  let total = 0
  const linked = new Set<number>()
  const walk = async (path: string, parent?: FileHandle): Promise<void> => {
    const folder = await open(parent === undefined ? path : fdPath(parent.fd, path), directoryFlags).catch(() => undefined)
    if (folder === undefined) return
    try {
      const base = fdPath(folder.fd)
      const entries = await readdir(base, { withFileTypes: true }).catch(() => [])
      for (let i = 0; i < entries.length; i += statBatch) {
        await Promise.all(entries.slice(i, i + statBatch).map(async (entry) => {
          if (entry.isDirectory()) return walk(entry.name, folder)
          if (!entry.isFile()) return
          const stats = await lstat(join(base, entry.name)).catch(() => undefined)
          if (stats === undefined) return
          if (stats.nlink > 1) {
            if (linked.has(stats.ino)) return
            linked.add(stats.ino)
          }
          total += stats.size
        }))
      }
    } finally {
      await folder.close().catch(() => {})
    }
  }
  const gone = await access(dir).then(() => false, (error: NodeJS.ErrnoException) => error.code === "ENOENT")
  if (gone) return undefined
  await walk(dir)
  return total
}

interface Measured {
  bytes: number
  /** A measurement under way (started by a change: a turn's end, a removal); readers wait for it. */
  pending: Promise<number> | undefined
  /** The app it counts for (a workspace's; undefined for an app's folder). */
  readonly app: AppName | undefined
}

/**
 * The workspaces' quotas: `CLAWDFORGE_WORKSPACE_MAX_MB` per session and the app limit `max_disk_mb` over
 * an app's folder (its workspaces and its HOME). Sizes are measured by walking a folder, never on a
 * request's path once known: a workspace is measured again when a turn ends or a folder goes (and
 * the difference carried into its app's figure), an upload adds its bytes, and every minute each
 * known folder is measured again in the background (what agents write to HOME, another node's work).
 */
export class WorkspaceQuota extends Effect.Service<WorkspaceQuota>()("clawdforge/WorkspaceQuota", {
  scoped: Effect.gen(function*() {
    const config = yield* AppConfig
    const limits = yield* AppLimits
    const paths = yield* WorkspacePaths
    const measured = new Map<string, Measured>()
    const appFolder = (app: AppName) => join(paths.root, app)
    const workspaceMax = config.workspaceMaxBytes

    /** Measures the folder now (one walk at a time per folder), carrying a workspace's change into its app's figure. */
    const remeasure = (dir: string, app: AppName | undefined): Promise<number> => {
      const entry = measured.get(dir) ?? { bytes: 0, pending: undefined, app }
      if (entry.pending !== undefined) return entry.pending
      const known = measured.has(dir)
      measured.set(dir, entry)
      const pending = measureFolder(dir).then((found) => {
        const before = entry.bytes
        const bytes = found ?? 0
        entry.bytes = bytes
        entry.pending = undefined
        const owner = entry.app === undefined ? undefined : measured.get(appFolder(entry.app))
        if (known && owner !== undefined) owner.bytes = Math.max(0, owner.bytes + bytes - before)
        // A folder that is gone (a workspace removed) is forgotten: nothing measures it again.
        if (found === undefined && measured.get(dir) === entry) measured.delete(dir)
        return bytes
      }, (error) => {
        entry.pending = undefined
        throw error
      })
      entry.pending = pending
      return pending
    }

    /** What the folder holds as last measured (measured now the first time, or waited for while a measurement runs). */
    const sizeOf = (dir: string, app: AppName | undefined): Promise<number> => {
      const entry = measured.get(dir)
      if (entry === undefined) return remeasure(dir, app)
      return entry.pending ?? Promise.resolve(entry.bytes)
    }

    /**
     * What the app's folder holds, once its workspaces' measurements under way are done (a turn that
     * just ended counts before the app's next create or turn is let in).
     */
    const appSize = async (app: AppName): Promise<number> => {
      const pending: Array<Promise<number>> = []
      for (const entry of measured.values()) if (entry.app === app && entry.pending !== undefined) pending.push(entry.pending)
      if (pending.length > 0) await Promise.all(pending).catch(() => {})
      return sizeOf(appFolder(app), undefined)
    }

    const maxDiskBytes = (app: AppName) => Effect.map(limits.maxDiskMbFor(app), (limit) => limit === null ? Infinity : limit * mb)

    const diskQuota = (app: AppName, used: number, limit: number) =>
      new DiskQuota({
        message: `App ${app}'s workspaces and HOME take ${(used / mb).toFixed(1)} MB of its max_disk_mb (${limit / mb} MB): ` +
          "delete files or close sessions",
        limit_mb: limit / mb,
        used_mb: Math.round((used / mb) * 10) / 10
      })

    // Every known folder measured again in the background, once a minute.
    yield* Effect.promise(() => Promise.all([...measured.entries()].map(([dir, entry]) => remeasure(dir, entry.app).catch(() => 0)))).pipe(
      Effect.repeat(Schedule.spaced("60 seconds")),
      Effect.delay("60 seconds"),
      Effect.forkScoped
    )

    /**
     * Room for a write of `addBytes` more (a file's new size less the one it replaces; unknown: 0) into
     * the workspace: 413 `workspace_quota` past the session's, 429 `disk_quota` past the app's. Answers
     * how many bytes may still arrive (for a body whose length is not known ahead).
     */
    const admit = Effect.fn("WorkspaceQuota.admit")(function*(app: AppName, dir: string, addBytes: number) {
      const [workspace, total] = yield* Effect.promise(() => sizeOf(dir, app).then(async (workspace) => [workspace, await appSize(app)] as const))
      if (workspace + addBytes > workspaceMax) {
        return yield* new WorkspaceQuotaExceeded({
          message: `The workspace holds ${(workspace / mb).toFixed(1)} MB; ${(addBytes / mb).toFixed(1)} MB more would take it ` +
            `past CLAWDFORGE_WORKSPACE_MAX_MB (${workspaceMax / mb} MB)`,
          limit_mb: workspaceMax / mb,
          used_mb: Math.round((workspace / mb) * 10) / 10
        })
      }
      const limit = yield* maxDiskBytes(app)
      if (total + addBytes > limit) return yield* diskQuota(app, total, limit)
      return Math.min(workspaceMax - workspace, limit - total)
    })

    /** A turn may start: 429 `workspace_quota` while the workspace is over its size (a turn left it so), `disk_quota` at the app's. */
    const admitTurn = (app: AppName, dir: string): Effect.Effect<void, WorkspaceOverQuota | DiskQuota> =>
      Effect.gen(function*() {
        const [workspace, total] = yield* Effect.promise(() => sizeOf(dir, app).then(async (workspace) => [workspace, await appSize(app)] as const))
        if (workspace > workspaceMax) {
          return yield* new WorkspaceOverQuota({
            message: `The workspace holds ${(workspace / mb).toFixed(1)} MB, past CLAWDFORGE_WORKSPACE_MAX_MB ` +
              `(${workspaceMax / mb} MB): delete files (DELETE /sessions/{id}/files/{path}) before the next turn`,
            limit_mb: workspaceMax / mb,
            used_mb: Math.round((workspace / mb) * 10) / 10
          })
        }
        const limit = yield* maxDiskBytes(app)
        if (total >= limit) return yield* diskQuota(app, total, limit)
      })

    /** A session may be opened: 429 `disk_quota` once the app's folder is at its `max_disk_mb`. */
    const admitCreate = Effect.fn("WorkspaceQuota.admitCreate")(function*(app: AppName) {
      const total = yield* Effect.promise(() => appSize(app))
      const limit = yield* maxDiskBytes(app)
      if (total >= limit) return yield* diskQuota(app, total, limit)
    })

    /** A write of the gateway's own changed the workspace by `delta` bytes (an upload): no walk needed. */
    const added = (app: AppName, dir: string, delta: number) =>
      Effect.sync(() => {
        for (const key of [dir, appFolder(app)]) {
          const entry = measured.get(key)
          if (entry !== undefined && entry.pending === undefined) entry.bytes = Math.max(0, entry.bytes + delta)
        }
      })

    /** The workspace changed by an unknown amount (a turn ended, files went): measured again now, in the background. */
    const changed = (app: AppName, dir: string) =>
      Effect.sync(() => {
        remeasure(dir, app).catch(() => {})
      })

    return {
      admit,
      admitTurn,
      admitCreate,
      added,
      changed
    } as const
  }),
  dependencies: [AppConfig.Default, AppLimits.Default, WorkspacePaths.Default]
}) {}
