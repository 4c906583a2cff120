import { Chunk, Effect, Option, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { constants, mkdirSync, realpathSync } from "node:fs"
import { type FileHandle, lchown, lstat, mkdir, open, readdir, readlink, rename, rm } from "node:fs/promises"
import type { BigIntStats, Stats } from "node:fs"
import { isAbsolute, join, relative, resolve, sep } from "node:path"
import { BadPath, FileNotFound, IsADirectory } from "../../domain/WorkspaceFiles.js"
import { closeQuietly, directoryFlags, fdPath, readFlags } from "./Descriptors.js"
import { AppConfig } from "../config/AppConfig.js"
import { Sandbox } from "../sandbox/Sandbox.js"

// How a path inside a workspace is reached without a race against the agent, which may swap any
// folder of its workspace for a symlink at any moment: the workspace's folder is opened by walking
// from the (gateway-owned) workspace root, then each folder on the path is opened from the one
// before with O_NOFOLLOW|O_DIRECTORY through `/proc/self/fd/<parent>/<name>`. An open descriptor
// pins its folder: whatever the agent renames or swaps afterwards, the next step and the final act
// (open, lstat, mkdir, rename, unlink: none of which follows a last-component link, O_NOFOLLOW for
// open) happen in that folder. Every folder opened is also checked, through `/proc/self/fd/N`, to
// lie inside the workspace.

const maxSegments = 128
const maxNameBytes = 255
const maxPathBytes = 4096

/** A path the routes take, as segments under the workspace root (empty: the root itself). */
export type WorkspacePath = ReadonlyArray<string>

/** One entry as the listing shows it. */
export interface WorkspaceEntry {
  readonly path: string
  readonly type: "file" | "dir" | "symlink"
  readonly size: number
  readonly mtime: number
}

/** An opened regular file: read it through `handle` (closed with the scope). */
export interface OpenedFile {
  readonly handle: FileHandle
  readonly size: number
  readonly mtime: number
  readonly etag: string
}

/** A strong validator that changes with every write or replacement: inode, size and mtime in nanoseconds. */
export const etagOf = (stats: BigIntStats) =>
  `"${stats.ino.toString(36)}-${stats.size.toString(36)}-${stats.mtimeNs.toString(36)}"`

const badPath = (raw: string, why: string) =>
  new BadPath({ message: `Bad path ${JSON.stringify(raw.length > 200 ? raw.slice(0, 200) + "..." : raw)}: ${why}` })

/** Percent-decodes until nothing changes (a double-encoded `%252e%252e` is `..` too); undefined when malformed. */
const fullyDecoded = (segment: string): string | undefined => {
  let current = segment
  for (let round = 0; round < 8 && current.includes("%"); round++) {
    try {
      const next = decodeURIComponent(current)
      if (next === current) break
      current = next
    } catch {
      return current
    }
  }
  return current
}

/**
 * The `bad_path` rules: no absolute path, no `..` (nor `.`, nor an empty segment), no NUL, no
 * backslash, also in any percent-encoding that reaches the handler (a literal name that decodes to
 * one of them is refused rather than guessed at). A trailing `/` is allowed.
 */
export const parseWorkspacePath = (raw: string): Effect.Effect<WorkspacePath, BadPath> => {
  if (raw.includes("\0")) return Effect.fail(badPath(raw, "it holds a NUL"))
  if (raw.includes("\\")) return Effect.fail(badPath(raw, "it holds a backslash"))
  if (raw.startsWith("/") || isAbsolute(raw)) return Effect.fail(badPath(raw, "it is absolute"))
  if (Buffer.byteLength(raw) > maxPathBytes) return Effect.fail(badPath(raw, `it is longer than ${maxPathBytes} bytes`))
  const trimmed = raw.endsWith("/") ? raw.slice(0, -1) : raw
  if (trimmed === "" || trimmed === ".") return Effect.succeed([])
  const segments = trimmed.split("/")
  if (segments.length > maxSegments) return Effect.fail(badPath(raw, `it is deeper than ${maxSegments} folders`))
  for (const segment of segments) {
    if (segment === "") return Effect.fail(badPath(raw, "it holds an empty segment (`//`)"))
    if (segment === "..") return Effect.fail(badPath(raw, "it holds `..`"))
    if (segment === ".") return Effect.fail(badPath(raw, "it holds `.`"))
    if (Buffer.byteLength(segment) > maxNameBytes) return Effect.fail(badPath(raw, `a name is longer than ${maxNameBytes} bytes`))
    const decoded = fullyDecoded(segment)
    if (decoded !== segment && decoded !== undefined) {
      if (decoded.includes("\0")) return Effect.fail(badPath(raw, "it holds an encoded NUL"))
      if (decoded.includes("\\")) return Effect.fail(badPath(raw, "it holds an encoded backslash"))
      if (decoded.includes("/")) return Effect.fail(badPath(raw, "it holds an encoded `/`"))
      if (decoded === ".." || decoded === ".") return Effect.fail(badPath(raw, "it holds an encoded `..` or `.`"))
    }
  }
  return Effect.succeed(segments)
}

const errnoOf = (error: unknown) => (error as NodeJS.ErrnoException | undefined)?.code
const shown = (segments: WorkspacePath) => segments.join("/")

/** A failure the routes answer (the workspace's own errors), or a defect (anything else). */
type PathError = BadPath | FileNotFound | IsADirectory
const isPathError = (error: unknown): error is PathError =>
  error instanceof BadPath || error instanceof FileNotFound || error instanceof IsADirectory

/**
 * What an error of the file system means for the request: the path changed under it (the agent
 * removed a folder, or put a link or a file where a folder was) is the path's failure, not ours.
 */
const pathFailure = (error: unknown): PathError | undefined => {
  if (isPathError(error)) return error
  switch (errnoOf(error)) {
    case "ENOENT":
    case "ENOTDIR":
      return new FileNotFound({ message: "The path changed while the request ran (a folder on it is gone)" })
    case "ELOOP":
      return new BadPath({ message: "Bad path: it crosses a symlink" })
    case "EISDIR":
      return new IsADirectory({ message: "The path names a folder" })
    case "ENAMETOOLONG":
      return new BadPath({ message: "Bad path: it is too long" })
  }
  return undefined
}

/** Runs the async work; the path's failures fail the effect, anything else (EIO, EMFILE...) is a defect. */
const attempt = <A>(work: () => Promise<A>): Effect.Effect<A, PathError> =>
  Effect.tryPromise({ try: work, catch: (error) => error }).pipe(
    Effect.catchAll((error) => {
      const failure = pathFailure(error)
      return failure === undefined ? Effect.die(error) : Effect.fail(failure)
    })
  )


/** Paths under a workspace, reached and acted on without following a symlink (see the top of this file). */
export class WorkspacePaths extends Effect.Service<WorkspacePaths>()("clawdforge/WorkspacePaths", {
  effect: Effect.gen(function*() {
    const config = yield* AppConfig
    const sandbox = yield* Sandbox
    const configuredRoot = resolve(config.workspaceRoot)
    mkdirSync(configuredRoot, { recursive: true })
    // Session folders are stored as real paths (Workspaces.prepare resolves them): walk from the real root.
    const root = realpathSync(configuredRoot)
    // Uploads land here first, out of every agent's sight (no sandbox shows it), then are renamed into place.
    const staging = join(root, ".uploads")
    mkdirSync(staging, { recursive: true, mode: 0o700 })
    const owner = sandbox.mode === "bwrap" ? sandbox.agentUser : undefined

    /** Gives a path (never what a link points to) to the agent's user; nothing to do unless the gateway is root and sandboxes. */
    const giveToAgentNow = async (path: string) => {
      if (owner !== undefined) await lchown(path, owner.uid, owner.gid)
    }
    const giveFdToAgent = async (handle: FileHandle) => {
      if (owner !== undefined) await handle.chown(owner.uid, owner.gid)
    }

    /** Opens `name` inside the folder `parent` as a folder, never through a link; undefined when it does not exist. */
    const openChild = async (parent: FileHandle, name: string, raw: string, within: string): Promise<FileHandle | undefined> => {
      let child: FileHandle
      try {
        child = await open(fdPath(parent.fd, name), directoryFlags)
      } catch (error) {
        const code = errnoOf(error)
        if (code === "ENOENT") return undefined
        if (code === "ENOTDIR" || code === "ELOOP") {
          const stats = await lstat(fdPath(parent.fd, name)).catch(() => undefined)
          if (stats === undefined) return undefined
          if (stats.isSymbolicLink()) throw badPath(raw, `it crosses a symlink (${name})`)
          throw new FileNotFound({ message: `${raw}: ${name} is not a folder` })
        }
        throw error
      }
      const real = await readlink(fdPath(child.fd)).catch(() => "")
      if (real !== within && !real.startsWith(within + sep)) {
        await closeQuietly(child)
        throw badPath(raw, "it leads outside the workspace")
      }
      return child
    }

    /** The workspace's own folder, walked to from the workspace root without following a link. */
    const openWorkspace = async (workspace: string): Promise<FileHandle> => {
      const rel = relative(root, workspace)
      if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) {
        // Not under the root (the root was moved since the session opened): the stored folder as it is.
        return open(workspace, constants.O_RDONLY | constants.O_DIRECTORY)
      }
      let current = await open(root, constants.O_RDONLY | constants.O_DIRECTORY)
      for (const name of rel.split(sep)) {
        const next = await openChild(current, name, rel, root).finally(() => closeQuietly(current))
        if (next === undefined) throw new FileNotFound({ message: "The session's workspace is gone" })
        current = next
      }
      return current
    }

    /**
     * Opens the folder `segments` names (made with its parents, each given to the agent, when `create`);
     * undefined when a part is missing. The caller closes it.
     */
    const openFolder = async (workspace: string, segments: WorkspacePath, raw: string, create: boolean) => {
      let current = await openWorkspace(workspace)
      const within = await readlink(fdPath(current.fd))
      for (const name of segments) {
        let next: FileHandle | undefined
        try {
          next = await openChild(current, name, raw, within)
          if (next === undefined && create) {
            await mkdir(fdPath(current.fd, name), { mode: 0o755 }).catch((error) => {
              if (errnoOf(error) !== "EEXIST") throw error
            })
            next = await openChild(current, name, raw, within)
            if (next !== undefined) await giveFdToAgent(next)
          }
        } finally {
          await closeQuietly(current)
        }
        if (next === undefined) return { folder: undefined, within }
        current = next
      }
      return { folder: current as FileHandle | undefined, within }
    }

    /** Runs `use` with the folder holding the path's last name open (the path must name something). */
    const withParent = <A>(
      workspace: string,
      segments: WorkspacePath,
      create: boolean,
      use: (parent: FileHandle, name: string, within: string) => Promise<A>
    ): Promise<A> => {
      const raw = shown(segments)
      if (segments.length === 0) return Promise.reject(new IsADirectory({ message: "The workspace's root is a folder" }))
      return openFolder(workspace, segments.slice(0, -1), raw, create).then(({ folder, within }) => {
        if (folder === undefined) throw new FileNotFound({ message: `No file ${raw} in the workspace` })
        return use(folder, segments[segments.length - 1]!, within).finally(() => closeQuietly(folder))
      })
    }

    const entryOf = (path: string, stats: Stats): WorkspaceEntry => ({
      path,
      type: stats.isSymbolicLink() ? "symlink" : stats.isDirectory() ? "dir" : "file",
      size: stats.isDirectory() ? 0 : stats.size,
      mtime: Math.floor(stats.mtimeMs / 1000)
    })

    /** What the path names, never followed: undefined when nothing is there. */
    const lstatPath = Effect.fn("WorkspacePaths.lstat")(function*(workspace: string, segments: WorkspacePath) {
      return yield* attempt(() =>
        withParent(workspace, segments, false, (parent, name) =>
          lstat(fdPath(parent.fd, name), { bigint: true }).then(
            (stats) => ({ isDirectory: stats.isDirectory(), isSymbolicLink: stats.isSymbolicLink(), size: Number(stats.size), etag: etagOf(stats) }),
            (error) => {
              if (errnoOf(error) === "ENOENT") return undefined
              throw error
            }
          ))
      ).pipe(Effect.catchTag("FileNotFound", () => Effect.succeed(undefined)))
    })

    /**
     * The folder's entries (with `recursive`, everything under it), links listed and never followed;
     * at most `limit` entries, `truncated` past it. A path naming a file lists that file.
     */
    const list = Effect.fn("WorkspacePaths.list")(function*(
      workspace: string,
      segments: WorkspacePath,
      options: { readonly recursive: boolean; readonly limit: number }
    ) {
      const raw = shown(segments)
      return yield* attempt(async () => {
        const entries: Array<WorkspaceEntry> = []
        let truncated = false
        if (segments.length > 0) {
          const single = await withParent(workspace, segments, false, (parent, name) =>
            lstat(fdPath(parent.fd, name)).then((stats) => stats, (error) => {
              if (errnoOf(error) === "ENOENT") throw new FileNotFound({ message: `No file or folder ${raw} in the workspace` })
              throw error
            }))
          if (!single.isDirectory()) return { entries: [entryOf(raw, single)], truncated }
        }
        const { folder, within } = await openFolder(workspace, segments, raw, false)
        if (folder === undefined) throw new FileNotFound({ message: `No folder ${raw} in the workspace` })
        const walk = async (dir: FileHandle, prefix: string): Promise<void> => {
          const names = (await readdir(fdPath(dir.fd))).sort()
          for (const name of names) {
            if (entries.length >= options.limit) {
              truncated = true
              return
            }
            const stats = await lstat(fdPath(dir.fd, name)).catch(() => undefined)
            if (stats === undefined) continue
            const path = prefix === "" ? name : `${prefix}/${name}`
            entries.push(entryOf(path, stats))
            if (options.recursive && stats.isDirectory()) {
              // Swapped for a link since the lstat: listed as it was, not entered.
              const child = await openChild(dir, name, path, within).catch(() => undefined)
              if (child !== undefined) await walk(child, path).finally(() => closeQuietly(child))
            }
          }
        }
        await walk(folder, raw).finally(() => closeQuietly(folder))
        return { entries, truncated }
      })
    })

    /**
     * Opens a regular file for reading: 404 when missing, `is_a_directory`, `bad_path` for a link or
     * anything but a regular file. The caller closes `handle` (a read stream made with `autoClose`
     * does, once it ends or is destroyed).
     */
    const openFile = Effect.fn("WorkspacePaths.openFile")(function*(workspace: string, segments: WorkspacePath) {
      const raw = shown(segments)
      return yield* attempt(() =>
        withParent(workspace, segments, false, async (parent, name): Promise<OpenedFile> => {
          let handle: FileHandle
          try {
            handle = await open(fdPath(parent.fd, name), readFlags)
          } catch (error) {
            const code = errnoOf(error)
            if (code === "ENOENT") throw new FileNotFound({ message: `No file ${raw} in the workspace` })
            if (code === "ELOOP") throw badPath(raw, "it names a symlink")
            throw error
          }
          const stats = await handle.stat({ bigint: true })
          if (stats.isDirectory()) {
            await closeQuietly(handle)
            throw new IsADirectory({ message: `${raw} is a folder: list it with GET /sessions/{id}/files?path=${raw}` })
          }
          if (!stats.isFile()) {
            await closeQuietly(handle)
            throw badPath(raw, "it is not a regular file")
          }
          return { handle, size: Number(stats.size), mtime: Number(stats.mtimeMs / 1000n), etag: etagOf(stats) }
        })
      )
    })

    /** Makes the folder and its parents, each given to the agent. */
    const makeFolder = Effect.fn("WorkspacePaths.mkdir")(function*(workspace: string, segments: WorkspacePath) {
      yield* attempt(() => openFolder(workspace, segments, shown(segments), true).then(({ folder }) => closeQuietly(folder)))
    })

    /** The folder holding the path's last name, open for the scope (made, with its parents, when `create`). */
    const parentOf = (workspace: string, segments: WorkspacePath, create: boolean) =>
      Effect.acquireRelease(
        attempt(async () => {
          const raw = shown(segments)
          const { folder } = await openFolder(workspace, segments.slice(0, -1), raw, create)
          if (folder === undefined) throw new FileNotFound({ message: `No file ${raw} in the workspace` })
          return folder
        }),
        (folder) => Effect.promise(() => closeQuietly(folder))
      )

    // The precondition and the rename are one step for this gateway.
    const writeLock = yield* Effect.makeSemaphore(1)

    /**
     * Writes `body` to the path: streamed to a file in the staging area (out of the agent's sight),
     * given to the agent, then renamed into place (a new inode: never a write through a link or into a
     * file the agent holds open). The stream stops once past `maxBytes` (`tooLarge`); `check` sees
     * what is there now (undefined: nothing) right before the rename, and may refuse.
     */
    const writeFile = <E, E2, E3>(
      workspace: string,
      segments: WorkspacePath,
      body: Stream.Stream<Uint8Array, E>,
      options: {
        readonly maxBytes: number
        readonly tooLarge: (bytes: number) => Effect.Effect<never, E2>
        readonly check: (current: { readonly etag: string } | undefined) => Effect.Effect<void, E3>
      }
    ): Effect.Effect<{ readonly size: number; readonly etag: string; readonly created: boolean }, E | E2 | E3 | PathError> =>
      Effect.gen(function*() {
        const raw = shown(segments)
        if (segments.length === 0) return yield* badPath(raw, "a file needs a name")
        const name = segments[segments.length - 1]!
        const temp = join(staging, `${Date.now().toString(36)}-${randomBytes(9).toString("base64url")}`)
        const handle = yield* Effect.acquireRelease(
          Effect.promise(() => open(temp, "wx", 0o644)),
          (handle) => Effect.promise(() => closeQuietly(handle).then(() => rm(temp, { force: true })))
        )
        let size = 0
        // A chunk of the stream's pieces at a time, in one writev.
        yield* Stream.runForEachChunk(body, (chunk) => {
          const pieces = Chunk.toReadonlyArray(chunk)
          for (const piece of pieces) size += piece.byteLength
          if (size > options.maxBytes) return options.tooLarge(size)
          return Effect.promise(() => handle.writev(pieces as Array<Uint8Array>))
        })
        yield* Effect.promise(() => giveFdToAgent(handle))
        const parent = yield* parentOf(workspace, segments, true)
        const target = fdPath(parent.fd, name)
        return yield* writeLock.withPermits(1)(Effect.gen(function*() {
          const current = yield* attempt(() =>
            lstat(target, { bigint: true }).catch((error) => {
              if (errnoOf(error) === "ENOENT") return undefined
              throw error
            })
          )
          if (current?.isDirectory()) return yield* new IsADirectory({ message: `${raw} is a folder` })
          if (current?.isSymbolicLink()) return yield* badPath(raw, "it names a symlink")
          yield* options.check(current === undefined ? undefined : { etag: etagOf(current) })
          // rename(2) replaces the name in the pinned folder; it never follows a link.
          yield* attempt(() => rename(temp, target))
          const written = yield* Effect.promise(() => handle.stat({ bigint: true }))
          return { size, etag: etagOf(written), created: current === undefined }
        }))
      }).pipe(Effect.scoped)


    /** Removes the path (a folder only with `recursive`): moved out of the agent's reach first, then deleted there. */
    const remove = Effect.fn("WorkspacePaths.remove")(function*(workspace: string, segments: WorkspacePath, recursive: boolean) {
      const raw = shown(segments)
      if (segments.length === 0) return yield* badPath(raw, "the workspace's root is not removed")
      const trash = join(staging, `rm-${Date.now().toString(36)}-${randomBytes(9).toString("base64url")}`)
      yield* attempt(() =>
        withParent(workspace, segments, false, async (parent, name) => {
          const target = fdPath(parent.fd, name)
          const stats = await lstat(target).catch((error) => {
            if (errnoOf(error) === "ENOENT") throw new FileNotFound({ message: `No file or folder ${raw} in the workspace` })
            throw error
          })
          if (stats.isDirectory() && !recursive) {
            throw new IsADirectory({ message: `${raw} is a folder: delete it with ?recursive=true` })
          }
          // A rename never follows a link and is atomic: what is deleted afterwards is out of the agent's reach.
          await rename(target, trash)
        })
      )
      yield* Effect.promise(() => rm(trash, { recursive: true, force: true }))
    })

    /**
     * Moves `source` (a file, link or whole folder in the staging area) to the path, whose folder must
     * exist: a rename in that pinned folder, replacing a file or link there (never following it); a
     * folder there is `is_a_directory`. Archives put their extracted entries in place with it.
     */
    const moveIn = Effect.fn("WorkspacePaths.moveIn")(function*(workspace: string, segments: WorkspacePath, source: string) {
      const raw = shown(segments)
      yield* attempt(() =>
        withParent(workspace, segments, false, async (parent, name) => {
          const target = fdPath(parent.fd, name)
          const current = await lstat(target).catch((error) => {
            if (errnoOf(error) === "ENOENT") return undefined
            throw error
          })
          if (current?.isDirectory()) throw new IsADirectory({ message: `${raw} is a folder` })
          await rename(source, target)
        })
      )
    })

    return {
      /** The workspace root, as a real path. */
      root,
      /** The staging area (uploads, removals), on the workspaces' file system and out of every agent's sight. */
      staging,
      parse: parseWorkspacePath,
      lstat: lstatPath,
      list,
      openFile,
      mkdir: makeFolder,
      writeFile,
      remove,
      moveIn,
      /** Gives a path (never a link's target) to the sandbox's agent user; nothing to do unless the gateway is root and sandboxes. */
      giveToAgent: Effect.fn("WorkspacePaths.giveToAgent")((path: string) => Effect.promise(() => giveToAgentNow(path))),
      /** The agent's user, when what the gateway writes must be given to it. */
      agentOwner: Option.fromNullable(owner)
    } as const
  }),
  dependencies: [AppConfig.Default, Sandbox.Default]
}) {}
