// Billing: holds on a user's balance (reservations), settlement into each agent's hash chain,
// and double-entry postings. The parts both engines share: types, validation, row mapping.
import { createHash } from "node:crypto";
import {
  canonicalBytes,
  type ChainHead,
  type EntryFields,
  entryProblem,
  GENESIS_HASH,
  type LedgerEntry,
} from "../../protocol/chain.ts";
import { formatUsd, type Money, parseUsd } from "../../protocol/money.ts";
import { type Usage, USAGE_FIELDS } from "../../protocol/usage.ts";
import { USD_MAX } from "./_accounts.ts";
import { StoreConflictError } from "./errors.ts";
import type {
  NewReservation,
  Posting,
  ReservationRecord,
  ReservationStatus,
  Settlement,
} from "./_billing_types.ts";

/** The most `ledgerEntries` returns at once. */
export const LEDGER_PAGE_MAX = 1000;
const USD_MAX_PICO = parseUsd(USD_MAX);
const TEXT_MAX = { id: 128, agentId: 40, vendor: 40, model: 200, amount: 64 } as const;

export const RESERVATION_COLUMNS =
  "id, user_id, amount, status, created_at_ms, expires_at_ms, closed_at_ms, request_id";
export const ENTRY_COLUMNS = "agent_id, seq, request_id, reservation_id, vendor, model, " +
  "usage_json, price_version, official, user_charge, agent_payout, completed_at_ms, " +
  "settled_at_ms, prev_hash, hash";
export const ENTRY_INSERT = `INSERT INTO ledger_entries (${ENTRY_COLUMNS})
  VALUES (${ENTRY_COLUMNS.split(", ").map(() => "?").join(", ")})`;
export const POSTING_COLUMNS = "request_id, account, account_id, amount, created_at_ms";
export const HEAD_COLUMNS = "agent_id, seq, hash, official, user_charge, agent_payout";

export type Row = Record<string, unknown>;

function text(name: string, v: unknown, max: number): string {
  if (typeof v !== "string" || v === "" || v.length > max) {
    throw new RangeError(`${name} must be a string of 1..${max} chars`);
  }
  return v;
}

/** A Money argument: `TypeError` unless a bigint, `RangeError` outside 0 … `USD_MAX`. */
export function checkMoney(name: string, v: unknown): Money {
  if (typeof v !== "bigint") throw new TypeError(`${name} must be a bigint of picodollars`);
  if (v < 0n || v > USD_MAX_PICO) throw new RangeError(`${name} must be 0 … ${USD_MAX} USD`);
  return v;
}

export function checkReservation(r: NewReservation): void {
  text("reservationId", r.reservationId, TEXT_MAX.id);
  text("userId", r.userId, TEXT_MAX.agentId);
  checkMoney("amount", r.amount);
  if (!Number.isSafeInteger(r.expiresAtMs)) throw new RangeError("expiresAtMs must be an integer");
}

/** Throws `TypeError`/`RangeError` before anything is written when `s` is malformed. */
export function checkSettlement(s: Settlement): void {
  const e = s.entry;
  text("reservationId", s.reservationId, TEXT_MAX.id);
  text("requestId", e.requestId, TEXT_MAX.id);
  text("agentId", e.agentId, TEXT_MAX.agentId);
  text("vendor", e.vendor, TEXT_MAX.vendor);
  text("model", e.model, TEXT_MAX.model);
  const problem = entryProblem({ ...e, seq: 1, prevHash: GENESIS_HASH });
  if (problem) throw new TypeError(`Invalid ledger entry: ${problem}`);
  for (const k of ["official", "userCharge", "agentPayout"] as const) {
    text(k, e[k], TEXT_MAX.amount);
    checkMoney(`entry.${k}`, parseUsd(e[k]));
  }
  checkMoney("userCharge", s.userCharge);
  checkMoney("agentPayout", s.agentPayout);
  if (parseUsd(e.userCharge) !== s.userCharge || parseUsd(e.agentPayout) !== s.agentPayout) {
    throw new TypeError("entry.userCharge/agentPayout differ from userCharge/agentPayout");
  }
}

/** Usage in `USAGE_FIELDS` order, as hashed and stored (`usage_json`). */
function usageJson(usage: Usage): string {
  return JSON.stringify(Object.fromEntries(USAGE_FIELDS.map((f) => [f, usage[f]])));
}

/**
 * `appendEntry` (protocol/chain.ts) without the await: the same fields, the same canonical
 * bytes, SHA-256 from node:crypto. node:sqlite must finish a transaction synchronously, so an
 * await inside one would let another call on the same connection join it. `_billing_test.ts`
 * checks it against `appendEntry`.
 */
export function nextEntry(prev: { seq: number; hash: string } | null, f: EntryFields): LedgerEntry {
  const body: Omit<LedgerEntry, "hash"> = {
    agentId: f.agentId,
    seq: prev ? prev.seq + 1 : 1,
    requestId: f.requestId,
    vendor: f.vendor,
    model: f.model,
    usage: JSON.parse(usageJson(f.usage)),
    priceVersion: f.priceVersion,
    official: f.official,
    userCharge: f.userCharge,
    agentPayout: f.agentPayout,
    completedAtMs: f.completedAtMs,
    settledAtMs: f.settledAtMs,
    prevHash: prev ? prev.hash : GENESIS_HASH,
  };
  return { ...body, hash: createHash("sha256").update(canonicalBytes(body)).digest("hex") };
}

