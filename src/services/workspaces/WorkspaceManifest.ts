import { createHash } from "node:crypto"
import { type Dirent, lstatSync, readdirSync } from "node:fs"
import { join } from "node:path"

/**
 * The pre-check that lets a turn which moved nothing skip git: the workspace walked in process
 * (`lstat`, links never followed) and its entries' stats compared with those the last snapshot saw.
 * Equal stats, none of them too fresh to trust (below), mean equal bytes: the last tree is the tree
 * now. Anything else (a stat moved, a path came or went, the walk too long, a repository nested in
 * the workspace) is git's to see, exactly as before.
 *
 * What the walk keeps is a digest, not the entries: only "all the same or not" is asked of it.
 */

/**
 * Past this many entries, or this long, git's own walk is as cheap: the walk gives up and the snapshot
 * is git's. Measured here (2 cores, loaded): an `lstat` costs 2.5 to 3 µs of CPU, bigint or not, so
 * 2,000 entries about 6 ms, against a git snapshot's spawn (about 5 ms) and its own `lstat`s; on 10,000
 * files a snapshot's processes take about 40 ms of CPU. The wall budget keeps the event loop free.
 */
export const maxWalkEntries = 2_000
const walkBudgetMs = 10

/**
 * Git's racy-timestamp lesson: a file rewritten in the same clock tick as it was seen keeps its
 * mtime (and, same size, its whole stat). An entry whose mtime or ctime is within this of the walk's
 * start is not trusted, so a later walk that finds it equal asks git all the same. A second covers
 * the file systems that keep whole seconds.
 */
const racyWindowNs = 1_000_000_000n

/** One walk of a workspace: what its entries' stats add up to, and whether they can be trusted. */
export interface Walk {
  /**
   * The digest of every entry's path, type and mode, size, mtime, ctime and inode. Folders count too:
   * a file made and removed between the walk and git's snapshot leaves its folder's mtime moved, so
   * a tree that holds it is never taken for what the walk saw.
   */
  readonly digest: string
  /** How many files and links it saw, folders aside (none: the workspace's tree is git's empty tree). */
  readonly files: number
  /** The newest mtime or ctime seen (ns), for the racy rule. */
  readonly newestNs: bigint
  /** The wall clock as the walk began (ns). */
  readonly startedNs: bigint
}

/** What the last snapshot saw of a session's workspace, and the tree it gave. */
export interface Manifest {
  readonly digest: string
  readonly tree: string
  /** Every entry older than the racy window: an equal digest later means the same bytes. */
  readonly settled: boolean
}

const nowNs = () => BigInt(Date.now()) * 1_000_000n

/**
 * Why a walk gave up: `bound` (past `maxWalkEntries`, or a nested repository: so it stays for a while),
 * `busy` (past its time, or something moved under it: the next walk may well finish).
 */
type GaveUp = "bound" | "busy"

/**
 * Walks `cwd` as the snapshot sees it: `.git` and top-level `.home` left out, never through a link.
 * Gives up when git must look instead: past the bound, a nested repository (`.git` below the top,
 * which git stores as a gitlink whose commit no stat here shows), past its time or anything unreadable. Synchronous
 * on purpose: bounded to a few milliseconds, cheaper than a promise per entry, and a spawn blocks the
 * event loop as long.
 */
export const walkWorkspace = (cwd: string): Walk | GaveUp => {
  const startedNs = nowNs()
  const deadline = performance.now() + walkBudgetMs
  const hash = createHash("sha256")
  let seen = 0
  let files = 0
  let newestNs = 0n
  const folders: Array<string> = [""]
  const see = (path: string) => {
    const stat = lstatSync(path === "" ? cwd : join(cwd, path), { bigint: true })
    if (stat.mtimeNs > newestNs) newestNs = stat.mtimeNs
    if (stat.ctimeNs > newestNs) newestNs = stat.ctimeNs
    // NUL ends the path (no path holds one), a newline the stat (no stat holds one): unambiguous.
    hash.update(`${path}\0${stat.mode} ${stat.size} ${stat.mtimeNs} ${stat.ctimeNs} ${stat.ino}\n`)
    return stat
  }
  try {
    see("")
    while (folders.length > 0) {
      const folder = folders.pop()!
      const entries: Array<Dirent> = readdirSync(folder === "" ? cwd : join(cwd, folder), { withFileTypes: true })
      for (const entry of entries) {
        const name = entry.name
        if (name === ".git") {
          if (folder === "") continue
          return "bound"
        }
        if (folder === "" && name === ".home") continue
        seen++
        if (seen > maxWalkEntries) return "bound"
        if (seen % 64 === 0 && performance.now() > deadline) return "busy"
        const path = folder === "" ? name : `${folder}/${name}`
        // A folder now something else, or the other way round: it changed under the walk.
        if (see(path).isDirectory() !== entry.isDirectory()) return "busy"
        if (entry.isDirectory()) folders.push(path)
        else files++
      }
    }
  } catch {
    return "busy"
  }
  return { digest: hash.digest("base64"), files, newestNs, startedNs }
}

/**
 * The manifest a snapshot leaves: the walk taken before it, with the tree it gave. `fsNowNs`, when
 * known, is a time the workspace's file system gave after `wallNowNs` (the mtime of the index the
 * snapshot wrote, and the wall clock as it began): when even so it is behind, the file system's clock
 * is behind at least that much (a shared mount), and the racy window moves back with it.
 */
export const manifestOf = (walk: Walk, tree: string, fsNow?: { readonly fsNowNs: bigint; readonly wallNowNs: bigint }) => {
  const skewNs = fsNow === undefined ? 0n : fsNow.fsNowNs - fsNow.wallNowNs
  const startedNs = skewNs < 0n ? walk.startedNs + skewNs : walk.startedNs
  const manifest: Manifest = { digest: walk.digest, tree, settled: walk.newestNs < startedNs - racyWindowNs }
  return manifest
}

/** The tree now, when the walk proves nothing moved since the manifest; else undefined (ask git). */
export const unchangedTree = (manifest: Manifest | undefined, walk: Walk | GaveUp | undefined) =>
  manifest !== undefined && typeof walk === "object" && manifest.settled && manifest.digest === walk.digest
    ? manifest.tree
    : undefined

/** The wall clock now (ns), for `manifestOf`'s `fsNow`. */
export const wallNowNs = nowNs
