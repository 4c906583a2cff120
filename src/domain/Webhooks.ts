import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import { Schema } from "effect"
import { errorFields } from "./Errors.js"
import { AppName, UnixSeconds } from "./Ids.js"

// An app's webhook as operators set it (`PUT /admin/apps/{name}/webhook`, `clawdforge apps webhook`).

export class WebhookUrlRefused extends Schema.TaggedError<WebhookUrlRefused>()(
  "WebhookUrlRefused",
  errorFields("webhook_url_refused"),
  HttpApiSchema.annotations({
    status: 400,
    description: "Not an absolute http(s) URL, or one that carries a user or password, or whose host is or resolves " +
      "to a loopback, private, link-local, shared, unspecified or multicast address (allowed with " +
      "CLAWDFORGE_WEBHOOK_ALLOW_PRIVATE=true)"
  })
) {}

export const SetWebhookRequest = Schema.Struct({
  url: Schema.String.pipe(Schema.maxLength(2048)).annotations({
    description: "Where the gateway POSTs the app's signed events: an absolute http:// or https:// URL"
  })
}).annotations({
  identifier: "SetWebhookRequest",
  parseOptions: { onExcessProperty: "error" },
  description: "The app's webhook URL"
})

const Ok = Schema.Literal(true)

export const SetWebhookReply = Schema.Struct({
  ok: Ok,
  app: AppName,
  url: Schema.String.annotations({ description: "The URL as stored (credentials, if any, masked)" }),
  secret: Schema.String.annotations({
    description: "The signing secret (`whsec_...`): shown this once. Each event carries " +
      "`Clawdforge-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + \".\" + body)>`"
  }),
  created_at: UnixSeconds
}).annotations({ identifier: "SetWebhookReply", description: "The webhook set, with its new signing secret" })

export const RemoveWebhookReply = Schema.Struct({
  ok: Ok,
  already_removed: Schema.optional(Schema.Literal(true))
}).annotations({ identifier: "RemoveWebhookReply", description: "Removed now, or `already_removed` (it had none)" })
