/**
 * Real git repositories for the tests of `git` on create (test/workspace-git.test.ts,
 * test/cluster-git.test.ts): made with the machine's git in a temp folder of the test file's.
 */
import { execFileSync } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { tempDir } from "./TempDirs.js"

/** git as the tests run it: no system or user config, a fixed identity; any owner's repository readable. */
export const git = (cwd: string, ...args: Array<string>) =>
  execFileSync("git", ["-c", "safe.directory=*", "-c", "user.email=t@example.com", "-c", "user.name=t", ...args], {
    cwd,
    encoding: "utf8",
    env: { PATH: process.env["PATH"]!, HOME: cwd, GIT_CONFIG_NOSYSTEM: "1" }
  }).trim()

export interface TestRepository {
  /** The temp folder holding the repository (`<root>/project`). */
  readonly root: string
  readonly repo: string
  /** The commits: `first` (tagged `v1`), `second` (main's head), `feature` (the branch `feature`'s head). */
  readonly first: string
  readonly second: string
  readonly feature: string
}

/**
 * A repository `project` under a fresh folder: `main` (README.md, src/app.txt), a tag `v1` on the
 * first commit, a branch `feature` (feature.txt).
 */
export const makeRepository = (): TestRepository => {
  const root = tempDir("clawdforge-git-src-")
  const repo = join(root, "project")
  execFileSync("git", ["init", "-q", "-b", "main", repo])
  writeFileSync(join(repo, "README.md"), "# project\n")
  git(repo, "add", "README.md")
  git(repo, "commit", "-q", "-m", "first")
  const first = git(repo, "rev-parse", "HEAD")
  git(repo, "tag", "v1")
  mkdirSync(join(repo, "src"))
  writeFileSync(join(repo, "src", "app.txt"), "app\n")
  git(repo, "add", "src/app.txt")
  git(repo, "commit", "-q", "-m", "second")
  const second = git(repo, "rev-parse", "HEAD")
  git(repo, "checkout", "-q", "-b", "feature")
  writeFileSync(join(repo, "feature.txt"), "feature\n")
  git(repo, "add", "feature.txt")
  git(repo, "commit", "-q", "-m", "feature")
  const feature = git(repo, "rev-parse", "HEAD")
  git(repo, "checkout", "-q", "main")
  return { root, repo, first, second, feature }
}
