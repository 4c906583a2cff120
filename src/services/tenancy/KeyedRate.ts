/**
 * A rate kept per key (a client address, a token): `perSecond` events a second after a burst of
 * `burst`, by the generic cell rate algorithm, which keeps per key only when its next event is due
 * at the rate. A key that keeps to the rate is no entry at all, and the map keeps at most `maxKeys`
 * (past it the stalest is forgotten), so memory stays bounded whatever keys a flood brings.
 * Plain synchronous work, for a request's path; times in ms.
 */
export const makeKeyedRate = (options: { readonly perSecond: number; readonly burst: number; readonly maxKeys: number }) => {
  const spacing = 1000 / options.perSecond
  const tolerance = (options.burst - 1) * spacing
  const due = new Map<string, number>()

  const dueOf = (key: string, now: number) => {
    const at = due.get(key)
    if (at === undefined) return now
    if (at > now) return at
    due.delete(key)
    return now
  }

  /** How long an event of `key` at `now` would wait to keep to the rate; nothing is taken. */
  const waitOf = (key: string, now: number) => Math.max(0, dueOf(key, now) - tolerance - now)

  /**
   * Takes an event of `key` at `now`: how long it waits to keep to the rate, at most `maxWait`
   * (past it no later place is promised: the next waits as long).
   */
  const take = (key: string, now: number, maxWait = 0) => {
    const at = dueOf(key, now)
    if (!due.has(key) && due.size >= options.maxKeys) due.delete(due.keys().next().value!)
    due.set(key, Math.min(at, now + tolerance + maxWait) + spacing)
    return Math.min(maxWait, Math.max(0, at - tolerance - now))
  }

  return { waitOf, take } as const
}
