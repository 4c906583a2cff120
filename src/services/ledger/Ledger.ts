import { SqlClient, SqlSchema, type Statement } from "@effect/sql"
import { Chunk, Clock, Effect, Option, Schema, Stream } from "effect"
import type { AppName, SessionId } from "../../domain/Ids.js"
import { type AcpMessage, ConfigOption, Meta, type SessionStatus, Session } from "../../domain/Session.js"
import { type TurnStatus, TurnSummary, type TurnUsage } from "../../domain/Turn.js"
import type { WorkspaceChange } from "../../domain/WorkspaceChange.js"
import { DatabaseLive } from "./Database.js"
import { lastActivity } from "./SqlDialect.js"

/** What the audit trail records; `detail` is free-form JSON. */
export type SessionEventKind =
  | "create"
  | "turn"
  | "turn_failed"
  | "close"
  | "sweep_close"
  | "agent_exit"
  | "agent_start"
  | "turn_interrupted"
  | "permission_request"
  | "permission_answer"
  | "revoked"
  | "hibernated"
  | "resumed"

export class SessionEvent extends Schema.Class<SessionEvent>("SessionEvent")({
  id: Schema.Int,
  session_id: Schema.String,
  at: Schema.Int,
  event: Schema.String,
  detail: Schema.NullOr(Schema.parseJson(Schema.Unknown))
}) {}

// Rows are decoded once, here; building the Session from them skips a second validation.
// `live` is no column: the session's gateway says it.
const { live: _live, ...storedSessionFields } = Session.fields
const SessionRow = Schema.Struct({
  ...storedSessionFields,
  meta: Schema.parseJson(Meta),
  config_options: Schema.parseJson(Schema.Array(ConfigOption))
})

/** A session's settings as its agent last reported them. */
export interface StoredSettings {
  readonly model: string | null
  readonly mode: string | null
  readonly config_options: ReadonlyArray<ConfigOption>
}

/** How a turn ended, as its end write records it. */
export interface StoredTurnEnd {
  readonly status: Exclude<TurnStatus, "queued" | "running">
  readonly startedAt: number | null
  readonly endedAt: number
  readonly durationMs: number | null
  readonly stopReason: string | null
  readonly usage: TurnUsage
  readonly error: { readonly error: string; readonly message: string } | null
  /** The stored messages, each as its JSON text: at most CLAWDFORGE_TURN_MAX_STORED_MB of them. */
  readonly eventTexts: ReadonlyArray<string>
  /** Whether the turn had more messages than `eventTexts` keeps. */
  readonly truncated: boolean
  /** What it did to the workspace (see `WorkspaceChanges`); null when that could not be seen. */
  readonly changes?: ReadonlyArray<WorkspaceChange> | null | undefined
}

/**
 * The most a turn keeps in its own row (`turns.events`), and the size of each page of a bigger
 * one (`turn_event_pages`): a page of a big turn is read without reading the rest of it.
 */
export const eventPageBytes = 256 * 1024

/** A page of a stored turn's messages: those after `after` (0: from the first), at most `limit`. */
export interface EventsPage {
  readonly after: number
  readonly limit: number
}

/** A stored turn's row (`events` only when asked for). */
interface TurnRow {
  readonly session_id: string
  readonly turn_index: number
  readonly prompt: string
  readonly files: string | null
  readonly status: TurnStatus
  readonly accepted_at: number
  readonly started_at: number | null
  readonly ended_at: number | null
  readonly duration_ms: number | null
  readonly stop_reason: string | null
  readonly input_tokens: number | null
  readonly output_tokens: number | null
  readonly total_tokens: number | null
  readonly cost_usd: number | null
  readonly error: string | null
  readonly error_message: string | null
  readonly truncated: unknown
  readonly changes?: string | null
  readonly event_count?: unknown
  readonly events?: string | null
}

