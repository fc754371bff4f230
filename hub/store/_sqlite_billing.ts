// Billing on node:sqlite; `SqliteStore` (sqlite.ts) forwards to this. Every write runs inside
// `BEGIN IMMEDIATE`, synchronously: another process sharing the file waits for the write lock,
// and no other call on this connection can run in between (BigInt arithmetic on TEXT money).
import { immediate } from "./_sqlite_tx.ts";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { ChainHead, LedgerEntry } from "../../protocol/chain.ts";
import { formatUsd, parseUsd } from "../../protocol/money.ts";
import { creditedBalance } from "./_accounts.ts";
import {
  checkPage,
  checkReservation,
  checkSettlement,
  ENTRY_COLUMNS,
  ENTRY_INSERT,
  entryValues,
  HEAD_COLUMNS,
  newReservationRecord,
  nextEntry,
  nextHead,
  POSTING_COLUMNS,
  postingsFor,
  replayedEntry,
  replayedReservation,
  RESERVATION_COLUMNS,
  type Row,
  rowToEntry,
  rowToHead,
  rowToPosting,
  rowToReservation,
} from "./_billing.ts";
import type { NewReservation, Posting, ReservationRecord, Settlement } from "./_billing_types.ts";
import { InsufficientFundsError, StoreConflictError, StoreNotFoundError } from "./errors.ts";
import { SqliteQuotas } from "./_sqlite_quotas.ts";

type Sql = Record<
  | "reservation"
  | "insertReservation"
  | "closeReservation"
  | "expired"
  | "balance"
  | "setBalance"
  | "agent"
  | "entry"
  | "insertEntry"
  | "head"
  | "insertHead"
  | "updateHead"
  | "entries"
  | "hashAt"
  | "insertPosting"
  | "postings"
  | "agentPostings",
  StatementSync
>;

/** Synchronous, like `DatabaseSync`; the store wraps each call in `Promise.try`. */
export class SqliteBilling {
  #db: DatabaseSync;
  #sql: Sql;
  /** Key spend caps, checked and counted inside these transactions. */
  #keySpend: SqliteQuotas;

