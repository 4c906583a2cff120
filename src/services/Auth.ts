import { Effect, Redacted } from "effect"
import { createHash, timingSafeEqual } from "node:crypto"
import { Unauthorized } from "../domain/Errors.js"
import { AppName } from "../domain/Ids.js"
import { AppConfig } from "./AppConfig.js"

/** Tokens are compared as SHA-256 digests: equal length, so `timingSafeEqual` applies. */
export const tokenDigest = (token: string): Buffer => createHash("sha256").update(token, "utf8").digest()

export class Auth extends Effect.Service<Auth>()("clawdforge/Auth", {
  effect: Effect.gen(function*() {
    const { appTokens } = yield* AppConfig
    const known = appTokens.map(([app, token]) => ({ app: AppName.make(app), digest: tokenDigest(Redacted.value(token)) }))
    if (known.length === 0) {
      yield* Effect.logWarning("No app tokens configured (CLAWDFORGE_APP_TOKENS): every request will be refused")
    }

    const authenticate = Effect.fn("Auth.authenticate")(function*(token: Redacted.Redacted<string>) {
      const digest = tokenDigest(Redacted.value(token))
      let app: AppName | undefined
      // Visit every entry so the time taken does not say which one matched.
      for (const entry of known) {
        if (timingSafeEqual(entry.digest, digest)) app = entry.app
      }
      if (app === undefined || Redacted.value(token).length === 0) {
        return yield* new Unauthorized({ message: "Missing or unknown bearer token" })
      }
      return app
    })

    return { authenticate } as const
  }),
  dependencies: [AppConfig.Default]
}) {}
