// Billing types and the store methods behind them (mixed into `HubStore`, see mod.ts).
import type { ChainHead, EntryFields, LedgerEntry } from "../../protocol/chain.ts";
import type { Money } from "../../protocol/money.ts";

export type ReservationStatus = "held" | "settled" | "released";

/** A hold to place on a user's balance (`reserve`). */
export interface NewReservation {
  /** Chosen by the caller (1..128 chars); the idempotency key of `reserve`. */
  reservationId: string;
  userId: string;
  /** Picodollars, 0 … `USD_MAX`. */
  amount: Money;
  /** When a sweeper may release it (`releaseExpired`); settling later is still allowed. */
  expiresAtMs: number;
  /**
   * The virtual key the request came with: the hold then also counts against the key's spend
   * caps (budget, daily, monthly; see `_key_spend.ts`), checked in the same transaction.
   */
  keyId?: string;
}

export interface ReservationRecord {
  id: string;
  userId: string;
  /** Canonical `formatUsd` form. */
  amount: string;
  status: ReservationStatus;
  createdAtMs: number;
  expiresAtMs: number;
  /** When it was settled (the entry's `settledAtMs`) or released; `null` while held. */
  closedAtMs: number | null;
  /** The request that settled it. */
  requestId: string | null;
}

/** What `settle` books for one finished request. */
export interface Settlement {
  reservationId: string;
  /** The agent's ledger entry without seq/prevHash/hash (the store chains it). */
  entry: EntryFields;
  /** Must equal `parseUsd(entry.userCharge)`. */
  userCharge: Money;
  /** Must equal `parseUsd(entry.agentPayout)`. */
  agentPayout: Money;
}

/** What `settleMany` gives one settlement: its stored entry, or the error `settle` would throw. */
export type SettleOutcome = LedgerEntry | Error;

/** One double-entry row; the rows of a request sum to zero. */
export interface Posting {
  requestId: string;
  account: "user" | "agent" | "platform";
  /** The user or agent id; `""` for the platform. */
  accountId: string;
  /** Signed, canonical `formatUsd` form: a debit is negative. */
  amount: string;
  createdAtMs: number;
}

/**
 * Money moving through a request: `reserve` before dispatch, then exactly one of `settle`
 * (completed: charge, pay the agent, chain the entry) or `release` (no completion: no charge).
 *
 * `users.balance` is the AVAILABLE balance: a hold moves money out of it into its reservation,
 * so "balance − held" is simply the balance, and no interleaving of calls (threads, processes,
 * hubs) can hold or charge more than the user has.
 */
export interface BillingStore {
  /**
   * Atomically moves `amount` from the user's balance into a new "held" reservation. Throws
   * `InsufficientFundsError` when the balance is below `amount`, `StoreNotFoundError` (entity
   * `"user"`) for an unknown user, `TypeError`/`RangeError` for a malformed argument; each
   * writes nothing. With `keyId`: `KeyCapExceededError` (an `InsufficientFundsError`) when the
   * key's spend in a cap's period (settled charges + open holds) plus `amount` would pass that
   * cap, `StoreNotFoundError` (`"key"`) for an unknown key. Idempotent by `reservationId`: a replay with the same user, amount and
   * expiry returns the stored reservation (whatever its status now) and moves no money; a
   * different one throws `StoreConflictError` (field `"reservationId"`).
   */
  reserve(reservation: NewReservation, nowMs: number): Promise<ReservationRecord>;
  /** The reservation, or `null` for an unknown id. */
  getReservation(reservationId: string): Promise<ReservationRecord | null>;
  /**
   * In ONE transaction: closes the held reservation, returns its hold to the balance and debits
   * exactly `userCharge`, appends the agent's next ledger entry (seq = last + 1, prevHash = last
   * hash, hash as `appendEntry` in protocol/chain.ts) and writes the request's three postings.
   * Returns the entry.
   *
   * A charge above the hold is taken from the rest of the balance, down to exactly 0; beyond
   * that the call throws `InsufficientFundsError` and changes nothing (the reservation stays
   * held): callers cap the charge at what the hold covers. Idempotent by `entry.requestId`: an
   * identical replay returns the stored entry; one differing in any field (or reservation)
   * throws `StoreConflictError("requestId")`. Settling a reservation already settled by another
   * request, or released, throws `StoreConflictError("reservationId")`. Unknown reservation or
   * agent: `StoreNotFoundError` (`"reservation"`, `"agent"`). Nothing changes on any error.
   */
  settle(settlement: Settlement): Promise<LedgerEntry>;
  /**
   * Group commit of `settle`: the settlements in order, in ONE transaction (one disk sync for the
   * lot). Each gets exactly the outcome `settle` would give it at that point of the sequence —
   * its entry, or the error that refused it (replay conflict, insufficient funds, unknown
   * reservation or agent, malformed) — and a refused one writes nothing and never blocks the
   * others. Throws only when the whole batch could not be committed (nothing of it is written).
   * See `_settle_batch.ts`.
   */
  settleMany(settlements: readonly Settlement[]): Promise<SettleOutcome[]>;
  /**
   * Returns a held reservation's amount to the balance without charging: `true`; `false` when
   * it is no longer held (settled or already released: nothing changes). `StoreNotFoundError`
   * for an unknown id. `nowMs` (default: now) is recorded as `closedAtMs`.
   */
  release(reservationId: string, nowMs?: number): Promise<boolean>;
  /** Releases up to `limit` (default 100) held reservations with `expiresAtMs <= nowMs`; their count. */
  releaseExpired(nowMs: number, limit?: number): Promise<number>;
  /** The agent's chain head with running totals, or `null` before its first entry. */
  ledgerHead(agentId: string): Promise<ChainHead | null>;
  /** Entries with `seq >= fromSeq`, ascending, at most `limit` (capped at 1000). */
  ledgerEntries(agentId: string, fromSeq: number, limit: number): Promise<LedgerEntry[]>;
  /** The hash of entry `seq`, or `null` if there is none (for `firstDivergence`). */
  ledgerHashAt(agentId: string, seq: number): Promise<string | null>;
  /** The sum of the agent's postings (its credits), exact, canonical `formatUsd` form. */
  agentBalance(agentId: string): Promise<string>;
  /** A settled request's postings (user, agent, platform), summing to zero; `[]` if unknown. */
  postings(requestId: string): Promise<Posting[]>;
}