/** Values for `ENTRY_INSERT`. */
export function entryValues(e: LedgerEntry, reservationId: string): (string | number)[] {
  return [
    e.agentId,
    e.seq,
    e.requestId,
    reservationId,
    e.vendor,
    e.model,
    usageJson(e.usage),
    e.priceVersion,
    e.official,
    e.userCharge,
    e.agentPayout,
    e.completedAtMs,
    e.settledAtMs,
    e.prevHash,
    e.hash,
  ];
}

export function rowToEntry(row: Row): LedgerEntry {
  return {
    agentId: String(row.agent_id),
    seq: Number(row.seq),
    requestId: String(row.request_id),
    vendor: String(row.vendor),
    model: String(row.model),
    usage: JSON.parse(String(row.usage_json)),
    priceVersion: Number(row.price_version),
    official: String(row.official),
    userCharge: String(row.user_charge),
    agentPayout: String(row.agent_payout),
    completedAtMs: Number(row.completed_at_ms),
    settledAtMs: Number(row.settled_at_ms),
    prevHash: String(row.prev_hash),
    hash: String(row.hash),
  };
}

/** A replay of `settle` for a request already booked: the stored entry if identical. */
export function replayedEntry(row: Row, s: Settlement): LedgerEntry {
  const stored = rowToEntry(row);
  const given = nextEntry({ seq: stored.seq - 1, hash: stored.prevHash }, s.entry);
  if (row.reservation_id !== s.reservationId || given.hash !== stored.hash) {
    throw new StoreConflictError("requestId");
  }
  return stored;
}

/** The three postings of a settled request: they sum to zero. */
export function postingsFor(userId: string, s: Settlement): [Posting["account"], string, Money][] {
  return [
    ["user", userId, -s.userCharge],
    ["agent", s.entry.agentId, s.agentPayout],
    ["platform", "", s.userCharge - s.agentPayout],
  ];
}

export function rowToPosting(row: Row): Posting {
  return {
    requestId: String(row.request_id),
    account: row.account as Posting["account"],
    accountId: String(row.account_id),
    amount: formatUsd(parseUsd(String(row.amount))),
    createdAtMs: Number(row.created_at_ms),
  };
}

export function rowToReservation(row: Row): ReservationRecord {
  return {
    id: String(row.id),
    userId: String(row.user_id),
    amount: formatUsd(parseUsd(String(row.amount))),
    status: row.status as ReservationStatus,
    createdAtMs: Number(row.created_at_ms),
    expiresAtMs: Number(row.expires_at_ms),
    closedAtMs: row.closed_at_ms === null ? null : Number(row.closed_at_ms),
    requestId: row.request_id === null ? null : String(row.request_id),
  };
}

/** A replay of `reserve`: the stored reservation if it holds the same thing. */
export function replayedReservation(row: Row, r: NewReservation): ReservationRecord {
  const stored = rowToReservation(row);
  const same = stored.userId === r.userId && parseUsd(stored.amount) === r.amount &&
    stored.expiresAtMs === r.expiresAtMs;
  if (!same) throw new StoreConflictError("reservationId");
  return stored;
}

export function newReservationRecord(r: NewReservation, nowMs: number): ReservationRecord {
  const { reservationId: id, userId, expiresAtMs } = r;
  const amount = formatUsd(r.amount);
  return { id, userId, amount, status: "held", createdAtMs: nowMs, expiresAtMs, ...CLOSED_NULL };
}
const CLOSED_NULL = { closedAtMs: null, requestId: null } as const;

export function rowToHead(row: Row): ChainHead {
  const usd = (v: unknown) => formatUsd(parseUsd(String(v)));
  return {
    agentId: String(row.agent_id),
    seq: Number(row.seq),
    hash: String(row.hash),
    totals: {
      official: usd(row.official),
      userCharge: usd(row.user_charge),
      agentPayout: usd(row.agent_payout),
    },
  };
}

/** The head after `e`: its seq and hash, totals grown by its amounts (canonical strings). */
export function nextHead(prev: ChainHead | null, e: LedgerEntry): ChainHead {
  const add = (a: string | undefined, b: string) => formatUsd(parseUsd(a ?? "0") + parseUsd(b));
  const t = prev?.totals;
  return {
    agentId: e.agentId,
    seq: e.seq,
    hash: e.hash,
    totals: {
      official: add(t?.official, e.official),
      userCharge: add(t?.userCharge, e.userCharge),
      agentPayout: add(t?.agentPayout, e.agentPayout),
    },
  };
}

export function checkPage(fromSeq: number, limit: number): number {
  if (!Number.isSafeInteger(fromSeq)) throw new RangeError("fromSeq must be an integer");
  if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError("limit must be ≥ 1");
  return Math.min(limit, LEDGER_PAGE_MAX);
}
