import { Schema } from "effect"

// One change of a session's workspace, as turns carry it: a leaf (no other domain module), so that
// the turn and session schemas can hold it (the `changes` routes are in WorkspaceChanges.ts).

/** The largest file whose change comes with a unified `diff` (either side). */
export const maxDiffBytes = 1024 * 1024

/** The changes a stored turn keeps at most (by path); `GET /sessions/{id}/changes` lists them all. */
export const maxTurnChanges = 1000

/** One file a turn (or the time since a turn) added, modified or deleted. */
export const WorkspaceChange = Schema.Struct({
  path: Schema.String.annotations({ description: "Relative to the workspace root, `/`-separated" }),
  status: Schema.Literal("added", "modified", "deleted"),
  size: Schema.Int.annotations({
    description: "Its size in bytes: as it is now (added, modified), as it was (deleted)"
  })
}).annotations({
  identifier: "WorkspaceChange",
  description: "A file of the workspace that changed (`.git` and `.home` are left out; a symlink counts as a " +
    "file holding its target)"
})
export type WorkspaceChange = typeof WorkspaceChange.Type

/** The `changes` of a stored turn, its `done` event and its webhook. */
export const TurnChanges = Schema.Array(WorkspaceChange).annotations({
  description: `What the turn did to the workspace while it ran, by path (at most ${maxTurnChanges}; ` +
    "`GET /sessions/{id}/changes?since_turn=` lists every one); uploads between turns are no turn's"
})
