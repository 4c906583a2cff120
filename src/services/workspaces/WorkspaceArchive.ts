import { Data, Deferred, Effect, Either, Option, Stream } from "effect"
import { once } from "node:events"
import type { Stats } from "node:fs"
import { type FileHandle, lchown, lstat, mkdtemp, open, readdir, readlink, rm } from "node:fs/promises"
import { dirname, join } from "node:path"
import { Header, Pack, ReadEntry, Unpack } from "tar"
import { BadArchive } from "../../domain/WorkspaceArchive.js"
import { FileNotFound } from "../../domain/WorkspaceFiles.js"
import { closeQuietly, directoryFlags, fdPath, readFlags } from "./Descriptors.js"
import { type WorkspacePath, WorkspacePaths } from "./WorkspacePaths.js"

// A workspace out as a tar.gz, and a tar (or tar.gz) in, without a read or a write outside it.
//
// Out: tar's own walk would follow a folder the agent swaps for a link between its lstat and its
// readdir or open, so the workspace is walked here the way WorkspacePaths reaches a path: each
// folder opened with O_NOFOLLOW|O_DIRECTORY from the one before (through `/proc/self/fd/N/<name>`),
// each file opened with O_NOFOLLOW and checked on its descriptor; tar's Pack gets each entry as a
// header and its bytes (a ReadEntry), and writes the format (long names, pax headers, gzip).
//
// In: tar's Unpack extracts into a fresh staging folder out of every agent's sight (WorkspacePaths'
// staging area), behind a filter that refuses the whole archive at its first bad entry; only a
// complete, clean extraction is then moved into the workspace, entry by entry through WorkspacePaths
// (renames in folders opened without following a link).

const chunkBytes = 256 * 1024
// Entries handed to Pack and not yet written out: a tree of empty files must not queue up in memory.
const maxQueuedEntries = 16
// Only the permission bits travel, in either direction: never setuid, setgid or sticky.
const permissions = (mode: number) => mode & 0o777

/** One entry of the workspace, as the archive stores it. */
interface EntryOut {
  readonly path: string
  readonly type: "File" | "Directory" | "SymbolicLink"
  readonly linkpath?: string
  readonly stats: Stats
}

/** The archive would add more than the room it was given (`bytes` so far): the caller's quota says which. */
export class ArchiveTooLarge extends Data.TaggedError("ArchiveTooLarge")<{ readonly bytes: number }> {}

/** What a header costs on top of its entry's bytes (a tar block; an empty file takes room on a disk too). */
const entryBytes = 512

/** What a PUT extracted. */
export interface Extracted {
  readonly entries: number
  readonly bytes: number
}

const quoted = (path: string) => JSON.stringify(path.length > 200 ? `${path.slice(0, 200)}...` : path)

/** Waits for `drain` on a stream that said it was full, or for `stop`. */
const drained = (stream: NodeJS.EventEmitter, stop: AbortSignal) =>
  once(stream, "drain", { signal: stop }).then(() => undefined, () => undefined)

