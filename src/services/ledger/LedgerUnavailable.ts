import { Data } from "effect"

/** The ledger could not be opened or migrated; the message never holds the password. */
export class LedgerUnavailable extends Data.TaggedError("LedgerUnavailable")<{ readonly message: string }> {}
