import type { TurnUsage } from "../../domain/Turn.js"

/** A cost in US dollars without the float noise of a subtraction (0.3 - 0.1). */
const dollars = (amount: number) => Math.round(amount * 1e10) / 1e10

const count = (value: unknown) => typeof value === "number" && Number.isFinite(value) ? Math.round(value) : null

/**
 * What one agent session's turns use. Tokens come from the prompt response's `usage` (that
 * turn's own); cost from `usage_update` notifications, whose `cost.amount` is the session's
 * running total: a turn cost what the total grew by while it ran.
 */
export class UsageMeter {
  /** The session's running cost as the agent last reported it. */
  private total: number | undefined = undefined
  private atStart: number | undefined = undefined
  private reported = false

  /** Every `session/update` of the agent (between turns as well: a load may replay the total). */
  observe(update: { readonly sessionUpdate?: unknown; readonly cost?: { readonly amount?: unknown } | null }) {
    if (update.sessionUpdate !== "usage_update" || typeof update.cost?.amount !== "number") return
    this.total = update.cost.amount
    this.reported = true
  }

  /** A turn starts. */
  start() {
    this.atStart = this.total
    this.reported = false
  }

  /** The turn's usage, from its prompt response's `result`. */
  end(result: unknown): TurnUsage {
    const usage = (result as { usage?: Record<string, unknown> | null } | undefined)?.usage ?? undefined
    const input = count(usage?.["inputTokens"])
    const output = count(usage?.["outputTokens"])
    const total = count(usage?.["totalTokens"]) ?? (input !== null && output !== null ? input + output : null)
    const cost = this.reported && this.total !== undefined ? dollars(Math.max(0, this.total - (this.atStart ?? 0))) : null
    return { input_tokens: input, output_tokens: output, total_tokens: total, cost_usd: cost }
  }
}

export const noUsage: TurnUsage = { input_tokens: null, output_tokens: null, total_tokens: null, cost_usd: null }
