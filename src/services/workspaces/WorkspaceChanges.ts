import { createTwoFilesPatch } from "diff"
import { Effect, Option } from "effect"
import { spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { writeFileSync } from "node:fs"
import { appendFile, lstat, mkdir, readFile, rm, unlink, writeFile } from "node:fs/promises"
import { join, resolve } from "node:path"
import { BadRequest, TurnNotFound } from "../../domain/Errors.js"
import type { AppName, SessionId } from "../../domain/Ids.js"
import type { Session } from "../../domain/Session.js"
import {
  type ChangesReply,
  maxDiffBytes,
  maxTurnChanges,
  type WorkspaceChange
} from "../../domain/WorkspaceChanges.js"
import { AppConfig } from "../config/AppConfig.js"
import { type Manifest, manifestOf, unchangedTree, type Walk, walkWorkspace, wallNowNs } from "./WorkspaceManifest.js"

/**
 * How the gateway sees what a turn did to a workspace: git plumbing on a private repository of the
 * session's, outside every sandbox (`<workspace_root>/.changes/<app>/<session_id>`: an app name never
 * starts with a dot, so no app's root and no agent's workspace holds it; root-owned, 0700). Its index
 * is a stat cache of the workspace, so a snapshot (`git add -A`, then `write-tree`) hashes only the files
 * whose size, mtime or ctime moved, and gives a tree; a turn's changes are `diff-tree` between the
 * tree at its start and at its end, and the blobs those trees name are the old contents the diffs need.
 *
 * Nothing of the workspace configures git: no system or global config, the config given through the
 * environment, the workspace's `.gitattributes` overridden (`info/attributes`) and its `.gitignore`
 * ignored (`add -f`); `.git` is never added (git's rule) and `.home` (the app's HOME, when the workspace
 * is the app's root) is left out. Symlinks are stored as links, never followed.
 *
 * A file over `maxKeptBytes` is hashed to see that it changed (the workspace quota bounds what that
 * costs) but not kept: its object is removed right away and its size noted, so it is listed by size
 * and never diffed, and a big file rewritten each turn does not pile up copies.
 *
 * Most turns change nothing, and a snapshot is two processes: at a turn's start and end the workspace
 * is first walked in process and compared with what the session's last snapshot saw
 * (`WorkspaceManifest`); when nothing moved, the last tree is the tree now and no git runs.
 */

/** Git's empty tree: the session's start when its workspace was empty. */
export const emptyTree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

/** The sessions whose last snapshot's manifest this process keeps (a few hundred bytes each). */
const maxManifests = 10_000

/** How long a workspace past the walk's bound (too many entries, a nested repository) is left to git alone. */
const gaveUpForMs = 60_000

/** Files larger than this are hashed, not kept (see above). */
export const maxKeptBytes = 16 * 1024 * 1024

/** Where a session's snapshots live: outside every app's root (see above). */
export const snapshotsDirOf = (workspaceRoot: string, app: string, sessionId: string) =>
  join(resolve(workspaceRoot), ".changes", app, sessionId)

/** Git's settings for every command here, through the environment: nothing read from the workspace. */
const gitSettings: ReadonlyArray<readonly [string, string]> = [
  ["core.hooksPath", "/dev/null"],
  ["core.fsmonitor", "false"],
  ["core.untrackedCache", "false"],
  ["core.excludesFile", "/dev/null"],
  ["core.attributesFile", "/dev/null"],
  ["core.autocrlf", "false"],
  ["core.safecrlf", "false"],
  ["core.symlinks", "true"],
  ["core.ignoreCase", "false"],
  ["core.fileMode", "true"],
  ["core.trustctime", "true"],
  ["core.quotePath", "false"],
  // Fast to write; a file over the big-file threshold would go to a pack instead, which cannot be pruned.
  ["core.looseCompression", "1"],
  ["core.bigFileThreshold", "64g"],
  ["core.preloadIndex", "true"],
  ["gc.auto", "0"],
  ["safe.directory", "*"]
]

/**
 * One snapshot: the workspace into a copy of the stat cache (no lock shared with another snapshot of
 * the same session, on this node or another), its tree printed, the copy made the cache; with a base
 * tree, the raw `diff-tree` from it follows. One process for the lot: a spawn is most of the cost.
 */
const snapshotScript = `set -e
trap 'rm -f "$GIT_INDEX_FILE" "$GIT_INDEX_FILE.lock"' EXIT
if [ -f "$GIT_DIR/index" ]; then cp "$GIT_DIR/index" "$GIT_INDEX_FILE"; fi
git add -A -f -- . ':(top,exclude,literal).home'
tree=$(git write-tree --missing-ok)
mv -f "$GIT_INDEX_FILE" "$GIT_DIR/index"
printf '%s\\n' "$tree"
if [ -n "$1" ] && [ "$1" != "$tree" ]; then git diff-tree -r -z --no-renames --raw "$1" "$tree"; fi
`

/** The workspace's `.gitattributes` can change nothing of what is stored. */
const neutralAttributes = "* -text -eol -ident -filter -working-tree-encoding -crlf\n"

/** A process's output, or an error with the first of its stderr. */
const run = (command: string, args: ReadonlyArray<string>, options: {
  readonly cwd: string
  readonly env: NodeJS.ProcessEnv
  readonly input?: string | undefined
}) =>
  Effect.async<Buffer, Error>((resume) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ["pipe", "pipe", "pipe"] })
    const out: Array<Buffer> = []
    let err = ""
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk))
    child.stderr.on("data", (chunk: Buffer) => {
      if (err.length < 2000) err += chunk.toString()
    })
    child.stdin.on("error", () => {})
    child.on("error", (error) => resume(Effect.fail(error)))
    child.on("close", (code) =>
      resume(
        code === 0
          ? Effect.succeed(Buffer.concat(out))
          : Effect.fail(new Error(`${args[0] ?? command} exited ${code}: ${err.trim().slice(0, 500)}`))
      )
    )
    child.stdin.end(options.input ?? "")
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/** A line of `diff-tree --raw`. */
interface RawChange {
  readonly path: string
  readonly status: WorkspaceChange["status"]
  readonly oldMode: string
  readonly newMode: string
  readonly oldId: string
  readonly newId: string
}

