// Quota types and the store methods behind them (mixed into `HubStore`, see mod.ts): per-key
// spend caps (enforced by `reserve`, see _key_spend.ts) and idempotent balance top-ups.
import type { KeyCaps, KeySpend } from "./_key_spend.ts";

export type { KeyCaps, KeySpend, SpendPeriod } from "./_key_spend.ts";

/** A top-up to apply once (`topUp`). */
export interface NewTopUp {
  userId: string;
  /** Decimal USD string (see `parseUsd`); negative for a correction, as `creditUser`. */
  amount: string;
  /**
   * Chosen by the caller (1..128 chars of `[A-Za-z0-9._:-]`): a retry with the same key credits
   * nothing more. `null`: the store makes one up (no protection against retries).
   */
  idempotencyKey: string | null;
}

/** A top-up as booked. */
export interface TopUpRecord {
  /** The idempotency key (or the generated `cr_…` id). */
  id: string;
  userId: string;
  /** Canonical `formatUsd` form. */
  amount: string;
  /** The balance right after this top-up, canonical. */
  balanceAfter: string;
  createdAtMs: number;
  /** `true` when this call was a replay that changed nothing. */
  replayed: boolean;
}

export interface QuotaStore {
  /**
   * The key's caps and its spend per period as of `nowMs` (UTC day and month), with the sum of
   * its open holds; `null` for an unknown key.
   */
  keySpend(keyId: string, nowMs: number): Promise<KeySpend | null>;
  /**
   * Replaces a key's caps (each a decimal USD string ≥ 0 or `null`); `false` if the id is
   * unknown. `TypeError`/`RangeError` for a malformed cap (nothing changes). Spend so far is
   * kept: a new cap applies to it at once.
   */
  setKeyCaps(keyId: string, caps: KeyCaps): Promise<boolean>;
  /**
   * Adds `amount` to the user's balance once per idempotency key, in one transaction with its
   * journal row. A replay with the same user and amount returns the stored record
   * (`replayed: true`) and changes nothing; one with a different user or amount throws
   * `StoreConflictError` (`"idempotencyKey"`). Errors as `creditUser` (`TypeError`,
   * `RangeError`, `StoreNotFoundError`), writing nothing.
   */
  topUp(topUp: NewTopUp, nowMs: number): Promise<TopUpRecord>;
}
