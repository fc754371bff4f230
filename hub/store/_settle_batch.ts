// Group commit of settlements (`settleMany`), the part both engines share: validate-then-write.
//
// Each engine reads, inside its write transaction (rows locked), everything a batch touches: the
// reservations, any entries already booked under its request ids, the users' balances, which
// agents exist and their chain heads. `planSettlements` then replays `settle`'s rules on that
// snapshot item by item, in order — a later item sees what the earlier ones did (balances, heads,
// closed reservations, booked request ids) — and collects the rows the successful ones write.
// A refused item changes nothing in the snapshot, so it writes nothing and never affects the
// others. The engine writes the plan in a few multi-row statements and commits once.
import type { ChainHead, LedgerEntry } from "../../protocol/chain.ts";
import { formatUsd, type Money, parseUsd } from "../../protocol/money.ts";
import {
  checkSettlement,
  ENTRY_COLUMNS,
  entryValues,
  nextEntry,
  nextHead,
  postingsFor,
  replayedEntry,
  type Row,
} from "./_billing.ts";
import type { Posting, Settlement, SettleOutcome } from "./_billing_types.ts";
import { InsufficientFundsError, StoreConflictError, StoreNotFoundError } from "./errors.ts";

/** What the engine read, locked, for one batch. Keys absent from a map do not exist. */
export interface SettleSnapshot {
  /** Reservation rows (`RESERVATION_COLUMNS`) by id. */
  reservations: Map<string, Row>;
  /** Entry rows (`ENTRY_COLUMNS` + `reservation_id`) already booked, by request id. */
  entries: Map<string, Row>;
  /** Available balance by user id. */
  balances: Map<string, Money>;
  agents: Set<string>;
  /** Chain heads by agent id (absent: no entry yet). */
  heads: Map<string, ChainHead>;
}

/** The rows a batch writes; empty when every item was a replay or refused. */
export interface SettlePlan {
  outcomes: SettleOutcome[];
  /** New entries in booking order, with the reservation each closes. */
  entries: { entry: LedgerEntry; reservationId: string }[];
  /** Each touched chain's final head; `isNew` when the agent had no head before the batch. */
  heads: { head: ChainHead; isNew: boolean }[];
  /** Each touched user's final balance. */
  balances: { userId: string; balance: Money }[];
  /** Postings of the new entries: request id, account, account id, signed amount, time. */
  postings: [string, Posting["account"], string, Money, number][];
}

/** The ids a batch needs read: request ids and reservation ids (agents come from the items). */
export function batchKeys(settlements: readonly Settlement[]) {
  const ids = (f: (s: Settlement) => unknown) =>
    [...new Set(settlements.map(f).filter((v): v is string => typeof v === "string"))].sort();
  return {
    reservationIds: ids((s) => s?.reservationId),
    requestIds: ids((s) => s?.entry?.requestId),
    agentIds: ids((s) => s?.entry?.agentId),
  };
}

/** An entry as a stored row (for replays of an entry booked earlier in the same batch). */
function entryRow(e: LedgerEntry, reservationId: string): Row {
  const values = entryValues(e, reservationId);
  return Object.fromEntries(ENTRY_COLUMNS.split(", ").map((c, i) => [c, values[i]]));
}

/** `settle`'s rules, item by item, on `snap` (mutated: it ends as the state after the batch). */
export function planSettlements(
  settlements: readonly Settlement[],
  snap: SettleSnapshot,
): SettlePlan {
  const plan: SettlePlan = { outcomes: [], entries: [], heads: [], balances: [], postings: [] };
  const hadHead = new Set(snap.heads.keys());
  const touchedUsers = new Set<string>(), touchedAgents = new Set<string>();
  for (const s of settlements) {
    try {
      plan.outcomes.push(planOne(s));
    } catch (e) {
      plan.outcomes.push(e instanceof Error ? e : new Error(String(e)));
    }
  }
  for (const userId of touchedUsers) {
    plan.balances.push({ userId, balance: snap.balances.get(userId)! });
  }
  for (const agentId of touchedAgents) {
    plan.heads.push({ head: snap.heads.get(agentId)!, isNew: !hadHead.has(agentId) });
  }
  return plan;

  // Checks first, in `settle`'s order; the snapshot changes only once nothing can fail.
  function planOne(s: Settlement): LedgerEntry {
    checkSettlement(s);
    const f = s.entry;
    const booked = snap.entries.get(f.requestId);
    if (booked) return replayedEntry(booked, s);
    const held = snap.reservations.get(s.reservationId);
    if (!held) throw new StoreNotFoundError("reservation", s.reservationId);
    if (held.status !== "held") throw new StoreConflictError("reservationId");
    const userId = String(held.user_id);
    const balance = snap.balances.get(userId);
    if (balance === undefined) throw new StoreNotFoundError("user", userId);
    const available = balance + parseUsd(String(held.amount));
    if (available < s.userCharge) throw new InsufficientFundsError(userId, formatUsd(s.userCharge));
    if (!snap.agents.has(f.agentId)) throw new StoreNotFoundError("agent", f.agentId);
    const prev = snap.heads.get(f.agentId) ?? null;
    const entry = nextEntry(prev, f);
    snap.heads.set(f.agentId, nextHead(prev, entry));
    snap.balances.set(userId, available - s.userCharge);
    snap.entries.set(f.requestId, entryRow(entry, s.reservationId));
    snap.reservations.set(s.reservationId, {
      ...held,
      status: "settled",
      closed_at_ms: entry.settledAtMs,
      request_id: entry.requestId,
    });
    touchedUsers.add(userId);
    touchedAgents.add(f.agentId);
    plan.entries.push({ entry, reservationId: s.reservationId });
    for (const [account, accountId, amount] of postingsFor(userId, s)) {
      plan.postings.push([entry.requestId, account, accountId, amount, entry.settledAtMs]);
    }
    return entry;
  }
}