// Rows are the ledger's own writes: built into the domain class without a second validation.
const turnOfRow = (row: TurnRow) =>
  new TurnSummary({
    session_id: row.session_id as SessionId,
    turn_index: row.turn_index,
    status: row.status,
    prompt: row.prompt,
    files: row.files === null ? [] : JSON.parse(row.files),
    accepted_at: row.accepted_at,
    started_at: row.started_at,
    ended_at: row.ended_at,
    duration_ms: row.duration_ms,
    stop_reason: row.stop_reason,
    usage: {
      input_tokens: row.input_tokens,
      output_tokens: row.output_tokens,
      total_tokens: row.total_tokens,
      cost_usd: row.cost_usd
    },
    error: row.error === null ? null : { error: row.error, message: row.error_message ?? "" },
    // PostgreSQL reads BIGINT as a string.
    truncated: Number(row.truncated) === 1,
    changes: row.changes === null || row.changes === undefined ? null : JSON.parse(row.changes)
  }, true)

/** A stored turn with its messages (a page of them, when a page was asked for). */
export interface StoredTurn {
  readonly turn: TurnSummary
  readonly events: ReadonlyArray<AcpMessage>
  /** How many messages the turn has stored. */
  readonly total: number
}

/**
 * A stored turn without its messages, and how many it keeps: what a reader needs before it reads
 * them a page at a time (`turnEventPages`).
 */
export interface StoredTurnHead {
  readonly turn: TurnSummary
  readonly total: number
  /** Its messages as stored, when the turn keeps them in its own row (one page at most); else in pages. */
  readonly inline: StoredEventsPage | undefined
}

/**
 * One stored page of a turn's messages, as stored: a JSON array's text (each message as the
 * gateway serialized it, joined by commas) whose first message is the turn's message `first`
 * (seq counts from 1).
 */
export interface StoredEventsPage {
  readonly first: number
  readonly json: string
}

/**
 * The texts of a stored page's messages after message `after` (all of them for 0), each exactly as
 * stored. Split at the array's top-level commas rather than parsed: a page is the gateway's own
 * compact JSON (see `pagesOf`), and a reader of a big turn then pays one scan of it instead of a
 * parse and a serialization per message (about 2.5 times less CPU).
 */
export const pageMessageTexts = (page: StoredEventsPage, after = 0): Array<string> => {
  const { json } = page
  const skip = Math.max(0, after - page.first + 1)
  const texts: Array<string> = []
  const end = json.length - 1
  if (end <= 1) return texts
  let seen = 0
  let start = 1
  let depth = 0
  let inString = false
  for (let i = 1; i < end; i++) {
    const c = json.charCodeAt(i)
    if (inString) {
      if (c === 92) i++ // a backslash: the next character is escaped
      else if (c === 34) inString = false
    } else if (c === 34) inString = true
    else if (c === 123 || c === 91) depth++
    else if (c === 125 || c === 93) depth--
    else if (c === 44 && depth === 0) {
      if (seen++ >= skip) texts.push(json.slice(start, i))
      start = i + 1
    }
  }
  if (seen >= skip) texts.push(json.slice(start, end))
  return texts
}

/** What a turn that a dead gateway left unfinished reads as. */
export const interruptedFailure = {
  error: "turn_interrupted",
  message: "The gateway stopped while the turn was queued or running: its outcome is unknown"
} as const

/** A big turn's messages as pages of about `eventPageBytes` each, as `turn_event_pages` rows. */
const pagesOf = (sessionId: SessionId, turnIndex: number, texts: ReadonlyArray<string>) => {
  const pages: Array<{ session_id: string; turn_index: number; first_seq: number; last_seq: number; events: string }> = []
  let start = 0
  while (start < texts.length) {
    let bytes = 0
    let stop = start
    while (stop < texts.length && (stop === start || bytes + texts[stop]!.length + 1 <= eventPageBytes)) {
      bytes += texts[stop]!.length + 1
      stop++
    }
    pages.push({
      session_id: sessionId,
      turn_index: turnIndex,
      first_seq: start + 1,
      last_seq: stop,
      events: `[${texts.slice(start, stop).join(",")}]`
    })
    start = stop
  }
  return pages
}

/** Integer Unix seconds from the Effect clock, so tests can drive time with `TestClock`. */
export const nowSeconds = Effect.map(Clock.currentTimeMillis, (ms) => Math.floor(ms / 1000))