export class WorkspaceArchive extends Effect.Service<WorkspaceArchive>()("clawdforge/WorkspaceArchive", {
  effect: Effect.gen(function*() {
    const paths = yield* WorkspacePaths

    /** Segments of an archive entry's name, as the files routes would take them (`./` prefixes dropped). */
    const segmentsOf = (name: string): Either.Either<WorkspacePath, string> => {
      let rest = name
      while (rest.startsWith("./")) rest = rest.slice(2)
      if (rest === "" || rest === ".") return Either.right([])
      return Effect.runSync(Effect.either(paths.parse(rest))).pipe(
        // The reason alone: the caller names the entry.
        Either.mapLeft((error) => error.message.replace(/^Bad path "(?:[^"\\]|\\.)*"(?:\.\.\.)?: /, ""))
      )
    }

    // ---- out ----

    /** Writes the tree under the open folder `dir` into `pack`, never following a link. */
    const walk = async (
      pack: Pack,
      dir: FileHandle,
      prefix: string,
      skip: ReadonlySet<string>,
      queue: { pending: number; wake: () => Promise<void> },
      stop: AbortSignal
    ): Promise<void> => {
      const names = (await readdir(fdPath(dir.fd))).sort()
      for (const name of names) {
        if (stop.aborted) return
        if (prefix === "" && skip.has(name)) continue
        const at = fdPath(dir.fd, name)
        // Gone, or swapped since the readdir: what is there now is taken as it is, or left out.
        const stats = await lstat(at).catch(() => undefined)
        if (stats === undefined) continue
        const path = prefix + name
        while (queue.pending >= maxQueuedEntries && !stop.aborted) await queue.wake()
        if (stats.isSymbolicLink()) {
          const target = await readlink(at).catch(() => undefined)
          if (target === undefined) continue
          add(pack, queue, { path, type: "SymbolicLink", linkpath: target, stats })
        } else if (stats.isDirectory()) {
          const child = await open(at, directoryFlags).catch(() => undefined)
          if (child === undefined) continue
          try {
            add(pack, queue, { path: `${path}/`, type: "Directory", stats: await child.stat() })
            await walk(pack, child, `${path}/`, skip, queue, stop)
          } finally {
            await closeQuietly(child)
          }
        } else if (stats.isFile()) {
          const file = await open(at, readFlags).catch(() => undefined)
          if (file === undefined) continue
          try {
            const opened = await file.stat()
            if (!opened.isFile()) continue
            await copyFile(pack, queue, path, file, opened, stop)
          } finally {
            await closeQuietly(file)
          }
        }
        // Sockets, FIFOs and devices have no place in an archive: left out.
      }
    }

    const headerOf = (entry: EntryOut, size = 0) =>
      new Header({
        path: entry.path,
        type: entry.type,
        ...(entry.linkpath === undefined ? {} : { linkpath: entry.linkpath }),
        size,
        mode: permissions(entry.stats.mode),
        mtime: entry.stats.mtime
      })

    /** Hands one entry without content to Pack. */
    const add = (
      pack: Pack,
      queue: { pending: number },
      entry: EntryOut
    ) => {
      const read = new ReadEntry(headerOf(entry))
      queue.pending++
      pack.write(read)
      read.end()
    }

    /** Hands one regular file to Pack: exactly the size its descriptor said (zeros if it shrank since). */
    const copyFile = async (
      pack: Pack,
      queue: { pending: number },
      path: string,
      file: FileHandle,
      stats: Stats,
      stop: AbortSignal
    ) => {
      const read = new ReadEntry(headerOf({ path, type: "File", stats }, stats.size))
      queue.pending++
      pack.write(read)
      let offset = 0
      while (offset < stats.size && !stop.aborted) {
        const length = Math.min(chunkBytes, stats.size - offset)
        const buffer = Buffer.alloc(length)
        const { bytesRead } = await file.read(buffer, 0, length, offset)
        // Shrunk since the stat: the rest stays zeros, so the entry keeps the size its header says.
        offset = bytesRead === 0 ? stats.size : offset + bytesRead
        const chunk = bytesRead === 0 ? buffer : buffer.subarray(0, bytesRead)
        if (!read.write(chunk)) await drained(read, stop)
      }
      read.end()
    }

    /**
     * The workspace as a gzipped tar, produced as it is read: entries relative to the workspace's
     * root, folders, files and symlinks (stored as links, never followed); at the top of an app's
     * root (a session whose cwd is it) the app's `.home` and the staging area are left out.
     */
    const pack = (workspace: string): Stream.Stream<Uint8Array> =>
      Stream.unwrapScoped(Effect.gen(function*() {
        const stop = new AbortController()
        yield* Effect.addFinalizer(() => Effect.sync(() => stop.abort()))
        const queue = {
          pending: 0,
          waiters: [] as Array<() => void>,
          wake(): Promise<void> {
            return new Promise((resolve) => this.waiters.push(resolve))
          }
        }
        // One listener for the stream's end, whatever the number of waits.
        stop.signal.addEventListener("abort", () => {
          for (const resolve of queue.waiters.splice(0)) resolve()
        }, { once: true })
        const tarball = new Pack({
          gzip: true,
          // No owners (the agent's uid means nothing elsewhere) and no timestamp in the gzip header.
          portable: true,
          onWriteEntry: (entry) => {
            entry.on("end", () => {
              queue.pending--
              for (const resolve of queue.waiters.splice(0)) resolve()
            })
          }
        })
        const skip = new Set(dirname(workspace) === paths.root ? [".home", ".uploads"] : [])
        void (async () => {
          const top = await open(workspace, directoryFlags)
          try {
            await walk(tarball, top, "", skip, queue, stop.signal)
          } finally {
            await closeQuietly(top)
          }
        })().then(
          () => {
            if (!stop.signal.aborted) tarball.end()
          },
          (error) => tarball.emit("error", error)
        )
        return Stream.fromAsyncIterable(tarball, (error) => error).pipe(
          Stream.map((chunk) => chunk as Uint8Array),
          Stream.orDie
        )
      }))

    // ---- in ----

    /** Refuses an entry's name as the files routes refuse a path, and any path under a link the archive made. */
    const checkEntry = (
      entry: ReadEntry,
      seen: { links: Set<string>; files: Set<string> }
    ): { readonly skip: true } | { readonly skip: false; readonly key: string } | { readonly bad: string } => {
      const raw = entry.path
      const segments = segmentsOf(raw)
      if (Either.isLeft(segments)) return { bad: `entry ${quoted(raw)}: ${segments.left}` }
      if (segments.right.length === 0) {
        // `./`, the archive's own root: nothing to make.
        return entry.type === "Directory" ? { skip: true } : { bad: `entry ${quoted(raw)} is not a folder but names the root` }
      }
      const key = segments.right.join("/")
      for (let i = 1; i <= segments.right.length; i++) {
        const prefix = segments.right.slice(0, i).join("/")
        if (seen.links.has(prefix)) {
          return { bad: i === segments.right.length
            ? `entry ${quoted(raw)} replaces the symlink the archive made there`
            : `entry ${quoted(raw)} goes through the symlink ${quoted(prefix)}` }
        }
      }
      switch (entry.type) {
        case "File":
        case "OldFile":
        case "ContiguousFile":
          seen.files.add(key)
          return { skip: false, key }
        case "Directory":
          seen.files.delete(key)
          return { skip: false, key }
        case "SymbolicLink":
          seen.links.add(key)
          seen.files.delete(key)
          return { skip: false, key }
        case "Link": {
          // Hard links are kept only between files of the archive itself (as GNU tar stores a file's
          // second name): the target must be a file named earlier in it, so a link never leads out.
          const target = segmentsOf(entry.linkpath ?? "")
          const targetKey = Either.isRight(target) ? target.right.join("/") : undefined
          if (targetKey === undefined || targetKey === "" || !seen.files.has(targetKey)) {
            return { bad: `hard link ${quoted(raw)} -> ${quoted(entry.linkpath ?? "")}: only a link to a file earlier in the archive is taken` }
          }
          seen.files.add(key)
          return { skip: false, key }
        }
        default:
          return { bad: `entry ${quoted(raw)} is a ${entry.type}: only files, folders and links are taken` }
      }
    }

    /** Extracts the body into `staging` (which must be empty and private); fails at the first bad entry or limit. */
    const unpackInto = (staging: string, body: Stream.Stream<Uint8Array, BadArchive>, room: number) =>
      Effect.gen(function*() {
        const failed = yield* Deferred.make<never, BadArchive | ArchiveTooLarge>()
        const seen = { links: new Set<string>(), files: new Set<string>() }
        let refused = false
        let bytes = 0
        let entries = 0
        const refuse = (error: BadArchive | ArchiveTooLarge) => {
          if (refused) return
          refused = true
          Deferred.unsafeDone(failed, Effect.fail(error))
        }
        const skipped = new WeakSet<ReadEntry>()
        const unpack: Unpack = new Unpack({
          cwd: staging,
          // Every warning is an error: a damaged archive is refused, not half extracted.
          strict: true,
          // Absolute symlink targets (a virtualenv's `bin/python -> /usr/bin/python3`) are kept as they
          // are; the names themselves are checked by the filter below, stricter than tar's own rules.
          preservePaths: true,
          preserveOwner: false,
          maxDepth: 128,
          // The room bounds what is written, counted from the headers; a highly compressible archive
          // (a workspace with a large file of zeros) is no bomb within it.
          maxDecompressionRatio: Infinity,
          filter: (_path, entry) => {
            if (refused || !(entry instanceof ReadEntry)) return false
            const verdict = checkEntry(entry, seen)
            if ("bad" in verdict) {
              refuse(new BadArchive({ message: verdict.bad }))
              unpack.abort(new Error(verdict.bad))
              return false
            }
            if (verdict.skip) {
              skipped.add(entry)
              return false
            }
            entries++
            if (entry.type !== "Directory" && entry.type !== "SymbolicLink" && entry.type !== "Link") bytes += entry.size
            // Counted from the headers, before the bytes arrive: a bomb stops at its first header past the room.
            if (bytes + entries * entryBytes > room) {
              refuse(new ArchiveTooLarge({ bytes: bytes + entries * entryBytes }))
              unpack.abort(new Error("over the quota"))
              return false
            }
            if (typeof entry.mode === "number") entry.mode = permissions(entry.mode)
            return true
          }
        })
        // An entry tar itself ignores (an unknown type, an oversized header) is not silently dropped.
        unpack.on("ignoredEntry", (entry: ReadEntry) => {
          if (!skipped.has(entry)) {
            refuse(new BadArchive({ message: `entry ${quoted(entry.path)} is of a kind tar does not extract (${entry.type})` }))
          }
        })
        unpack.on("error", (error: Error) => refuse(new BadArchive({ message: `not a valid tar or tar.gz: ${error.message}` })))
        const finished = new Promise<void>((resolve) => unpack.once("finish", () => resolve()))
        const stop = new AbortController()
        yield* Effect.addFinalizer(() => Effect.sync(() => stop.abort()))

        const write = (chunk: Uint8Array) =>
          Effect.suspend(() => {
            if (refused) return Deferred.await(failed)
            if (unpack.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))) return Effect.void
            return Effect.raceFirst(Effect.promise(() => drained(unpack, stop.signal)), Deferred.await(failed))
          })
        yield* Stream.runForEach(body, write)
        if (!refused) {
          unpack.end()
          yield* Effect.raceFirst(Effect.promise(() => finished), Deferred.await(failed))
        }
        if (refused) return yield* Deferred.await(failed)
        return { entries, bytes } satisfies Extracted
      }).pipe(Effect.scoped)

    /** Every path under `dir` (staged, private) given to the agent's user (links themselves, never their targets). */
    const giveTreeToAgent = async (dir: string, owner: { readonly uid: number; readonly gid: number }): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name)
        await lchown(path, owner.uid, owner.gid)
        if (entry.isDirectory()) await giveTreeToAgent(path, owner)
      }
    }

    /**
     * Where each staged entry goes: a name the workspace lacks takes the staged entry whole; a folder
     * merges into a folder; a file or link replaces a file or link. A folder where the workspace has a
     * link (writing through it) or a file, or a file where it has a folder, refuses the archive.
     */
    const planMoves = (workspace: string, staged: string, at: WorkspacePath) =>
      Effect.gen(function*() {
        const moves: Array<{ readonly from: string; readonly to: WorkspacePath }> = []
        const visit = (dir: string, segments: WorkspacePath): Effect.Effect<void, BadArchive> =>
          Effect.gen(function*() {
            const names = yield* Effect.promise(() => readdir(dir))
            for (const name of names.sort()) {
              const from = join(dir, name)
              const to = [...segments, name]
              const stagedStats = yield* Effect.promise(() => lstat(from))
              const present = yield* paths.lstat(workspace, to).pipe(
                Effect.catchAll((error) =>
                  Effect.fail(new BadArchive({ message: `${quoted(to.join("/"))} lies under a symlink in the workspace (${error.message})` }))
                )
              )
              if (present === undefined) {
                moves.push({ from, to })
              } else if (stagedStats.isDirectory()) {
                if (present.isSymbolicLink) {
                  return yield* new BadArchive({ message: `the folder ${quoted(to.join("/"))} would be written through a symlink in the workspace` })
                }
                if (!present.isDirectory) {
                  return yield* new BadArchive({ message: `the folder ${quoted(to.join("/"))} would replace a file in the workspace` })
                }
                yield* visit(from, to)
              } else if (present.isDirectory) {
                return yield* new BadArchive({ message: `${quoted(to.join("/"))} would replace a folder in the workspace` })
              } else {
                moves.push({ from, to })
              }
            }
          })
        yield* visit(staged, at)
        return moves
      })

    /**
     * Extracts a tar or tar.gz (told apart by the gzip magic) into the workspace, all or nothing:
     * a bad entry (an absolute name, `..`, a path through a link of the archive or of the workspace,
     * a hard link to anything but a file of the archive, a device or FIFO, a damaged or truncated
     * archive) is a `bad_archive`, and more than `room` bytes (files, and 512 per entry) `ArchiveTooLarge`,
     * with nothing extracted.
     */
    const extract = Effect.fn("WorkspaceArchive.extract")(function*(
      workspace: string,
      body: Stream.Stream<Uint8Array, BadArchive>,
      room: number
    ) {
      const staging = yield* Effect.acquireRelease(
        Effect.promise(() => mkdtemp(join(paths.staging, "archive-"))),
        (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
      )
      const extracted = yield* unpackInto(staging, body, room)
      // Nothing to give unless the gateway is root and sandboxes (WorkspacePaths.agentOwner).
      if (Option.isSome(paths.agentOwner)) {
        const owner = paths.agentOwner.value
        yield* Effect.promise(() => giveTreeToAgent(staging, owner))
      }
      const moves = yield* planMoves(workspace, staging, [])
      for (const move of moves) {
        // Only an agent racing the request gets here (a link or folder made since the plan): it stops
        // there, and what was moved before stays.
        yield* paths.moveIn(workspace, move.to, move.from).pipe(
          Effect.mapError((error) =>
            new BadArchive({ message: `the workspace changed while the archive was put in place, stopped at ${quoted(move.to.join("/"))}: ${error.message}` })
          )
        )
      }
      return extracted
    }, Effect.scoped)

    return {
      /**
       * The workspace's archive as a stream (`pack`), once its folder is known to be there: a session
       * whose folder is gone is 404 `file_not_found` rather than a broken download.
       */
      pack: Effect.fn("WorkspaceArchive.pack")(function*(workspace: string) {
        const there = yield* Effect.promise(() => lstat(workspace).then((stats) => stats.isDirectory(), () => false))
        if (!there) return yield* new FileNotFound({ message: "The session's workspace is gone" })
        return pack(workspace)
      }),
      extract
    } as const
  }),
  dependencies: [WorkspacePaths.Default]
}) {}
