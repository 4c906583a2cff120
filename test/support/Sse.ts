/** Server-sent events as the tests read them: a streamed turn's `{event, data}` records. */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { Effect } from "effect"
import { appToken } from "./TestGateway.js"

/** Parses a `text/event-stream` body into `{event, data}` records. */
export const parseSse = (text: string) =>
  text.split("\n\n").filter((block) => block.trim().length > 0).map((block) => {
    const lines = block.split("\n")
    const event = lines.find((l) => l.startsWith("event: "))!.slice("event: ".length)
    const data = JSON.parse(lines.filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n"))
    return { event, data }
  })

/** `POST /sessions/{sid}/turn/stream` as the app: its status, content type and events. */
export const streamTurn = (sid: string, prompt: string) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.execute(
      HttpClientRequest.post(`/sessions/${sid}/turn/stream`).pipe(
        HttpClientRequest.bearerToken(appToken),
        HttpClientRequest.bodyUnsafeJson({ prompt })
      )
    )
    return { status: response.status, type: response.headers["content-type"], events: parseSse(yield* response.text) }
  }).pipe(Effect.scoped)
