// Key spend caps and top-ups on MySQL/MariaDB. `MysqlStore` (mysql.ts) forwards to
// `MysqlQuotas`; `MysqlBilling` calls `admitKeySpend`/`closeKeySpend` inside its own
// transactions. The key row is read `FOR UPDATE`, so concurrent holds on one key — from any
// number of hubs — are checked against its caps one at a time. Lock order everywhere:
// reservation, user, key (reserve: user, key), so these never deadlock with each other.
import { mysqlCode, readCommitted } from "./_mysql_tx.ts";
import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { formatUsd, type Money, parseUsd } from "../../protocol/money.ts";
import { creditedBalance, USD_MAX } from "./_accounts.ts";
import type { Row } from "./_billing.ts";
import type { NewReservation } from "./_billing_types.ts";
import {
  admit,
  capColumns,
  corrected,
  type KeyCaps,
  type KeySpend,
  rowToSpend,
  SPEND_COLUMNS,
  spendValues,
  spendView,
} from "./_key_spend.ts";
import type { NewTopUp, QuotaStore, TopUpRecord } from "./_quota_types.ts";
import { checkTopUp, rowToTopUp, topUpReplay } from "./_topup.ts";
import { StoreNotFoundError } from "./errors.ts";

const DEC = "CAST(? AS DECIMAL(38,12))";
const SET_SPEND = `UPDATE virtual_keys SET spent_total = ${DEC}, spent_day = ${DEC},
  spent_month = ${DEC}, spent_at_ms = ? WHERE id = ?`;
const CREDIT_SQL = `UPDATE users SET balance = balance + ${DEC}
  WHERE id = ? AND balance + ${DEC} BETWEEN 0 AND ${USD_MAX}`;
const CREDIT_COLUMNS = "id, user_id, amount, balance_after, created_at_ms";

type Db = Pool | PoolConnection;

async function one(db: Db, sql: string, params: (string | number)[]): Promise<Row | undefined> {
  const [rows] = await db.execute<RowDataPacket[]>(sql, params);
  return rows[0] as Row | undefined;
}

/**
 * Inside `reserve`'s transaction, after the user's balance was debited (the user row is
 * locked): counts the hold against its key's caps, or throws `KeyCapExceededError`. Returns the
 * instant it was counted at, or `null` for a hold made without a key.
 */
export async function admitKeySpend(
  c: PoolConnection,
  r: NewReservation,
  nowMs: number,
): Promise<number | null> {
  if (r.keyId === undefined) return null;
  const row = await one(c, `SELECT ${SPEND_COLUMNS} FROM virtual_keys WHERE id = ? FOR UPDATE`, [
    r.keyId,
  ]);
  if (!row) throw new StoreNotFoundError("key", r.keyId);
  if (row.user_id !== r.userId) {
    throw new RangeError(`key ${r.keyId} does not belong to user ${r.userId}`);
  }
  const next = admit(rowToSpend(row), { userId: r.userId, keyId: r.keyId }, r.amount, nowMs);
  await c.execute(SET_SPEND, [...spendValues(next), r.keyId]);
  return next.atMs;
}

/**
 * Inside `settle`/`release`'s transaction (the reservation row locked): corrects its key's
 * spend from the hold to `charge` (`0n` on release). No key: nothing to do. `holdOpen: false`
 * for a charge booked after the hold was given back (the whole charge is added).
 */
export async function closeKeySpend(
  c: PoolConnection,
  reservationId: string,
  charge: Money,
  holdOpen = true,
): Promise<void> {
  const tag = await one(
    c,
    "SELECT key_id, key_spent_at_ms, amount FROM reservations WHERE id = ?",
    [reservationId],
  );
  if (!tag || tag.key_id === null) return;
  const keyId = String(tag.key_id);
  const row = await one(c, `SELECT ${SPEND_COLUMNS} FROM virtual_keys WHERE id = ? FOR UPDATE`, [
    keyId,
  ]);
  if (!row) return;
  const delta = charge - (holdOpen ? parseUsd(String(tag.amount)) : 0n);
  const next = corrected(rowToSpend(row), Number(tag.key_spent_at_ms), delta);
  await c.execute(SET_SPEND, [...spendValues(next), keyId]);
}

/**
 * `closeKeySpend` for a batch of settlements (`settleMany`), in its transaction after the
 * reservations and users are locked: one read of the tags, the keys locked in id order, one
 * UPDATE per key.
 */
