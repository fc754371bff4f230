// Per-key spend caps: the parts both engines share (periods, the admission rule, row mapping).
//
// A key may carry a lifetime `budget`, a `dailyCap` and a `monthlyCap` (USD; UTC calendar day
// and month). Its spend counters live on its own row (`virtual_keys.spent_*`, migration 7):
// every hold made with the key adds its amount there in the same transaction that takes it
// from the user's balance, and settle/release correct the counters to the real charge (or 0).
// So "spent" = settled charges + holds still open, and a hold is admitted only while
// spent + hold ≤ cap for each cap — decided under the key row's lock, which makes it exact
// across any number of hubs sharing the database.
//
// Periods: a hold counts in the UTC day and month of the instant it was admitted (`countedAtMs`
// = the later of `nowMs` and the row's `spent_at_ms`, so a hub whose clock lags never reopens a
// period another hub already closed). Settling it later, even after midnight, corrects the
// period it was counted in; once that period is over there is nothing left to correct.
import { formatUsd, type Money, parseUsd } from "../../protocol/money.ts";
import { USD_MAX } from "./_accounts.ts";
import type { Row } from "./_billing.ts";
import { KeyCapExceededError } from "./errors.ts";

const DAY_MS = 86_400_000;
const USD_MAX_PICO = parseUsd(USD_MAX);

/** A key's spend caps as canonical USD strings; `null` = no cap. */
export interface KeyCaps {
  /** Lifetime spend. */
  budget: string | null;
  /** Spend per UTC calendar day. */
  dailyCap: string | null;
  /** Spend per UTC calendar month. */
  monthlyCap: string | null;
}

const NO_CAPS: KeyCaps = Object.freeze({ budget: null, dailyCap: null, monthlyCap: null });

/** Spend in one cap's period. */
export interface SpendPeriod {
  /** The period's bounds (epoch ms, end exclusive); `null` for the lifetime budget. */
  startMs: number | null;
  endMs: number | null;
  /** Settled charges + open holds counted in this period. */
  spent: string;
  cap: string | null;
  /** `max(0, cap − spent)`; `null` without a cap. */
  remaining: string | null;
}

/** A key's caps and what it has spent against each, as of one instant. */
export interface KeySpend {
  keyId: string;
  userId: string;
  caps: KeyCaps;
  total: SpendPeriod;
  day: SpendPeriod;
  month: SpendPeriod;
  /** The sum of the key's holds still open (already part of each `spent`). */
  held: string;
}

/** The columns `keySpend` and admission read, in both engines. */
export const SPEND_COLUMNS =
  "id, user_id, budget, daily_cap, monthly_cap, spent_total, spent_day, spent_month, spent_at_ms";

export interface SpendRow {
  budget: Money | null;
  dailyCap: Money | null;
  monthlyCap: Money | null;
  total: Money;
  day: Money;
  month: Money;
  atMs: number;
}

/** A money column (SQLite canonical TEXT, mysql2's DECIMAL string) or SQL NULL. */
const money = (v: unknown): Money | null =>
  v === null || v === undefined ? null : parseUsd(String(v));

export function rowToSpend(row: Row): SpendRow {
  return {
    budget: money(row.budget),
    dailyCap: money(row.daily_cap),
    monthlyCap: money(row.monthly_cap),
    total: money(row.spent_total) ?? 0n,
    day: money(row.spent_day) ?? 0n,
    month: money(row.spent_month) ?? 0n,
    atMs: Number(row.spent_at_ms),
  };
}

/** The UTC day containing `ms`: `[start, end)`. */
export function utcDay(ms: number): { startMs: number; endMs: number } {
  const startMs = Math.floor(ms / DAY_MS) * DAY_MS;
  return { startMs, endMs: startMs + DAY_MS };
}

/** The UTC calendar month containing `ms`: `[start, end)`. */
export function utcMonth(ms: number): { startMs: number; endMs: number } {
  const d = new Date(ms);
  return {
    startMs: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1),
    endMs: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1),
  };
}

const sameDay = (a: number, b: number) => utcDay(a).startMs === utcDay(b).startMs;
const sameMonth = (a: number, b: number) => utcMonth(a).startMs === utcMonth(b).startMs;

