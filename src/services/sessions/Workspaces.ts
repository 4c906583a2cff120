import { Effect } from "effect"
import { mkdir, realpath, rm } from "node:fs/promises"
import { dirname, isAbsolute, relative, resolve } from "node:path"
import { BadRequest } from "../../domain/Errors.js"
import type { AppName, SessionId } from "../../domain/Ids.js"
import { AppConfig } from "../config/AppConfig.js"
import { snapshotsDirOf } from "../workspaces/WorkspaceChanges.js"

const inside = (root: string, path: string) => {
  const rel = relative(root, path)
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel))
}

/** The real path of `path`, or of its deepest existing ancestor joined with the rest. */
const realpathOfExisting = async (path: string): Promise<string> => {
  try {
    return await realpath(path)
  } catch {
    const parent = dirname(path)
    if (parent === path) return path
    return resolve(await realpathOfExisting(parent), relative(parent, path))
  }
}

/**
 * Per-session working directories under `CLAWDFORGE_WORKSPACE_ROOT/<app>/<session_id>`, and
 * the confinement rules: a caller-named cwd, and every file a turn names, must lie inside
 * (the app's root, the session's cwd) after `..` and symlinks are resolved.
 */
export class Workspaces extends Effect.Service<Workspaces>()("clawdforge/Workspaces", {
  effect: Effect.gen(function*() {
    const { workspaceRoot } = yield* AppConfig
    const root = resolve(workspaceRoot)
    const appRoot = (app: AppName) => resolve(root, app)
    const sessionDir = (app: AppName, id: SessionId) => resolve(appRoot(app), id)

    /** `path` (relative to `base`) resolved through symlinks, if it stays inside `base`. */
    const confine = (base: string, path: string, what: string) =>
      Effect.gen(function*() {
        const outside = new BadRequest({ message: `${what} must lie inside ${what === "cwd" ? "the app's workspace root" : "the session's workspace"}` })
        if (path.includes("\0")) return yield* outside
        const wanted = resolve(base, path)
        if (!inside(base, wanted)) return yield* outside
        const [realBase, realWanted] = yield* Effect.promise(() =>
          Promise.all([realpathOfExisting(base), realpathOfExisting(wanted)])
        )
        if (!inside(realBase, realWanted)) return yield* outside
        return realWanted
      })

    /** Creates and returns the session's cwd: its own directory, or `cwd` inside the app's root. */
    const prepare = Effect.fn("Workspaces.prepare")(function*(app: AppName, id: SessionId, cwd: string | undefined) {
      const base = appRoot(app)
      yield* Effect.promise(() => mkdir(base, { recursive: true }))
      const dir = yield* confine(base, cwd ?? sessionDir(app, id), "cwd")
      yield* Effect.tryPromise({
        try: () => mkdir(dir, { recursive: true }),
        catch: (error) =>
          new BadRequest({ message: `cwd cannot be a directory (${(error as NodeJS.ErrnoException).code ?? "error"})` })
      })
      return dir
    })

    /** The turn's files as absolute paths inside the session's cwd. */
    const resolveFiles = Effect.fn("Workspaces.resolveFiles")(
      function*(cwd: string, files: ReadonlyArray<string>) {
        return yield* Effect.forEach(files, (file) => confine(cwd, file, "files"))
      }
    )

    /** Removes the session's own directory (never a caller-named cwd), and its workspace's snapshots. */
    const remove = Effect.fn("Workspaces.remove")(function*(app: AppName, id: SessionId) {
      yield* Effect.promise(() => rm(sessionDir(app, id), { recursive: true, force: true }))
      yield* Effect.promise(() => rm(snapshotsDirOf(root, app, id), { recursive: true, force: true }))
    })

    return { root, prepare, resolveFiles, remove } as const
  }),
  dependencies: [AppConfig.Default]
}) {}