const statusOf: Record<string, WorkspaceChange["status"]> = { A: "added", D: "deleted", M: "modified", T: "modified" }

/** `diff-tree -r -z --raw`: `:oldmode newmode oldid newid S\0path\0`, one per file. */
const parseRaw = (raw: string): Array<RawChange> => {
  const parts = raw.split("\0")
  const changes: Array<RawChange> = []
  for (let i = 0; i + 1 < parts.length; i += 2) {
    const [oldMode = "", newMode = "", oldId = "", newId = "", letter = ""] = parts[i]!.replace(/^\n?:/, "").split(" ")
    changes.push({ path: parts[i + 1]!, status: statusOf[letter[0] ?? "M"] ?? "modified", oldMode, newMode, oldId, newId })
  }
  return changes
}

const gitlink = "160000"
const symlink = "120000"
/** The blob a change's size is read from: what it is now, or what it was when deleted. */
const blobOf = (change: RawChange) =>
  change.status === "deleted"
    ? { id: change.oldId, mode: change.oldMode }
    : { id: change.newId, mode: change.newMode }

/** `cat-file --batch` output: each object's bytes by id (missing ones left out). */
const parseBatch = (out: Buffer) => {
  const objects = new Map<string, Buffer>()
  let at = 0
  while (at < out.length) {
    const eol = out.indexOf(10, at)
    if (eol < 0) break
    const [id = "", type = "", size = ""] = out.subarray(at, eol).toString().split(" ")
    at = eol + 1
    if (type === "missing" || size === "") continue
    const length = Number(size)
    objects.set(id, out.subarray(at, at + length))
    at += length + 1
  }
  return objects
}

/** The sizes of the blobs of what is in the workspace now, by id, from lstat (a file gone since: left out). */
const sizesNow = async (cwd: string, raw: ReadonlyArray<RawChange>) => {
  const sizes = new Map<string, number>()
  await Promise.all(raw.filter((change) => change.status !== "deleted" && change.newMode !== gitlink).map((change) =>
    lstat(join(cwd, change.path)).then(
      (stat) => void sizes.set(change.newId, stat.size),
      () => {}
    )
  ))
  return sizes
}

/** Git's test for binary content: a NUL in the first 8000 bytes. */
const isBinary = (bytes: Buffer) => bytes.subarray(0, 8000).includes(0)

