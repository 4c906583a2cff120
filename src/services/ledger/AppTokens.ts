import { SqlClient, SqlSchema } from "@effect/sql"
import { Effect, Option, Redacted, Schema } from "effect"
import { createHash, randomBytes } from "node:crypto"
import { AppName } from "../../domain/Ids.js"
import { DatabaseLive } from "./Database.js"
import { nowSeconds } from "./Ledger.js"

/** Tokens are kept and compared as SHA-256 digests: the ledger never holds a usable token. */
export const tokenDigest = (token: string): Buffer => createHash("sha256").update(token, "utf8").digest()

/** A new app token: `cf_` and 32 random bytes, base64url. */
const newToken = () => Redacted.make(`cf_${randomBytes(32).toString("base64url")}`)

/** An app as the admin sees it: never its token or hash. */
export class AppRecord extends Schema.Class<AppRecord>("AppRecord")({
  name: AppName,
  created_at: Schema.Int,
  revoked_at: Schema.NullOr(Schema.Int)
}) {}

export class AppExists extends Schema.TaggedError<AppExists>()("AppExists", { message: Schema.String }) {}
export class AppNotFound extends Schema.TaggedError<AppNotFound>()("AppNotFound", { message: Schema.String }) {}

/** Apps issued by the admin CLI, stored in the ledger's `apps` table. */
export class AppTokens extends Effect.Service<AppTokens>()("clawdforge/AppTokens", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    /**
     * Issues a token for a new app (or for a revoked one: that is how a token is rotated).
     * The token is returned once and only its digest is stored.
     */
    const add = Effect.fn("AppTokens.add")(
      function*(name: AppName) {
        const token = newToken()
        const hash = tokenDigest(Redacted.value(token)).toString("hex")
        const at = yield* nowSeconds
        // One statement: an active app with this name keeps its row and the insert yields nothing.
        const rows = yield* sql`
          INSERT INTO apps (name, token_hash, created_at, revoked_at) VALUES (${name}, ${hash}, ${at}, NULL)
          ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash, created_at = excluded.created_at,
            revoked_at = NULL
          WHERE apps.revoked_at IS NOT NULL
          RETURNING name`
        if (rows.length === 0) {
          return yield* new AppExists({ message: `App ${name} already exists; revoke it first to issue a new token` })
        }
        return { name, token, created_at: at } as const
      },
      Effect.catchTag("SqlError", Effect.die)
    )

    const list = Effect.fn("AppTokens.list")(
      function*() {
        return yield* SqlSchema.findAll({
          Request: Schema.Void,
          Result: AppRecord,
          execute: () => sql`SELECT name, created_at, revoked_at FROM apps ORDER BY name`
        })(undefined)
      },
      Effect.orDie
    )

    /**
     * Revokes an app's token; `alreadyRevoked` when it was revoked before. Its open sessions are
     * closed with it (audit `revoked`): every gateway node stops their agents within seconds
     * (`Sessions` watches the ledger for sessions closed under its live ones).
     */
    const revoke = Effect.fn("AppTokens.revoke")(
      function*(name: AppName) {
        const at = yield* nowSeconds
        const revoked = yield* sql`UPDATE apps SET revoked_at = ${at}
          WHERE name = ${name} AND revoked_at IS NULL RETURNING name`
        if (revoked.length > 0) {
          const closed = yield* sql<{ session_id: string }>`UPDATE sessions SET closed_at = ${at}
            WHERE app_name = ${name} AND closed_at IS NULL RETURNING session_id`
          if (closed.length > 0) {
            yield* sql`INSERT INTO session_events ${
              sql.insert(closed.map((row) => ({ session_id: row.session_id, at, event: "revoked" })))
            }`
          }
          return { alreadyRevoked: false, closedSessions: closed.map((row) => row.session_id) } as const
        }
        const exists = yield* sql`SELECT 1 FROM apps WHERE name = ${name}`
        if (exists.length > 0) return { alreadyRevoked: true, closedSessions: [] as ReadonlyArray<string> } as const
        return yield* new AppNotFound({
          message: `No app ${name} in the ledger (apps from CLAWDFORGE_APP_TOKENS are removed there)`
        })
      },
      sql.withTransaction,
      // Only the infrastructure error is a defect; AppNotFound is the caller's.
      Effect.catchTag("SqlError", Effect.die)
    )

    /** The active app whose token has this SHA-256 digest. */
    const lookup = Effect.fn("AppTokens.lookup")(
      function*(digest: Uint8Array) {
        const hash = Buffer.from(digest).toString("hex")
        const rows = yield* sql<{ name: string }>`
          SELECT name FROM apps WHERE token_hash = ${hash} AND revoked_at IS NULL`
        return Option.map(Option.fromNullable(rows[0]), (row) => AppName.make(row.name))
      },
      Effect.orDie
    )

    /** Every active token digest (hex) with its app: what `Auth` caches. */
    const activeDigests = Effect.fn("AppTokens.activeDigests")(
      function*() {
        const rows = yield* sql<{ name: string; token_hash: string }>`
          SELECT name, token_hash FROM apps WHERE revoked_at IS NULL`
        return new Map(rows.map((row) => [row.token_hash, AppName.make(row.name)])) as ReadonlyMap<string, AppName>
      },
      Effect.orDie
    )

    return { add, list, revoke, lookup, activeDigests } as const
  }),
  dependencies: [DatabaseLive]
}) {}