export class Ledger extends Effect.Service<Ledger>()("clawdforge/Ledger", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const columns = sql`
      session_id, app_name, agent, meta, cwd, permission_mode, created_at, last_turn_at, closed_at, turn_count,
      model, mode, config_options,
      CASE WHEN closed_at IS NULL THEN 'open' ELSE 'closed' END AS status`

    const appendEvent = (sessionId: string, event: SessionEventKind, at: number, detail?: unknown) =>
      sql`INSERT INTO session_events ${
        sql.insert({ session_id: sessionId, at, event, detail: detail === undefined ? null : JSON.stringify(detail) })
      }`

    const findById = SqlSchema.findOne({
      Request: Schema.String,
      Result: SessionRow,
      execute: (id) => sql`SELECT ${columns} FROM sessions WHERE session_id = ${id}`
    })

    const createSession = Effect.fn("Ledger.createSession")(
      function*(session: Session, agentSessionId: string | null) {
        yield* sql`INSERT INTO sessions ${
          sql.insert({
            session_id: session.session_id,
            app_name: session.app_name,
            agent: session.agent,
            meta: JSON.stringify(session.meta),
            cwd: session.cwd,
            permission_mode: session.permission_mode,
            agent_session_id: agentSessionId,
            created_at: session.created_at,
            turn_count: 0,
            model: session.model,
            mode: session.mode,
            config_options: JSON.stringify(session.config_options)
          })
        }`
        yield* appendEvent(session.session_id, "create", session.created_at, { agent: session.agent })
      },
      sql.withTransaction,
      Effect.orDie
    )

    /** The session if it exists and belongs to `app`: another app's session does not exist. */
    const getSession = Effect.fn("Ledger.getSession")(
      function*(app: AppName, id: string) {
        const row = yield* findById(id)
        return Option.filter(row, (r) => r.app_name === app).pipe(Option.map((r) => new Session(r, true)))
      },
      Effect.orDie
    )

    /** Any app's session: for the runtime and the sweeper, never for a caller. */
    const findSession = Effect.fn("Ledger.findSession")(
      function*(id: string) {
        return Option.map(yield* findById(id), (r) => new Session(r, true))
      },
      Effect.orDie
    )

    const listSessions = Effect.fn("Ledger.listSessions")(
      function*(app: AppName, options: { readonly status?: SessionStatus | undefined; readonly limit: number }) {
        const status = options.status === undefined
          ? sql``
          : options.status === "open"
          ? sql`AND closed_at IS NULL`
          : sql`AND closed_at IS NOT NULL`
        const rows = yield* SqlSchema.findAll({
          Request: Schema.Void,
          Result: SessionRow,
          execute: () =>
            sql`SELECT ${columns} FROM sessions WHERE app_name = ${app} ${status}
                ORDER BY created_at DESC, rowid DESC LIMIT ${options.limit}`
        })(undefined)
        return rows.map((r) => new Session(r, true))
      },
      Effect.orDie
    )

    const agentSessionId = Effect.fn("Ledger.agentSessionId")(
      function*(id: SessionId) {
        const rows = yield* sql<{ agent_session_id: string | null }>`
          SELECT agent_session_id FROM sessions WHERE session_id = ${id}`
        return Option.fromNullable(rows[0]?.agent_session_id)
      },
      Effect.orDie
    )

    const setAgentSessionId = Effect.fn("Ledger.setAgentSessionId")(
      function*(id: SessionId, agentSessionId: string) {
        yield* sql`UPDATE sessions SET agent_session_id = ${agentSessionId} WHERE session_id = ${id}`
      },
      Effect.orDie
    )

    const setSettings = Effect.fn("Ledger.setSettings")(
      function*(id: SessionId, settings: StoredSettings) {
        yield* sql`UPDATE sessions SET model = ${settings.model}, mode = ${settings.mode},
          config_options = ${JSON.stringify(settings.config_options)} WHERE session_id = ${id}`
      },
      Effect.orDie
    )

    // Two turns accepted at once take the next index one after the other (SQLite has one writer).
    const lockSession = sql.onDialectOrElse({ pg: () => sql`FOR UPDATE`, orElse: () => sql`` })

    const turnColumns = sql`
      session_id, turn_index, prompt, files, status, accepted_at, started_at, ended_at, duration_ms, stop_reason,
      input_tokens, output_tokens, total_tokens, cost_usd, error, error_message, truncated, changes`

    /**
     * Accepts a turn of an open session: one statement stores it (`queued`) with the next index,
     * and counts it on the session (trigger). None when the session is closed (or gone).
     */
    // On every turn's path: no `Effect.fn` (see `spanWhenTraced`).
    const acceptTurn = Effect.fnUntraced(
      function*(id: SessionId, turn: { readonly prompt: string; readonly files: ReadonlyArray<string>; readonly at: number }) {
        const files = turn.files.length === 0 ? null : JSON.stringify(turn.files)
        const rows = yield* sql<{ turn_index: number }>`
          INSERT INTO turns (session_id, turn_index, prompt, files, status, accepted_at)
          SELECT session_id, turn_count + 1, ${turn.prompt}, ${files}, 'queued', CAST(${turn.at} AS BIGINT)
          FROM sessions WHERE session_id = ${id} AND closed_at IS NULL ${lockSession}
          RETURNING turn_index`
        return Option.fromNullable(rows[0]?.turn_index)
      },
      Effect.orDie
    )

    /**
     * A turn's end, in one statement: its status, timing, stop reason, error and messages; a turn
     * the agent answered also sets the session's last turn and writes its `turn` event (trigger).
     */
    // On every turn's path: no `Effect.fn` (see `spanWhenTraced`). A turn of one page is one
    // statement; a bigger one writes its pages first, in the same transaction.
    const endTurn = Effect.fnUntraced(
      function*(id: SessionId, turnIndex: number, end: StoredTurnEnd) {
        const texts = end.eventTexts
        let bytes = 0
        for (const text of texts) bytes += text.length + 1
        const pages = bytes <= eventPageBytes ? undefined : pagesOf(id, turnIndex, texts)
        const update = sql`UPDATE turns SET status = ${end.status}, started_at = ${end.startedAt},
            ended_at = ${end.endedAt}, duration_ms = ${end.durationMs}, stop_reason = ${end.stopReason},
            input_tokens = ${end.usage.input_tokens}, output_tokens = ${end.usage.output_tokens},
            total_tokens = ${end.usage.total_tokens}, cost_usd = ${end.usage.cost_usd}, error = ${end.error?.error ?? null},
            error_message = ${end.error?.message ?? null}, events = ${pages === undefined ? `[${texts.join(",")}]` : null},
            event_count = ${texts.length}, truncated = ${end.truncated ? 1 : 0}, stored_bytes = ${bytes} + length(prompt),
            changes = ${end.changes === undefined || end.changes === null ? null : JSON.stringify(end.changes)}
          WHERE session_id = ${id} AND turn_index = ${turnIndex}`
        if (pages === undefined) yield* update
        else yield* sql.withTransaction(Effect.zipRight(sql`INSERT INTO turn_event_pages ${sql.insert(pages)}`, update))
        // What it takes now (its prompt was stored when it was accepted).
        return bytes
      },
      Effect.orDie
    )


    /** The app's session's turns after `after`, oldest first, without their messages. */
    const listTurns = Effect.fn("Ledger.listTurns")(
      function*(id: SessionId, options: { readonly after: number; readonly limit: number }) {
        const rows = yield* sql<TurnRow>`SELECT ${turnColumns} FROM turns
          WHERE session_id = ${id} AND turn_index > ${options.after} ORDER BY turn_index LIMIT ${options.limit}`
        return rows.map(turnOfRow)
      },
      Effect.orDie
    )

    /**
     * One of the app's turns with its messages (those of `page` only, when given): one primary-key
     * lookup (none for another app's), and for a turn kept in pages, the pages that hold `page`.
     */
    const getTurn = Effect.fn("Ledger.getTurn")(
      function*(app: AppName, id: string, turnIndex: number, page?: EventsPage) {
        const rows = yield* sql<TurnRow>`SELECT ${turnColumns}, event_count, events FROM turns
          WHERE session_id = ${id} AND turn_index = ${turnIndex}
            AND EXISTS (SELECT 1 FROM sessions s WHERE s.session_id = turns.session_id AND s.app_name = ${app})`
        const row = rows[0]
        if (row === undefined) return Option.none<StoredTurn>()
        const turn = turnOfRow(row)
        const after = page?.after ?? 0
        const end = page === undefined ? Number.MAX_SAFE_INTEGER : after + page.limit
        if (row.events !== null && row.events !== undefined) {
          const events: ReadonlyArray<AcpMessage> = JSON.parse(row.events)
          return Option.some<StoredTurn>({ turn, events: page === undefined ? events : events.slice(after, end), total: events.length })
        }
        if (row.event_count === null || row.event_count === undefined) return Option.some<StoredTurn>({ turn, events: [], total: 0 })
        const total = Number(row.event_count)
        const pages = yield* sql<{ first_seq: unknown; events: string }>`SELECT first_seq, events FROM turn_event_pages
          WHERE session_id = ${id} AND turn_index = ${turnIndex} AND last_seq > ${after} AND first_seq <= ${end}
          ORDER BY first_seq`
        const events: Array<AcpMessage> = []
        for (const stored of pages) {
          const first = Number(stored.first_seq)
          const messages: ReadonlyArray<AcpMessage> = JSON.parse(stored.events)
          // Message i of the page is the turn's message first + i (seq counts from 1).
          for (let i = Math.max(0, after - first + 1); i < messages.length && first + i <= end; i++) events.push(messages[i]!)
        }
        return Option.some<StoredTurn>({ turn, events, total })
      },
      Effect.orDie
    )

    /**
     * One of the app's turns with how many messages it keeps (none for another app's turn): its row
     * only, with its messages when the row keeps them (a turn of one page), never its pages (a turn
     * stored before `event_count` was kept is counted from its own row).
     */
    const getTurnHead = Effect.fn("Ledger.getTurnHead")(
      function*(app: AppName, id: string, turnIndex: number) {
        const rows = yield* sql<TurnRow>`SELECT ${turnColumns}, event_count, events FROM turns
          WHERE session_id = ${id} AND turn_index = ${turnIndex}
            AND EXISTS (SELECT 1 FROM sessions s WHERE s.session_id = turns.session_id AND s.app_name = ${app})`
        const row = rows[0]
        if (row === undefined) return Option.none<StoredTurnHead>()
        const total = row.event_count !== null && row.event_count !== undefined
          ? Number(row.event_count)
          : row.events === null || row.events === undefined
          ? 0
          : (JSON.parse(row.events) as ReadonlyArray<unknown>).length
        const inline = row.events === null || row.events === undefined ? undefined : { first: 1, json: row.events }
        return Option.some<StoredTurnHead>({ turn: turnOfRow(row), total, inline })
      },
      Effect.orDie
    )

    /** The first stored page of a big turn that holds a message after `after`. */
    const pageAfter = (id: SessionId, turnIndex: number, after: number) =>
      Effect.map(
        sql<{ first_seq: unknown; last_seq: unknown; events: string }>`SELECT first_seq, last_seq, events
          FROM turn_event_pages WHERE session_id = ${id} AND turn_index = ${turnIndex} AND last_seq > ${after}
          ORDER BY first_seq LIMIT 1`,
        (rows) => Option.fromNullable(rows[0])
      )

    /**
     * A big turn's stored pages from the one holding message `after + 1` (at most about
     * `eventPageBytes` each): each page is read when the reader pulls it, so a reader holds one
     * page, never the whole turn. The caller owns the turn (`getTurnHead` said so, and that its
     * messages are not in its row); a turn that is not over has no pages.
     */
    const turnEventPages = (id: SessionId, turnIndex: number, after: number): Stream.Stream<StoredEventsPage> =>
      Stream.paginateChunkEffect(
        after,
        (cursor) =>
          Effect.gen(function*() {
            const page = yield* pageAfter(id, turnIndex, cursor)
            if (Option.isNone(page)) return [Chunk.empty<StoredEventsPage>(), Option.none()] as const
            const { events, first_seq, last_seq } = page.value
            return [Chunk.of<StoredEventsPage>({ first: Number(first_seq), json: events }), Option.some(Number(last_seq))] as const
          }).pipe(Effect.withSpan("Ledger.turnEventPage"), Effect.orDie)
      )

    /**
     * At start-up: turns that a gateway which died left queued or running are `interrupted`, each
     * with a `turn_interrupted` audit event, in one statement; returns how many. Only those of
     * `session` when given, and only those accepted before `acceptedBefore` (Unix seconds) when given.
     */
    const interruptUnfinished = Effect.fn("Ledger.interruptUnfinished")(
      function*(at: number, session?: SessionId, acceptedBefore?: number) {
        // Their `turn_interrupted` audit events are written by a trigger, in the same statement.
        const rows = yield* sql`UPDATE turns SET status = 'interrupted', ended_at = ${at},
            error = ${interruptedFailure.error}, error_message = ${interruptedFailure.message}, events = coalesce(events, '[]')
          WHERE status IN ('queued', 'running') AND ${session === undefined ? sql.literal("TRUE") : sql`session_id = ${session}`}
            AND ${acceptedBefore === undefined ? sql.literal("TRUE") : sql`accepted_at < ${acceptedBefore}`}
          RETURNING turn_index`
        return rows.length
      },
      Effect.orDie
    )

    /** The sessions with turns still queued or running (in a cluster: maybe left so by a node that died). */
    const sessionsWithUnfinishedTurns = Effect.fn("Ledger.sessionsWithUnfinishedTurns")(
      function*() {
        const rows = yield* sql<{ session_id: SessionId }>`
          SELECT DISTINCT session_id FROM turns WHERE status IN ('queued', 'running')`
        return rows.map((row) => row.session_id)
      },
      Effect.orDie
    )

    const recordEvent = Effect.fn("Ledger.recordEvent")(
      function*(id: SessionId, event: SessionEventKind, detail?: unknown) {
        yield* appendEvent(id, event, yield* nowSeconds, detail)
      },
      Effect.orDie
    )

    /** Closes an open session (event `close`); false when it was closed already. */
    const closeSession = Effect.fn("Ledger.closeSession")(
      function*(id: SessionId, at: number) {
        const rows = yield* sql`UPDATE sessions SET closed_at = ${at}
          WHERE session_id = ${id} AND closed_at IS NULL RETURNING session_id`
        if (rows.length === 0) return false
        yield* appendEvent(id, "close", at)
        return true
      },
      sql.withTransaction,
      Effect.orDie
    )

    /**
     * Closes every open session whose last activity is older than `cutoff`, with a
     * `sweep_close` event each, in one transaction; returns their ids.
     */
    const closeIdleBefore = Effect.fn("Ledger.closeIdleBefore")(
      function*(cutoff: number, at: number) {
        // The rows closed here, and only they, get the event: a concurrent sweep (another
        // connection, on PostgreSQL) waits for these rows and then finds them closed.
        const rows = yield* sql<{ session_id: SessionId }>`
          UPDATE sessions SET closed_at = ${at}
          WHERE closed_at IS NULL AND ${lastActivity(sql)} < ${cutoff} RETURNING session_id`
        if (rows.length > 0) {
          yield* sql`INSERT INTO session_events ${
            sql.insert(rows.map((r) => ({ session_id: r.session_id, at, event: "sweep_close" })))
          }`
        }
        return rows.map((r) => r.session_id)
      },
      sql.withTransaction,
      Effect.orDie
    )

    /** Which of `ids` are closed in the ledger (by the admin CLI, say): their actors should not be running. */
    const closedAmong = Effect.fn("Ledger.closedAmong")(
      function*(ids: ReadonlyArray<SessionId>) {
        if (ids.length === 0) return []
        // Closed rows only: a session whose create has not committed yet has no row, and is not closed.
        const closed = yield* sql<{ session_id: SessionId }>`
          SELECT session_id FROM sessions WHERE closed_at IS NOT NULL AND session_id IN ${sql.in(ids)}`
        return closed.map((r) => r.session_id)
      },
      Effect.orDie
    )

    /**
     * Deletes sessions closed before `cutoff`, with their events and turns, and `/run` jobs that
     * started before it; returns the sessions deleted. What they used is added to `usage_history`
     * first, by the hour.
     */
    const deleteClosedBefore = Effect.fn("Ledger.deleteClosedBefore")(
      function*(cutoff: number) {
        // (SQLite needs the WHERE of an INSERT ... SELECT ... ON CONFLICT: it has one.)
        const keep = (select: Statement.Fragment) =>
          sql`INSERT INTO usage_history (app_name, agent, hour, turns, sessions, runs, input_tokens, output_tokens, cost_usd)
            ${select}
            ON CONFLICT (app_name, agent, hour) DO UPDATE SET turns = usage_history.turns + excluded.turns,
              sessions = usage_history.sessions + excluded.sessions, runs = usage_history.runs + excluded.runs,
              input_tokens = usage_history.input_tokens + excluded.input_tokens,
              output_tokens = usage_history.output_tokens + excluded.output_tokens,
              cost_usd = usage_history.cost_usd + excluded.cost_usd`
        yield* keep(sql`SELECT s.app_name, s.agent, t.ended_at / 3600 * 3600, COUNT(*), 0, 0,
            COALESCE(SUM(t.input_tokens), 0), COALESCE(SUM(t.output_tokens), 0), COALESCE(SUM(t.cost_usd), 0)
          FROM turns t JOIN sessions s ON s.session_id = t.session_id
          WHERE s.closed_at IS NOT NULL AND s.closed_at < ${cutoff} AND t.ended_at IS NOT NULL
          GROUP BY s.app_name, s.agent, t.ended_at / 3600`)
        yield* keep(sql`SELECT app_name, agent, created_at / 3600 * 3600, 0, COUNT(*), 0, 0, 0, 0
          FROM sessions WHERE closed_at IS NOT NULL AND closed_at < ${cutoff}
          GROUP BY app_name, agent, created_at / 3600`)
        yield* keep(sql`SELECT app_name, agent, at / 3600 * 3600, 0, 0, COUNT(*),
            COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cost_usd), 0)
          FROM runs WHERE at < ${cutoff} GROUP BY app_name, agent, at / 3600`)
        yield* sql`DELETE FROM runs WHERE at < ${cutoff}`
        yield* sql`DELETE FROM session_events WHERE session_id IN (
          SELECT session_id FROM sessions WHERE closed_at IS NOT NULL AND closed_at < ${cutoff})`
        yield* sql`DELETE FROM turn_event_pages WHERE session_id IN (
          SELECT session_id FROM sessions WHERE closed_at IS NOT NULL AND closed_at < ${cutoff})`
        yield* sql`DELETE FROM turns WHERE session_id IN (
          SELECT session_id FROM sessions WHERE closed_at IS NOT NULL AND closed_at < ${cutoff})`
        const rows = yield* sql<{ session_id: SessionId; app_name: AppName; cwd: string }>`
          DELETE FROM sessions WHERE closed_at IS NOT NULL AND closed_at < ${cutoff}
          RETURNING session_id, app_name, cwd`
        return rows
      },
      sql.withTransaction,
      Effect.orDie
    )

    const sessionEvents = Effect.fn("Ledger.sessionEvents")(
      function*(id: string) {
        return yield* SqlSchema.findAll({
          Request: Schema.String,
          Result: SessionEvent,
          execute: (sid) => sql`SELECT id, session_id, at, event, detail FROM session_events
            WHERE session_id = ${sid} ORDER BY id`
        })(id)
      },
      Effect.orDie
    )

    return {
      createSession,
      setSettings,
      getSession,
      findSession,
      listSessions,
      agentSessionId,
      setAgentSessionId,
      acceptTurn,
      endTurn,
      listTurns,
      getTurn,
      getTurnHead,
      turnEventPages,
      interruptUnfinished,
      sessionsWithUnfinishedTurns,
      recordEvent,
      closeSession,
      closeIdleBefore,
      closedAmong,
      deleteClosedBefore,
      sessionEvents
    } as const
  }),
  dependencies: [DatabaseLive]
}) {}
