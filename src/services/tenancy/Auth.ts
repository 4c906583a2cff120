import { Duration, Effect, Redacted } from "effect"
import { timingSafeEqual } from "node:crypto"
import { Unauthorized } from "../../domain/Errors.js"
import { AppName } from "../../domain/Ids.js"
import { AppConfig } from "../config/AppConfig.js"
import { AppTokens, tokenDigest } from "../ledger/AppTokens.js"
import { makeLedgerCopy } from "../ledger/LedgerCopy.js"
export { tokenDigest } from "../ledger/AppTokens.js"

/** How stale the ledger's tokens may be: a revoked token is refused at most this long after. */
export const ledgerTokensTtl = Duration.seconds(2)

export class Auth extends Effect.Service<Auth>()("clawdforge/Auth", {
  effect: Effect.gen(function*() {
    const { appTokens } = yield* AppConfig
    const apps = yield* AppTokens
    const known = appTokens.map(([app, token]) => ({ app: AppName.make(app), digest: tokenDigest(Redacted.value(token)) }))

    // The ledger's active tokens (a revoked one is refused within the TTL).
    const ledgerTokens = makeLedgerCopy({
      read: Effect.suspend(() => apps.activeDigests()),
      initial: new Map() as ReadonlyMap<string, AppName>,
      ttl: ledgerTokensTtl,
      what: "app tokens"
    }).get

    // By digest: what a throttled address is answered from, with no comparison per token.
    const knownByDigest = new Map(known.map((entry) => [entry.digest.toString("hex"), entry.app]))

    const short = appTokens.filter(([, token]) => Redacted.value(token).length < 16).map(([app]) => app)
    if (short.length > 0) {
      yield* Effect.logWarning(
        `CLAWDFORGE_APP_TOKENS: the tokens of ${short.join(", ")} are under 16 characters: easy to guess, replace them`
      )
    }

    if (known.length === 0 && (yield* ledgerTokens).size === 0) {
      yield* Effect.logWarning(
        "No app tokens (CLAWDFORGE_APP_TOKENS or `clawdforge apps add`): every request will be refused until one is added"
      )
    }

    // On every request's path: untraced, since a span's call-site capture costs more than the check.
    const authenticate = Effect.fnUntraced(function*(token: Redacted.Redacted<string>) {
      if (Redacted.value(token).length === 0) {
        return yield* new Unauthorized({ message: "Missing or unknown bearer token" })
      }
      const digest = tokenDigest(Redacted.value(token))
      let app: AppName | undefined
      // Visit every entry so the time taken does not say which one matched.
      for (const entry of known) {
        if (timingSafeEqual(entry.digest, digest)) app = entry.app
      }
      // A map lookup by digest leaks nothing useful: guessing a token from its hash's timing
      // would take a SHA-256 preimage.
      app ??= (yield* ledgerTokens).get(digest.toString("hex"))
      if (app === undefined) {
        return yield* new Unauthorized({ message: "Missing or unknown bearer token" })
      }
      return app
    })

    /**
     * The app of a token by its digest alone: a valid token passes, a wrong one costs two map
     * lookups. For an address already throttled for its wrong tokens.
     */
    const lookup = Effect.fnUntraced(function*(token: Redacted.Redacted<string>) {
      const digest = tokenDigest(Redacted.value(token)).toString("hex")
      const app = knownByDigest.get(digest) ?? (yield* ledgerTokens).get(digest)
      if (app === undefined) return yield* new Unauthorized({ message: "Missing or unknown bearer token" })
      return app
    })

    return { authenticate, lookup } as const
  }),
  dependencies: [AppConfig.Default, AppTokens.Default]
}) {}
