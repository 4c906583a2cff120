/**
 * Temp folders for a test file, removed when the file ends, whatever its tests did. The `afterAll`
 * below is registered once per test file (vitest loads the modules afresh for each file), before
 * any hook of a module that imports this one: vitest runs after-hooks in reverse, so the folders go
 * after the processes using them are stopped (`GatewayProcess.ts`) and the layers are closed.
 */
import { createHash } from "node:crypto"
import { type Dirent, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"

const made = new Set<string>()

/** The folders under `dir` (itself included), `depth` levels down. */
const foldersUnder = (dir: string, depth: number): Array<string> => {
  let entries: Array<Dirent> = []
  try {
    entries = readdirSync(dir, { withFileTypes: true })
  } catch {
    // gone, or not a folder
  }
  const below = depth === 0 ? [] : entries.filter((e) => e.isDirectory()).flatMap((e) => foldersUnder(join(dir, e.name), depth - 1))
  return [dir, ...below]
}

/**
 * acpx keeps its queue sockets in `/tmp/acpx-<sha256(HOME), 10 hex>` (always `/tmp`, whatever
 * TMPDIR says) for each HOME it runs with: those of HOMEs in this file's folders (an app's
 * `<workspaces>/<app>/.home`, a gateway's data folder) go with them.
 */
const removeAcpxSocketFolders = (dirs: Iterable<string>) => {
  if (!existsSync("/tmp") || !readdirSync("/tmp").some((name) => name.startsWith("acpx-"))) return
  for (const dir of dirs) {
    for (const home of foldersUnder(dir, 4)) {
      const sockets = join("/tmp", `acpx-${createHash("sha256").update(home).digest("hex").slice(0, 10)}`)
      if (existsSync(sockets)) rmSync(sockets, { recursive: true, force: true })
    }
  }
}

afterAll(() => {
  removeAcpxSocketFolders(made)
  for (const dir of made) rmSync(dir, { recursive: true, force: true, maxRetries: 5 })
  made.clear()
})

/** A new folder `<tmpdir>/<prefix>XXXXXX`, removed at the end of the test file. */
export const tempDir = (prefix: string) => {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  made.add(dir)
  return dir
}
