// Billing on MySQL/MariaDB; `MysqlStore` (mysql.ts) forwards to this.
//
// Writes run as READ COMMITTED transactions (no gap locks, so parallel settlements for different
// requests cannot deadlock on the unique indexes), taking row locks in one order: reservation,
// user, agent. The agent row lock serializes one agent's settlements, so its chain stays gapless.
import { mysqlCode, readCommitted } from "./_mysql_tx.ts";
import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { appendEntry, type ChainHead, type LedgerEntry } from "../../protocol/chain.ts";
import { formatUsd, parseUsd } from "../../protocol/money.ts";
import {
  checkPage,
  checkReservation,
  checkSettlement,
  ENTRY_COLUMNS,
  ENTRY_INSERT,
  entryValues,
  HEAD_COLUMNS,
  newReservationRecord,
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
import { admitKeySpend, closeKeySpend } from "./_mysql_quotas.ts";

// DECIMAL arithmetic needs DECIMAL operands (a string parameter alone is evaluated as DOUBLE).
const DEC = "CAST(? AS DECIMAL(38,12))";
/** The hold: one conditional UPDATE, so concurrent holds can never take more than the balance. */
const HOLD_SQL = `UPDATE users SET balance = balance - ${DEC} WHERE id = ? AND balance >= ${DEC}`;
/** Settling: the hold comes back and the charge goes out, never below 0. */
const CHARGE_SQL = `UPDATE users SET balance = balance + ${DEC} - ${DEC}
  WHERE id = ? AND balance + ${DEC} >= ${DEC}`;

type Db = Pool | PoolConnection;

async function one(db: Db, sql: string, params: (string | number)[]): Promise<Row | undefined> {
  const [rows] = await db.execute<RowDataPacket[]>(sql, params);
  return rows[0] as Row | undefined;
}

export class MysqlBilling {
  #pool: Pool;

  constructor(pool: Pool) {
    this.#pool = pool;
  }

  #tx<T>(fn: (c: PoolConnection) => Promise<T>): Promise<T> {
    return readCommitted(this.#pool, fn);
  }

  #reservation(db: Db, id: string, lock = ""): Promise<Row | undefined> {
    return one(db, `SELECT ${RESERVATION_COLUMNS} FROM reservations WHERE id = ?${lock}`, [id]);
  }

  #entry(db: Db, requestId: string): Promise<Row | undefined> {
    return one(db, `SELECT ${ENTRY_COLUMNS} FROM ledger_entries WHERE request_id = ?`, [
      requestId,
    ]);
  }

  async reserve(r: NewReservation, nowMs: number): Promise<ReservationRecord> {
    checkReservation(r);
    const existing = await this.#reservation(this.#pool, r.reservationId);
    if (existing) return replayedReservation(existing, r);
    const amount = formatUsd(r.amount);
    try {
      return await this.#tx(async (c) => {
        const [held] = await c.execute<ResultSetHeader>(HOLD_SQL, [amount, r.userId, amount]);
        if (held.affectedRows === 0) {
          if (!await one(c, "SELECT id FROM users WHERE id = ?", [r.userId])) {
            throw new StoreNotFoundError("user", r.userId);
          }
          throw new InsufficientFundsError(r.userId, amount);
        }
        const keySpentAtMs = await admitKeySpend(c, r, nowMs);
        await c.execute(
          `INSERT INTO reservations (id, user_id, amount, status, created_at_ms, expires_at_ms,
             key_id, key_spent_at_ms)
           VALUES (?, ?, ${DEC}, 'held', ?, ?, ?, ?)`,
          [r.reservationId, r.userId, amount, nowMs, r.expiresAtMs, r.keyId ?? null, keySpentAtMs],
        );
        return newReservationRecord(r, nowMs);
      });
    } catch (e) {
      // The same id reserved concurrently: this attempt rolled back; compare with the winner.
      const winner = mysqlCode(e) === "ER_DUP_ENTRY" &&
        await this.#reservation(this.#pool, r.reservationId);
      if (winner) return replayedReservation(winner, r);
      throw e;
    }
  }

  async getReservation(id: string): Promise<ReservationRecord | null> {
    const row = await this.#reservation(this.#pool, id);
    return row ? rowToReservation(row) : null;
  }

  async settle(s: Settlement): Promise<LedgerEntry> {
    checkSettlement(s);
    const f = s.entry;
    const booked = await this.#entry(this.#pool, f.requestId);
    if (booked) return replayedEntry(booked, s);
    try {
      return await this.#tx(async (c) => {
        const held = await this.#reservation(c, s.reservationId, " FOR UPDATE");
        if (!held) throw new StoreNotFoundError("reservation", s.reservationId);
        if (held.status !== "held") {
          // Perhaps an identical settle committed while this one waited for the lock.
          const row = await this.#entry(c, f.requestId);
          if (row) return replayedEntry(row, s);
          throw new StoreConflictError("reservationId");
        }
        const userId = String(held.user_id);
        const hold = String(held.amount), charge = formatUsd(s.userCharge);
        const [charged] = await c.execute<ResultSetHeader>(
          CHARGE_SQL,
          [hold, charge, userId, hold, charge],
        );
        if (charged.affectedRows === 0) {
          throw new InsufficientFundsError(userId, formatUsd(s.userCharge));
        }
        await closeKeySpend(c, s.reservationId, s.userCharge);
        if (!await one(c, "SELECT id FROM agents WHERE id = ? FOR UPDATE", [f.agentId])) {
          throw new StoreNotFoundError("agent", f.agentId);
        }
        const last = await one(
          c,
          `SELECT ${ENTRY_COLUMNS} FROM ledger_entries WHERE agent_id = ?
           ORDER BY seq DESC LIMIT 1`,
          [f.agentId],
        );
        const entry = await appendEntry(last ? rowToEntry(last) : null, f);
        await c.execute(ENTRY_INSERT, entryValues(entry, s.reservationId));
        const headRow = await one(
          c,
          `SELECT ${HEAD_COLUMNS} FROM ledger_heads WHERE agent_id = ?`,
          [
            f.agentId,
          ],
        );
        const head = nextHead(headRow ? rowToHead(headRow) : null, entry);
        const t = head.totals;
        await c.execute(
          `INSERT INTO ledger_heads (${HEAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)
           ON DUPLICATE KEY UPDATE seq = ?, hash = ?, official = ?, user_charge = ?,
             agent_payout = ?`,
          [
            head.agentId,
            ...Array(2).fill(0).flatMap(() => [
              head.seq,
              head.hash,
              t.official,
              t.userCharge,
              t.agentPayout,
            ]),
          ],
        );
        for (const [account, accountId, amount] of postingsFor(userId, s)) {
          await c.execute(
            `INSERT INTO postings (${POSTING_COLUMNS}) VALUES (?, ?, ?, ${DEC}, ?)`,
            [entry.requestId, account, accountId, formatUsd(amount), entry.settledAtMs],
          );
        }
        await c.execute(
          `UPDATE reservations SET status = 'settled', closed_at_ms = ?, request_id = ?
           WHERE id = ?`,
          [entry.settledAtMs, entry.requestId, s.reservationId],
        );
        return entry;
      });
    } catch (e) {
      // Another reservation booked this request id first: identical replays cannot get here.
      const row = mysqlCode(e) === "ER_DUP_ENTRY" && await this.#entry(this.#pool, f.requestId);
      if (row) return replayedEntry(row, s);
      throw e;
    }
  }

  release(id: string, nowMs: number): Promise<boolean> {
    return this.#tx(async (c) => {
      const held = await this.#reservation(c, id, " FOR UPDATE");
      if (!held) throw new StoreNotFoundError("reservation", id);
      if (held.status !== "held") return false;
      await c.execute(`UPDATE users SET balance = balance + ${DEC} WHERE id = ?`, [
        String(held.amount),
        String(held.user_id),
      ]);
      await closeKeySpend(c, id, 0n);
      await c.execute(
        "UPDATE reservations SET status = 'released', closed_at_ms = ? WHERE id = ?",
        [nowMs, id],
      );
      return true;
    });
  }

  async releaseExpired(nowMs: number, limit: number): Promise<number> {
    const [rows] = await this.#pool.query<RowDataPacket[]>(
      `SELECT id FROM reservations WHERE status = 'held' AND expires_at_ms <= ?
       ORDER BY expires_at_ms LIMIT ?`,
      [nowMs, limit],
    );
    let released = 0;
    for (const row of rows) if (await this.release(String(row.id), nowMs)) released++;
    return released;
  }

  async ledgerHead(agentId: string): Promise<ChainHead | null> {
    const row = await one(
      this.#pool,
      `SELECT ${HEAD_COLUMNS} FROM ledger_heads WHERE agent_id = ?`,
      [
        agentId,
      ],
    );
    return row ? rowToHead(row) : null;
  }

  async ledgerEntries(agentId: string, fromSeq: number, limit: number): Promise<LedgerEntry[]> {
    const max = checkPage(fromSeq, limit);
    // query (client-side placeholders), not execute: some servers refuse `LIMIT ?` prepared.
    const [rows] = await this.#pool.query<RowDataPacket[]>(
      `SELECT ${ENTRY_COLUMNS} FROM ledger_entries WHERE agent_id = ? AND seq >= ?
       ORDER BY seq LIMIT ?`,
      [agentId, fromSeq, max],
    );
    return rows.map((r) => rowToEntry(r as Row));
  }

  async ledgerHashAt(agentId: string, seq: number): Promise<string | null> {
    const row = await one(
      this.#pool,
      "SELECT hash FROM ledger_entries WHERE agent_id = ? AND seq = ?",
      [agentId, seq],
    );
    return row ? String(row.hash) : null;
  }

  async agentBalance(agentId: string): Promise<string> {
    const row = await one(
      this.#pool,
      "SELECT COALESCE(SUM(amount), 0) AS total FROM postings WHERE account = 'agent' AND account_id = ?",
      [agentId],
    );
    return formatUsd(parseUsd(String(row?.total ?? "0")));
  }

  async postings(requestId: string): Promise<Posting[]> {
    const [rows] = await this.#pool.execute<RowDataPacket[]>(
      `SELECT ${POSTING_COLUMNS} FROM postings WHERE request_id = ?
       ORDER BY FIELD(account, 'user', 'agent', 'platform')`,
      [requestId],
    );
    return rows.map((r) => rowToPosting(r as Row));
  }
}
