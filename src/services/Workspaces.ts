import { Effect } from "effect"
import { mkdir, realpath, rm } from "node:fs/promises"
import { isAbsolute, relative, resolve, sep } from "node:path"
import { BadRequest } from "../domain/Errors.js"
import type { AppName, SessionId } from "../domain/Ids.js"
import { AppConfig } from "./AppConfig.js"

const inside = (root: string, path: string) => {
  const rel = relative(root, path)
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel) && !rel.startsWith(`..${sep}`))
}

/** Per-session working directories under `CLAWDFORGE_WORKSPACE_ROOT/<app>/<session_id>`. */
export class Workspaces extends Effect.Service<Workspaces>()("clawdforge/Workspaces", {
  effect: Effect.gen(function*() {
    const { workspaceRoot } = yield* AppConfig
    const root = resolve(workspaceRoot)
    const appRoot = (app: AppName) => resolve(root, app)
    const sessionDir = (app: AppName, id: SessionId) => resolve(appRoot(app), id)

    /** The session's cwd: its own directory, or `cwd` if that lies inside the app's root. */
    const prepare = Effect.fn("Workspaces.prepare")(function*(app: AppName, id: SessionId, cwd: string | undefined) {
      const base = appRoot(app)
      const wanted = cwd === undefined ? sessionDir(app, id) : resolve(base, cwd)
      if (!inside(base, wanted) || wanted.includes("\0")) {
        return yield* new BadRequest({ message: "cwd must lie inside the app's workspace root" })
      }
      yield* Effect.promise(() => mkdir(wanted, { recursive: true }))
      // Symlinks must not lead out of the app's root either.
      const [realBase, realWanted] = yield* Effect.promise(() => Promise.all([realpath(base), realpath(wanted)]))
      if (!inside(realBase, realWanted)) {
        return yield* new BadRequest({ message: "cwd must lie inside the app's workspace root" })
      }
      return realWanted
    })

    /** Removes the session's own directory (never a caller-named cwd). */
    const remove = Effect.fn("Workspaces.remove")(function*(app: AppName, id: SessionId) {
      yield* Effect.promise(() => rm(sessionDir(app, id), { recursive: true, force: true }))
    })

    return { root, prepare, remove } as const
  }),
  dependencies: [AppConfig.Default]
}) {}