/** The counters as of `atMs`: a day or month newer than the row's starts at 0. */
export function rolled(row: SpendRow, atMs: number): SpendRow {
  const t = Math.max(atMs, row.atMs);
  return {
    ...row,
    day: sameDay(t, row.atMs) ? row.day : 0n,
    month: sameMonth(t, row.atMs) ? row.month : 0n,
    atMs: t,
  };
}

/**
 * Admits a hold of `amount` on the key at `nowMs`: the counters to write, or
 * `KeyCapExceededError` naming the first cap it would pass (budget, then daily, then monthly).
 */
export function admit(
  row: SpendRow,
  refused: { userId: string; keyId: string },
  amount: Money,
  nowMs: number,
): SpendRow {
  const r = rolled(row, nowMs);
  const checks = [
    ["budget", r.budget, r.total],
    ["dailyCap", r.dailyCap, r.day],
    ["monthlyCap", r.monthlyCap, r.month],
  ] as const;
  for (const [cap, limit, spent] of checks) {
    if (limit !== null && spent + amount > limit) {
      throw new KeyCapExceededError(
        { ...refused, amount: formatUsd(amount) },
        cap,
        formatUsd(limit),
        formatUsd(spent),
      );
    }
  }
  return { ...r, total: r.total + amount, day: r.day + amount, month: r.month + amount };
}

/**
 * The counters once a hold counted at `countedAtMs` closes with `delta` = charge − hold (a
 * release is −hold): the lifetime total always, the day and month only while the row is still
 * in the period the hold was counted in. Never below 0.
 */
export function corrected(row: SpendRow, countedAtMs: number, delta: Money): SpendRow {
  const add = (v: Money) => (v + delta < 0n ? 0n : v + delta);
  return {
    ...row,
    total: add(row.total),
    day: sameDay(countedAtMs, row.atMs) ? add(row.day) : row.day,
    month: sameMonth(countedAtMs, row.atMs) ? add(row.month) : row.month,
  };
}

/** Values for `UPDATE virtual_keys SET spent_total, spent_day, spent_month, spent_at_ms`. */
export function spendValues(r: SpendRow): [string, string, string, number] {
  return [formatUsd(r.total), formatUsd(r.day), formatUsd(r.month), r.atMs];
}

/**
 * Checks caps for the store: each a canonical-able USD string ≥ 0 (≤ 12 decimals, ≤ USD_MAX)
 * or null. Returns the column values (canonical text or null). `TypeError`/`RangeError`.
 */
export function capColumns(
  caps: KeyCaps | undefined,
): [string | null, string | null, string | null] {
  const c = caps ?? NO_CAPS;
  return [
    checkCap("budget", c.budget),
    checkCap("dailyCap", c.dailyCap),
    checkCap("monthlyCap", c.monthlyCap),
  ];
}

function checkCap(name: string, value: string | null): string | null {
  if (value === null || value === undefined) return null;
  const pico = parseUsd(value);
  if (pico < 0n) throw new RangeError(`${name} must not be negative`);
  if (pico > USD_MAX_PICO) throw new RangeError(`${name} must be at most ${USD_MAX} USD`);
  return formatUsd(pico);
}

/** The public view of a key's spend at `nowMs` (`held`: the sum of its open holds). */
export function spendView(
  ids: { keyId: string; userId: string },
  row: SpendRow,
  held: Money,
  nowMs: number,
): KeySpend {
  const r = rolled(row, nowMs);
  const period = (
    bounds: { startMs: number; endMs: number } | null,
    spent: Money,
    cap: Money | null,
  ): SpendPeriod => ({
    startMs: bounds?.startMs ?? null,
    endMs: bounds?.endMs ?? null,
    spent: formatUsd(spent),
    cap: cap === null ? null : formatUsd(cap),
    remaining: cap === null ? null : formatUsd(cap > spent ? cap - spent : 0n),
  });
  const usd = (v: Money | null) => (v === null ? null : formatUsd(v));
  return {
    ...ids,
    caps: { budget: usd(r.budget), dailyCap: usd(r.dailyCap), monthlyCap: usd(r.monthlyCap) },
    total: period(null, r.total, r.budget),
    day: period(utcDay(r.atMs), r.day, r.dailyCap),
    month: period(utcMonth(r.atMs), r.month, r.monthlyCap),
    held: formatUsd(held),
  };
}
