import { constants } from "node:fs"
import type { FileHandle } from "node:fs/promises"

/**
 * How the workspace code reaches files without following a link: folders opened with
 * O_NOFOLLOW|O_DIRECTORY, files with O_NOFOLLOW, and what lies in an open folder named through its
 * descriptor (`/proc/self/fd/N/<name>`), never by a path that could be swapped under it.
 */
export const directoryFlags = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW
/** O_NONBLOCK: a FIFO an agent left in place of a file must not hang its reader on open. */
export const readFlags = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK

/** An open descriptor's path, or that of `name` in the open folder `fd`. */
export const fdPath = (fd: number, name?: string) => name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`

export const closeQuietly = (handle: FileHandle | undefined) => handle === undefined ? Promise.resolve() : handle.close().catch(() => {})
