// Key spend caps and top-ups on node:sqlite; `SqliteStore` (sqlite.ts) forwards to this, and
// `SqliteBilling` calls `admit`/`close` inside its own write transactions (`BEGIN IMMEDIATE`
// holds the database's write lock, so reading and updating the key row cannot interleave).
import { immediate } from "./_sqlite_tx.ts";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { formatUsd, type Money, parseUsd } from "../../protocol/money.ts";
import { creditedBalance } from "./_accounts.ts";
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
import type { Row } from "./_billing.ts";

type Sql = Record<
  | "key"
  | "setSpend"
  | "setCaps"
  | "tagged"
  | "held"
  | "balance"
  | "setBalance"
  | "credit"
  | "insertCredit",
  StatementSync
>;

export class SqliteQuotas implements QuotaStore {
  #db: DatabaseSync;
  #sql: Sql;

  constructor(db: DatabaseSync) {
    this.#db = db;
    const p = (sql: string) => db.prepare(sql);
    this.#sql = {
      key: p(`SELECT ${SPEND_COLUMNS} FROM virtual_keys WHERE id = ?`),
      setSpend: p(
        `UPDATE virtual_keys SET spent_total = ?, spent_day = ?, spent_month = ?, spent_at_ms = ?
         WHERE id = ?`,
      ),
      setCaps: p("UPDATE virtual_keys SET budget = ?, daily_cap = ?, monthly_cap = ? WHERE id = ?"),
      tagged: p("SELECT key_id, key_spent_at_ms, amount FROM reservations WHERE id = ?"),
      held: p("SELECT amount FROM reservations WHERE key_id = ? AND status = 'held'"),
      balance: p("SELECT balance FROM users WHERE id = ?"),
      setBalance: p("UPDATE users SET balance = ? WHERE id = ?"),
      credit: p(
        "SELECT id, user_id, amount, balance_after, created_at_ms FROM credits WHERE id = ?",
      ),
      insertCredit: p(
        `INSERT INTO credits (id, user_id, amount, balance_after, created_at_ms)
         VALUES (?, ?, ?, ?, ?)`,
      ),
    };
  }

  /**
   * Inside `reserve`'s transaction: counts the hold against its key's caps (or throws
   * `KeyCapExceededError`). Returns the instant it was counted at (`reservations.key_spent_at_ms`),
   * or `null` for a hold made without a key.
   */
  admit(r: NewReservation, nowMs: number): number | null {
    if (r.keyId === undefined) return null;
    const row = this.#sql.key.get(r.keyId) as Row | undefined;
    if (!row) throw new StoreNotFoundError("key", r.keyId);
    if (row.user_id !== r.userId) {
      throw new RangeError(`key ${r.keyId} does not belong to user ${r.userId}`);
    }
    const next = admit(rowToSpend(row), { userId: r.userId, keyId: r.keyId }, r.amount, nowMs);
    this.#sql.setSpend.run(...spendValues(next), r.keyId);
    return next.atMs;
  }

  /**
   * Inside `settle`/`release`'s transaction, before the reservation is closed: corrects its
   * key's spend from the hold to `charge` (`0n` on release). No key: nothing to do. A charge
   * booked on a reservation whose hold was already given back (e.g. a late CLAIM after the
   * sweeper released it) passes `holdOpen: false`: the whole charge is added.
   */
  close(reservationId: string, charge: Money, holdOpen = true): void {
    const tag = this.#sql.tagged.get(reservationId) as Row | undefined;
    if (!tag || tag.key_id === null) return;
    const keyId = String(tag.key_id);
    const row = this.#sql.key.get(keyId) as Row | undefined;
    if (!row) return;
    const delta = charge - (holdOpen ? parseUsd(String(tag.amount)) : 0n);
    const next = corrected(rowToSpend(row), Number(tag.key_spent_at_ms), delta);
    this.#sql.setSpend.run(...spendValues(next), keyId);
  }

  // The public methods: Promise.try turns a synchronous throw into a rejection.
  keySpend(keyId: string, nowMs: number): Promise<KeySpend | null> {
    return Promise.try(() => this.#keySpend(keyId, nowMs));
  }

  setKeyCaps(keyId: string, caps: KeyCaps): Promise<boolean> {
    return Promise.try(() => Number(this.#sql.setCaps.run(...capColumns(caps), keyId).changes) > 0);
  }

  topUp(t: NewTopUp, nowMs: number): Promise<TopUpRecord> {
    return Promise.try(() => this.#write(() => this.#topUp(t, nowMs)));
  }

  #keySpend(keyId: string, nowMs: number): KeySpend | null {
    const row = this.#sql.key.get(keyId) as Row | undefined;
    if (!row) return null;
    const held = (this.#sql.held.all(keyId) as { amount: string }[])
      .reduce((sum, h) => sum + parseUsd(h.amount), 0n);
    return spendView({ keyId, userId: String(row.user_id) }, rowToSpend(row), held, nowMs);
  }

  #write<T>(fn: () => T): T {
    return immediate(this.#db, fn);
  }

  #topUp(t: NewTopUp, nowMs: number): TopUpRecord {
    const { id, credit } = checkTopUp(t);
    const booked = this.#sql.credit.get(id) as Row | undefined;
    if (booked) return topUpReplay(booked, t.userId, credit.pico);
    const row = this.#sql.balance.get(t.userId) as { balance: string } | undefined;
    if (!row) throw new StoreNotFoundError("user", t.userId);
    const balance = formatUsd(creditedBalance(t.userId, parseUsd(row.balance), credit.pico));
    this.#sql.setBalance.run(balance, t.userId);
    this.#sql.insertCredit.run(id, t.userId, credit.text, balance, nowMs);
    return rowToTopUp(
      { id, user_id: t.userId, amount: credit.text, balance_after: balance, created_at_ms: nowMs },
      false,
    );
  }
}
