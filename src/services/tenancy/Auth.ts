import { Duration, Effect, Redacted, Ref } from "effect"
import { timingSafeEqual } from "node:crypto"
import { Unauthorized } from "../../domain/Errors.js"
import { AppName } from "../../domain/Ids.js"
import { AppConfig } from "../config/AppConfig.js"
import { AppTokens, tokenDigest } from "../ledger/AppTokens.js"

export { tokenDigest } from "../ledger/AppTokens.js"

/** How stale the ledger's tokens may be: a revoked token is refused at most this long after. */
export const ledgerTokensTtl = Duration.seconds(2)

export class Auth extends Effect.Service<Auth>()("clawdforge/Auth", {
  effect: Effect.gen(function*() {
    const { appTokens } = yield* AppConfig
    const apps = yield* AppTokens
    const known = appTokens.map(([app, token]) => ({ app: AppName.make(app), digest: tokenDigest(Redacted.value(token)) }))

    // The ledger's active tokens, read at most once per TTL by whichever request finds the
    // copy stale: no query per request, and nothing polls an idle (or TestClock) gateway.
    const lastGood = yield* Ref.make<ReadonlyMap<string, AppName>>(new Map())
    const ledgerTokens = yield* Effect.cachedWithTTL(
      apps.activeDigests().pipe(
        Effect.tap((tokens) => Ref.set(lastGood, tokens)),
        // A failed read keeps the last good copy rather than refusing every app.
        Effect.catchAllDefect((defect) =>
          Effect.zipRight(Effect.logWarning("Could not read app tokens from the ledger", defect), Ref.get(lastGood))
        ),
        // The cache would hand an interruption to every caller until the TTL ends.
        Effect.uninterruptible
      ),
      ledgerTokensTtl
    )

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

    return { authenticate } as const
  }),
  dependencies: [AppConfig.Default, AppTokens.Default]
}) {}