  constructor(db: DatabaseSync, keySpend: SqliteQuotas) {
    this.#db = db;
    this.#keySpend = keySpend;
    const p = (sql: string) => db.prepare(sql);
    this.#sql = {
      reservation: p(`SELECT ${RESERVATION_COLUMNS} FROM reservations WHERE id = ?`),
      insertReservation: p(
        `INSERT INTO reservations (id, user_id, amount, status, created_at_ms, expires_at_ms,
           key_id, key_spent_at_ms)
         VALUES (?, ?, ?, 'held', ?, ?, ?, ?)`,
      ),
      closeReservation: p(
        "UPDATE reservations SET status = ?, closed_at_ms = ?, request_id = ? WHERE id = ?",
      ),
      expired: p(
        `SELECT id FROM reservations WHERE status = 'held' AND expires_at_ms <= ?
         ORDER BY expires_at_ms LIMIT ?`,
      ),
      balance: p("SELECT balance FROM users WHERE id = ?"),
      setBalance: p("UPDATE users SET balance = ? WHERE id = ?"),
      agent: p("SELECT id FROM agents WHERE id = ?"),
      entry: p(`SELECT ${ENTRY_COLUMNS} FROM ledger_entries WHERE request_id = ?`),
      insertEntry: p(ENTRY_INSERT),
      head: p(`SELECT ${HEAD_COLUMNS} FROM ledger_heads WHERE agent_id = ?`),
      insertHead: p(`INSERT INTO ledger_heads (${HEAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)`),
      updateHead: p(
        `UPDATE ledger_heads SET seq = ?, hash = ?, official = ?, user_charge = ?,
         agent_payout = ? WHERE agent_id = ?`,
      ),
      entries: p(
        `SELECT ${ENTRY_COLUMNS} FROM ledger_entries WHERE agent_id = ? AND seq >= ?
         ORDER BY seq LIMIT ?`,
      ),
      hashAt: p("SELECT hash FROM ledger_entries WHERE agent_id = ? AND seq = ?"),
      insertPosting: p(`INSERT INTO postings (${POSTING_COLUMNS}) VALUES (?, ?, ?, ?, ?)`),
      postings: p(`SELECT ${POSTING_COLUMNS} FROM postings WHERE request_id = ? ORDER BY rowid`),
      agentPostings: p("SELECT amount FROM postings WHERE account = 'agent' AND account_id = ?"),
    };
  }

  #write<T>(fn: () => T): T {
    return immediate(this.#db, fn);
  }

  #balance(userId: string): bigint {
    const row = this.#sql.balance.get(userId) as { balance: string } | undefined;
    if (!row) throw new StoreNotFoundError("user", userId);
    return parseUsd(row.balance);
  }

  reserve(r: NewReservation, nowMs: number): ReservationRecord {
    checkReservation(r);
    return this.#write(() => {
      const existing = this.#sql.reservation.get(r.reservationId) as Row | undefined;
      if (existing) return replayedReservation(existing, r);
      const balance = this.#balance(r.userId);
      if (balance < r.amount) throw new InsufficientFundsError(r.userId, formatUsd(r.amount));
      const keySpentAtMs = this.#keySpend.admit(r, nowMs);
      this.#sql.setBalance.run(formatUsd(balance - r.amount), r.userId);
      const amount = formatUsd(r.amount);
      this.#sql.insertReservation.run(
        r.reservationId,
        r.userId,
        amount,
        nowMs,
        r.expiresAtMs,
        r.keyId ?? null,
        keySpentAtMs,
      );
      return newReservationRecord(r, nowMs);
    });
  }

  getReservation(id: string): ReservationRecord | null {
    const row = this.#sql.reservation.get(id) as Row | undefined;
    return row ? rowToReservation(row) : null;
  }

  settle(s: Settlement): LedgerEntry {
    checkSettlement(s);
    const sql = this.#sql;
    return this.#write(() => {
      const booked = sql.entry.get(s.entry.requestId) as Row | undefined;
      if (booked) return replayedEntry(booked, s);
      const held = sql.reservation.get(s.reservationId) as Row | undefined;
      if (!held) throw new StoreNotFoundError("reservation", s.reservationId);
      if (held.status !== "held") throw new StoreConflictError("reservationId");
      const userId = String(held.user_id);
      const available = this.#balance(userId) + parseUsd(String(held.amount));
      if (available < s.userCharge) {
        throw new InsufficientFundsError(userId, formatUsd(s.userCharge));
      }
      if (!sql.agent.get(s.entry.agentId)) throw new StoreNotFoundError("agent", s.entry.agentId);
      const headRow = sql.head.get(s.entry.agentId) as Row | undefined;
      const prev = headRow ? rowToHead(headRow) : null;
      const entry = nextEntry(prev, s.entry);
      sql.insertEntry.run(...entryValues(entry, s.reservationId));
      const head = nextHead(prev, entry);
      const t = head.totals;
      if (prev) {
        sql.updateHead.run(
          head.seq,
          head.hash,
          t.official,
          t.userCharge,
          t.agentPayout,
          head.agentId,
        );
      } else {sql.insertHead.run(
          head.agentId,
          head.seq,
          head.hash,
          t.official,
          t.userCharge,
          t.agentPayout,
        );}
      for (const [account, accountId, amount] of postingsFor(userId, s)) {
        sql.insertPosting.run(
          entry.requestId,
          account,
          accountId,
          formatUsd(amount),
          entry.settledAtMs,
        );
      }
      sql.setBalance.run(formatUsd(available - s.userCharge), userId);
      this.#keySpend.close(s.reservationId, s.userCharge);
      sql.closeReservation.run("settled", entry.settledAtMs, entry.requestId, s.reservationId);
      return entry;
    });
  }

  release(id: string, nowMs: number): boolean {
    return this.#write(() => {
      const held = this.#sql.reservation.get(id) as Row | undefined;
      if (!held) throw new StoreNotFoundError("reservation", id);
      if (held.status !== "held") return false;
      const userId = String(held.user_id);
      const refunded = creditedBalance(
        userId,
        this.#balance(userId),
        parseUsd(String(held.amount)),
      );
      this.#sql.setBalance.run(formatUsd(refunded), userId);
      this.#keySpend.close(id, 0n);
      this.#sql.closeReservation.run("released", nowMs, null, id);
      return true;
    });
  }

  releaseExpired(nowMs: number, limit: number): number {
    const ids = this.#sql.expired.all(nowMs, limit) as { id: string }[];
    return ids.filter(({ id }) => this.release(id, nowMs)).length;
  }

  ledgerHead(agentId: string): ChainHead | null {
    const row = this.#sql.head.get(agentId) as Row | undefined;
    return row ? rowToHead(row) : null;
  }

  ledgerEntries(agentId: string, fromSeq: number, limit: number): LedgerEntry[] {
    const max = checkPage(fromSeq, limit);
    return this.#sql.entries.all(agentId, fromSeq, max).map((r) => rowToEntry(r as Row));
  }

  ledgerHashAt(agentId: string, seq: number): string | null {
    const row = this.#sql.hashAt.get(agentId, seq) as { hash: string } | undefined;
    return row?.hash ?? null;
  }

  /** Summed in BigInt: SQLite's SUM over TEXT would go through floating point. */
  agentBalance(agentId: string): string {
    const rows = this.#sql.agentPostings.all(agentId) as { amount: string }[];
    return formatUsd(rows.reduce((sum, r) => sum + parseUsd(r.amount), 0n));
  }

  postings(requestId: string): Posting[] {
    return this.#sql.postings.all(requestId).map((r) => rowToPosting(r as Row));
  }
}