export async function closeKeySpendMany(
  c: PoolConnection,
  closing: readonly { reservationId: string; charge: Money }[],
): Promise<void> {
  if (closing.length === 0) return;
  const marks = closing.map(() => "?").join(", ");
  const [tags] = await c.query<RowDataPacket[]>(
    `SELECT id, key_id, key_spent_at_ms, amount FROM reservations
     WHERE id IN (${marks}) AND key_id IS NOT NULL`,
    closing.map((x) => x.reservationId),
  );
  if (tags.length === 0) return;
  const keyIds = [...new Set(tags.map((t) => String(t.key_id)))].sort();
  const [keys] = await c.query<RowDataPacket[]>(
    `SELECT ${SPEND_COLUMNS} FROM virtual_keys WHERE id IN (${keyIds.map(() => "?").join(", ")})
     ORDER BY id FOR UPDATE`,
    keyIds,
  );
  const spend = new Map(keys.map((k) => [String(k.id), rowToSpend(k as Row)]));
  const charges = new Map(closing.map((x) => [x.reservationId, x.charge]));
  for (const t of tags) {
    const keyId = String(t.key_id), row = spend.get(keyId);
    if (!row) continue;
    const delta = charges.get(String(t.id))! - parseUsd(String(t.amount));
    spend.set(keyId, corrected(row, Number(t.key_spent_at_ms), delta));
  }
  for (const [keyId, row] of spend) await c.execute(SET_SPEND, [...spendValues(row), keyId]);
}

export class MysqlQuotas implements QuotaStore {
  #pool: Pool;

  constructor(pool: Pool) {
    this.#pool = pool;
  }

  async keySpend(keyId: string, nowMs: number): Promise<KeySpend | null> {
    const row = await one(this.#pool, `SELECT ${SPEND_COLUMNS} FROM virtual_keys WHERE id = ?`, [
      keyId,
    ]);
    if (!row) return null;
    const [holds] = await this.#pool.execute<RowDataPacket[]>(
      "SELECT amount FROM reservations WHERE key_id = ? AND status = 'held'",
      [keyId],
    );
    const held = holds.reduce((sum, h) => sum + parseUsd(String(h.amount)), 0n);
    return spendView({ keyId, userId: String(row.user_id) }, rowToSpend(row), held, nowMs);
  }

  async setKeyCaps(keyId: string, caps: KeyCaps): Promise<boolean> {
    // affectedRows counts matched rows (mysql2 sets FOUND_ROWS), so an unchanged value is true.
    const [res] = await this.#pool.execute<ResultSetHeader>(
      "UPDATE virtual_keys SET budget = ?, daily_cap = ?, monthly_cap = ? WHERE id = ?",
      [...capColumns(caps), keyId],
    );
    return res.affectedRows > 0;
  }

  async topUp(t: NewTopUp, nowMs: number): Promise<TopUpRecord> {
    const { id, credit } = checkTopUp(t);
    const journal = (db: Db) => one(db, `SELECT ${CREDIT_COLUMNS} FROM credits WHERE id = ?`, [id]);
    const booked = await journal(this.#pool);
    if (booked) return topUpReplay(booked, t.userId, credit.pico);
    try {
      return await this.#tx(async (c) => {
        const [res] = await c.execute<ResultSetHeader>(CREDIT_SQL, [
          credit.text,
          t.userId,
          credit.text,
        ]);
        const row = await one(c, "SELECT balance FROM users WHERE id = ?", [t.userId]);
        if (!row) throw new StoreNotFoundError("user", t.userId);
        if (res.affectedRows === 0) {
          // Refused by the WHERE clause: the shared check names the reason.
          creditedBalance(t.userId, parseUsd(String(row.balance)), credit.pico);
          throw new RangeError(`Cannot credit ${credit.text} USD to ${t.userId}: out of range`);
        }
        const balance = formatUsd(parseUsd(String(row.balance)));
        // The primary key claims the idempotency key: a concurrent twin fails here and rolls
        // back its credit.
        await c.execute(
          `INSERT INTO credits (${CREDIT_COLUMNS}) VALUES (?, ?, ${DEC}, ${DEC}, ?)`,
          [id, t.userId, credit.text, balance, nowMs],
        );
        return rowToTopUp(
          {
            id,
            user_id: t.userId,
            amount: credit.text,
            balance_after: balance,
            created_at_ms: nowMs,
          },
          false,
        );
      });
    } catch (e) {
      const winner = mysqlCode(e) === "ER_DUP_ENTRY" && await journal(this.#pool);
      if (winner) return topUpReplay(winner, t.userId, credit.pico);
      throw e;
    }
  }

  #tx<T>(fn: (c: PoolConnection) => Promise<T>): Promise<T> {
    return readCommitted(this.#pool, fn);
  }
}