export class WorkspaceChanges extends Effect.Service<WorkspaceChanges>()("clawdforge/WorkspaceChanges", {
  effect: Effect.gen(function*() {
    const { workspaceRoot } = yield* AppConfig
    // The private repositories known to exist (made once per process; making one again is harmless).
    const made = new Set<string>()
    // What each session's last snapshot here saw, by private repository; the oldest dropped past the cap.
    const manifests = new Map<string, Manifest>()

    // The workspaces the walk gave up on, until when: paying for a walk and git each turn is the worst case.
    const gaveUp = new Map<string, number>()

    const remember = <A>(map: Map<string, A>, gitDir: string, value: A) => {
      map.delete(gitDir)
      map.set(gitDir, value)
      if (map.size > maxManifests) map.delete(map.keys().next().value!)
    }

    /** The walk of a session's workspace; none when it gives up, or gave up a moment ago. */
    const walkOf = (gitDir: string, cwd: string) => {
      const until = gaveUp.get(gitDir)
      if (until !== undefined) {
        if (Date.now() < until) return undefined
        gaveUp.delete(gitDir)
      }
      const walk = walkWorkspace(cwd)
      if (typeof walk === "object") return walk
      if (walk === "bound") remember(gaveUp, gitDir, Date.now() + gaveUpForMs)
      return undefined
    }

    /**
     * The tree now without git, when a walk shows it: nothing moved since the last snapshot, or
     * nothing there at all (git's empty tree, whatever the last snapshot saw).
     */
    const knownTree = (gitDir: string, walk: Walk | undefined) => {
      if (walk === undefined) return undefined
      if (walk.files === 0) {
        remember(manifests, gitDir, manifestOf(walk, emptyTree))
        return emptyTree
      }
      return unchangedTree(manifests.get(gitDir), walk)
    }

    const dirOf = (app: AppName, id: SessionId) => snapshotsDirOf(workspaceRoot, app, id)

    const envFor = (gitDir: string, workTree: string): NodeJS.ProcessEnv => {
      const env: NodeJS.ProcessEnv = {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: gitDir,
        LC_ALL: "C",
        GIT_DIR: gitDir,
        GIT_WORK_TREE: workTree,
        GIT_INDEX_FILE: join(gitDir, `index.${process.pid}.${randomBytes(6).toString("hex")}`),
        GIT_CONFIG_NOSYSTEM: "1",
        GIT_CONFIG_GLOBAL: "/dev/null",
        GIT_ATTR_NOSYSTEM: "1",
        GIT_OPTIONAL_LOCKS: "0",
        GIT_NO_REPLACE_OBJECTS: "1",
        GIT_TERMINAL_PROMPT: "0",
        GIT_CONFIG_COUNT: String(gitSettings.length)
      }
      gitSettings.forEach(([key, value], i) => {
        env[`GIT_CONFIG_KEY_${i}`] = key
        env[`GIT_CONFIG_VALUE_${i}`] = value
      })
      return env
    }

    /** The session's private repository, made on first use (plain files: no process). */
    const ensureRepo = (gitDir: string) =>
      made.has(gitDir) ? Effect.void : Effect.promise(async () => {
        await mkdir(join(gitDir, "objects"), { recursive: true, mode: 0o700 })
        await Promise.all([
          mkdir(join(gitDir, "refs"), { recursive: true }),
          mkdir(join(gitDir, "info"), { recursive: true }),
          mkdir(join(gitDir, "turns"), { recursive: true })
        ])
        await writeFile(join(gitDir, "HEAD"), "ref: refs/heads/main\n")
        await writeFile(join(gitDir, "info", "attributes"), neutralAttributes)
        made.add(gitDir)
      })

    /** The sizes of big objects that were pruned, by id. */
    const prunedSizes = (gitDir: string) =>
      Effect.promise(async () => {
        const sizes = new Map<string, number>()
        const text = await readFile(join(gitDir, "big-sizes"), "utf8").catch(() => "")
        for (const line of text.split("\n")) {
          const [id, size] = line.split(" ")
          if (id && size) sizes.set(id, Number(size))
        }
        return sizes
      })

    /** Each object's size (`missing` ones absent), in one process. */
    const sizesOf = (gitDir: string, workTree: string, ids: ReadonlyArray<string>) =>
      ids.length === 0 ? Effect.succeed(new Map<string, number>()) : Effect.map(
        run("git", ["cat-file", "--batch-check"], { cwd: workTree, env: envFor(gitDir, workTree), input: ids.join("\n") + "\n" }),
        (out) => {
          const sizes = new Map<string, number>()
          for (const line of out.toString().split("\n")) {
            const [id = "", type = "", size = ""] = line.split(" ")
            if (type !== "missing" && size !== "") sizes.set(id, Number(size))
          }
          return sizes
        }
      )

    /**
     * Takes a snapshot of the workspace and, with a base tree, what changed since it (with sizes);
     * big files' objects are pruned as they come (see above). With the walk taken just before, the
     * session's manifest becomes that walk's, with this tree.
     */
    const snapshot = (session: Session, base: string | undefined, walk?: Walk) =>
      Effect.gen(function*() {
        const gitDir = dirOf(session.app_name, session.session_id)
        yield* ensureRepo(gitDir)
        const env = envFor(gitDir, session.cwd)
        const wallNow = wallNowNs()
        const out = yield* run("sh", ["-c", snapshotScript, "snapshot", base ?? ""], { cwd: session.cwd, env })
        const eol = out.indexOf(10)
        const tree = out.subarray(0, eol).toString()
        if (walk !== undefined) {
          // The index git just wrote tells the file system's clock (see `manifestOf`).
          const written = yield* Effect.promise(() => lstat(join(gitDir, "index"), { bigint: true }).catch(() => undefined))
          remember(manifests, gitDir, manifestOf(walk, tree, written && { fsNowNs: written.mtimeNs, wallNowNs: wallNow }))
        }
        const raw = parseRaw(out.subarray(eol + 1).toString())
        // What is there now is sized by lstat (a symlink's size is its target's length, as its blob's);
        // only what is gone (or went since) needs its object's size: a process only then.
        const sizes = yield* Effect.promise(() => sizesNow(session.cwd, raw))
        const ids = [...new Set(
          raw.map(blobOf).filter((blob) => blob.mode !== gitlink && !sizes.has(blob.id)).map((blob) => blob.id)
        )]
        for (const [id, size] of yield* sizesOf(gitDir, session.cwd, ids)) sizes.set(id, size)
        const missing = ids.some((id) => !sizes.has(id))
        const pruned = missing ? yield* prunedSizes(gitDir) : new Map<string, number>()
        // New objects past the size kept: removed now, their size noted.
        const big = raw.filter((change) => change.status !== "deleted" && (sizes.get(change.newId) ?? 0) > maxKeptBytes)
        if (big.length > 0) {
          yield* Effect.promise(async () => {
            const ids = [...new Set(big.map((change) => change.newId))]
            await appendFile(join(gitDir, "big-sizes"), ids.map((id) => `${id} ${sizes.get(id)}\n`).join(""))
            await Promise.all(ids.map((id) => unlink(join(gitDir, "objects", id.slice(0, 2), id.slice(2))).catch(() => {})))
          })
        }
        const sizeOf = (change: RawChange) => {
          const { id, mode } = blobOf(change)
          return mode === gitlink ? 0 : sizes.get(id) ?? pruned.get(id) ?? 0
        }
        return { tree, raw, sizeOf, gitDir, env }
      })

    /** Notes turn `n`'s end tree, for `since`: 41 bytes, written at once (a quarter of a promise's CPU). */
    const noteTurnEnd = (gitDir: string, n: number, tree: string) =>
      Effect.sync(() => writeFileSync(join(gitDir, "turns", String(n)), tree + "\n"))

    /** The stored end tree of turn `n` (0: the session's start, the empty tree unless noted). */
    const treeAfter = (gitDir: string, n: number) =>
      Effect.promise(() =>
        readFile(join(gitDir, "turns", String(n)), "utf8").then(
          (text) => Option.some(text.trim()),
          () => n === 0 ? Option.some(emptyTree) : Option.none<string>()
        )
      )

    /** A failure here never fails a turn: the changes are unknown (null), and the log says why. */
    const unknownOnFailure = <A>(what: string, session: Session) => (effect: Effect.Effect<A, Error>) =>
      effect.pipe(
        Effect.catchAllCause((cause) =>
          Effect.as(
            Effect.logWarning(`workspace changes: ${what} failed`, { session_id: session.session_id }, cause),
            undefined
          )
        )
      )

    /**
     * The session's start, after its workspace is made (and cloned into): noted only when the
     * workspace holds something (no note: the empty tree), so an empty create spawns nothing.
     */
    const begin = Effect.fn("WorkspaceChanges.begin")(function*(session: Session) {
      const gitDir = dirOf(session.app_name, session.session_id)
      const walk = walkOf(gitDir, session.cwd)
      if (knownTree(gitDir, walk) === emptyTree) return
      yield* snapshot(session, undefined, walk).pipe(
        Effect.flatMap(({ gitDir, tree }) => Effect.promise(() => writeFile(join(gitDir, "turns", "0"), tree + "\n"))),
        unknownOnFailure("the session's first snapshot", session)
      )
    })

    /** The workspace as a turn starts (a PUT between turns is in it, so in no turn): its tree. */
    const turnStarts = (session: Session): Effect.Effect<string | undefined> =>
      Effect.suspend(() => {
        const gitDir = dirOf(session.app_name, session.session_id)
        const walk = walkOf(gitDir, session.cwd)
        const known = knownTree(gitDir, walk)
        if (known !== undefined) return Effect.succeed(known)
        return snapshot(session, undefined, walk).pipe(
          Effect.map(({ tree }) => tree),
          unknownOnFailure("a turn's first snapshot", session)
        )
      })

    /**
     * What the turn did to the workspace: from its start's tree to its end's (noted as turn `n`'s,
     * for `since`); at most `maxTurnChanges`, by path. Undefined when either snapshot failed.
     */
    const turnEnds = (session: Session, turnIndex: number, start: string | undefined) =>
      Effect.gen(function*() {
        const gitDir = dirOf(session.app_name, session.session_id)
        const walk = walkOf(gitDir, session.cwd)
        const known = knownTree(gitDir, walk)
        // Nothing moved since the turn's start (or since its start's snapshot): no change, no git.
        if (known !== undefined && (start === undefined || start === known)) {
          yield* ensureRepo(gitDir)
          yield* noteTurnEnd(gitDir, turnIndex, known)
          return start === undefined ? undefined : []
        }
        const { raw, sizeOf, tree } = yield* snapshot(session, start, walk)
        yield* noteTurnEnd(gitDir, turnIndex, tree)
        if (start === undefined) return undefined
        return raw.slice(0, maxTurnChanges).map((change): WorkspaceChange => ({
          path: change.path,
          status: change.status,
          size: sizeOf(change)
        }))
      }).pipe(unknownOnFailure("a turn's last snapshot", session))

    /** Each change's unified diff where both sides are text under `maxDiffBytes`. */
    const diffsOf = (
      env: NodeJS.ProcessEnv,
      cwd: string,
      gitDir: string,
      raw: ReadonlyArray<RawChange>
    ) =>
      Effect.gen(function*() {
        const candidates = raw.filter((change) => change.oldMode !== gitlink && change.newMode !== gitlink &&
          change.oldMode !== symlink && change.newMode !== symlink)
        const ids = candidates.flatMap((change) =>
          change.status === "added" ? [change.newId] : change.status === "deleted" ? [change.oldId] : [change.oldId, change.newId]
        )
        const sizes = yield* sizesOf(gitDir, cwd, [...new Set(ids)])
        const small = candidates.filter((change) =>
          [change.oldId, change.newId].every((id) => /^0+$/.test(id) || (sizes.get(id) ?? Infinity) <= maxDiffBytes)
        )
        const wanted = [...new Set(small.flatMap((change) => [change.oldId, change.newId]).filter((id) => !/^0+$/.test(id)))]
        const objects = wanted.length === 0
          ? new Map<string, Buffer>()
          : parseBatch(yield* run("git", ["cat-file", "--batch"], { cwd, env, input: wanted.join("\n") + "\n" }))
        const diffs = new Map<string, string>()
        const none = Buffer.alloc(0)
        for (const change of small) {
          const before = change.status === "added" ? none : objects.get(change.oldId)
          const after = change.status === "deleted" ? none : objects.get(change.newId)
          if (before === undefined || after === undefined || isBinary(before) || isBinary(after)) continue
          const patch = createTwoFilesPatch(
            change.status === "added" ? "/dev/null" : `a/${change.path}`,
            change.status === "deleted" ? "/dev/null" : `b/${change.path}`,
            before.toString("utf8"),
            after.toString("utf8"),
            undefined,
            undefined,
            // A pathological pair gives no diff rather than a stalled gateway.
            { context: 3, timeout: 250 }
          )
          if (patch !== undefined) diffs.set(change.path, patch)
        }
        return diffs
      })

    /**
     * What changed after turn `sinceTurn` ended, up to now (a snapshot taken for the question, on
     * whichever node answers: the repository is on the shared workspace root, and a snapshot takes
     * no lock another could hold). `turnCount`: the session's turns, for the 404.
     */
    const since = Effect.fn("WorkspaceChanges.since")(
      function*(session: Session, sinceTurn: number, options: { readonly diff: boolean }) {
        if (sinceTurn > session.turn_count) {
          return yield* new TurnNotFound({ message: `Session ${session.session_id} has no turn ${sinceTurn}` })
        }
        const gitDir = dirOf(session.app_name, session.session_id)
        const base = yield* treeAfter(gitDir, sinceTurn)
        if (Option.isNone(base)) {
          return yield* new BadRequest({
            message: `Turn ${sinceTurn} of session ${session.session_id} has not ended (or ended before the gateway ` +
              "noted workspaces): ask since an earlier turn"
          })
        }
        const now = yield* snapshot(session, base.value).pipe(Effect.orDie)
        const diffs = options.diff ? yield* diffsOf(now.env, session.cwd, now.gitDir, now.raw).pipe(Effect.orDie) : undefined
        const changes = now.raw.map((change) => {
          const diff = diffs?.get(change.path)
          return {
            path: change.path,
            status: change.status,
            size: now.sizeOf(change),
            ...(diff === undefined ? {} : { diff })
          }
        })
        const reply: ChangesReply = {
          ok: true,
          session_id: session.session_id,
          since_turn: sinceTurn,
          count: changes.length,
          changes
        }
        return reply
      }
    )

    /** The workspace's files now (a snapshot taken for the question), by path, with their sizes. */
    const files = Effect.fn("WorkspaceChanges.files")(function*(session: Session) {
      const now = yield* snapshot(session, undefined).pipe(Effect.orDie)
      const out = yield* run("git", ["ls-tree", "-r", "-z", "--full-tree", now.tree], { cwd: session.cwd, env: now.env })
        .pipe(Effect.orDie)
      // `<mode> <type> <id>\t<path>`, one per file.
      const entries = out.toString().split("\0").filter((line) => line.length > 0).map((line) => {
        const tab = line.indexOf("\t")
        const [mode = "", type = "", id = ""] = line.slice(0, tab).split(" ")
        return { mode, type, id, path: line.slice(tab + 1) }
      }).filter((entry) => entry.type === "blob")
      const sizes = yield* sizesOf(now.gitDir, session.cwd, [...new Set(entries.map((entry) => entry.id))]).pipe(Effect.orDie)
      const pruned = entries.some((entry) => !sizes.has(entry.id)) ? yield* prunedSizes(now.gitDir) : new Map<string, number>()
      return entries.map((entry) => ({
        path: entry.path,
        size: sizes.get(entry.id) ?? pruned.get(entry.id) ?? 0,
        type: entry.mode === symlink ? "symlink" as const : "file" as const
      }))
    })

    /**
     * One file's bytes as a snapshot taken now holds them (nothing on the workspace's disk is opened
     * by path); none when it is not a file there, or too big to be kept.
     */
    const fileBytes = Effect.fn("WorkspaceChanges.fileBytes")(function*(session: Session, path: string) {
      if (path === "" || path.startsWith("/") || /[\0\n\\]/.test(path) || path.split("/").some((part) => part === ".." || part === ".")) {
        return yield* new BadRequest({ message: "The path must be relative to the workspace root, without `..`, NUL or backslash" })
      }
      const now = yield* snapshot(session, undefined).pipe(Effect.orDie)
      const out = yield* run("git", ["cat-file", "--batch"], { cwd: session.cwd, env: now.env, input: `${now.tree}:${path}\n` })
        .pipe(Effect.orDie)
      const eol = out.indexOf(10)
      const [, type = "", size = ""] = out.subarray(0, eol).toString().split(" ")
      if (type !== "blob") return Option.none<Uint8Array>()
      return Option.some<Uint8Array>(out.subarray(eol + 1, eol + 1 + Number(size)))
    })

    /** Removes the session's snapshots (with its workspace, at the hard TTL or a failed create). */
    const remove = Effect.fn("WorkspaceChanges.remove")(function*(app: AppName, id: SessionId) {
      const gitDir = dirOf(app, id)
      made.delete(gitDir)
      manifests.delete(gitDir)
      gaveUp.delete(gitDir)
      yield* Effect.promise(() => rm(gitDir, { recursive: true, force: true }))
    })

    return { begin, turnStarts, turnEnds, since, files, fileBytes, remove, dirOf } as const
  }),
  dependencies: [AppConfig.Default]
}) {}
