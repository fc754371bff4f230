// Top-ups: the parts both engines share (validation, the journal row, replays).
import { formatUsd, type Money, parseUsd } from "../../protocol/money.ts";
import { parseCredit } from "./_accounts.ts";
import type { Row } from "./_billing.ts";
import type { NewTopUp, TopUpRecord } from "./_quota_types.ts";
import { randomHex } from "./_rows.ts";
import { StoreConflictError } from "./errors.ts";

/** What an idempotency key may look like (it is the journal row's primary key). */
export const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,128}$/;

/** The journal id and the parsed amount, or `TypeError`/`RangeError` before anything is written. */
export function checkTopUp(t: NewTopUp): { id: string; credit: { pico: Money; text: string } } {
  if (typeof t.userId !== "string" || t.userId === "" || t.userId.length > 40) {
    throw new RangeError("userId must be a string of 1..40 chars");
  }
  if (t.idempotencyKey !== null && !IDEMPOTENCY_KEY.test(t.idempotencyKey)) {
    throw new RangeError("idempotencyKey must be 1..128 chars of A-Z a-z 0-9 . _ : -");
  }
  return { id: t.idempotencyKey ?? "cr_" + randomHex(12), credit: parseCredit(t.amount) };
}

export function rowToTopUp(row: Row, replayed: boolean): TopUpRecord {
  return {
    id: String(row.id),
    userId: String(row.user_id),
    amount: formatUsd(parseUsd(String(row.amount))),
    balanceAfter: formatUsd(parseUsd(String(row.balance_after))),
    createdAtMs: Number(row.created_at_ms),
    replayed,
  };
}

/** A retried top-up: the stored record if it is the same one, else `StoreConflictError`. */
export function topUpReplay(row: Row, userId: string, amount: Money): TopUpRecord {
  const stored = rowToTopUp(row, true);
  if (stored.userId !== userId || parseUsd(stored.amount) !== amount) {
    throw new StoreConflictError("idempotencyKey");
  }
  return stored;
}
