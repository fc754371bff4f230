// `settleMany` on node:sqlite: one `BEGIN IMMEDIATE` transaction (one WAL fsync at COMMIT, with
// synchronous=FULL) for the whole batch, run synchronously like every write in _sqlite_billing.ts,
// so no other call on this connection can interleave and another process waits for the lock.
import { immediate } from "./_sqlite_tx.ts";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { formatUsd, parseUsd } from "../../protocol/money.ts";
import {
  ENTRY_COLUMNS,
  ENTRY_INSERT,
  entryValues,
  HEAD_COLUMNS,
  POSTING_COLUMNS,
  RESERVATION_COLUMNS,
  type Row,
  rowToHead,
} from "./_billing.ts";
import type { Settlement, SettleOutcome } from "./_billing_types.ts";
import { batchKeys, planSettlements, type SettleSnapshot } from "./_settle_batch.ts";
import { SqliteQuotas } from "./_sqlite_quotas.ts";

type Sql = Record<
  | "reservation"
  | "entry"
  | "balance"
  | "agent"
  | "head"
  | "insertEntry"
  | "insertHead"
  | "updateHead"
  | "insertPosting"
  | "setBalance"
  | "closeReservation",
  StatementSync
>;

export class SqliteSettleBatch {
  #db: DatabaseSync;
  #sql: Sql;
  /** Corrects each settled hold's key spend to the real charge (see _key_spend.ts). */
  #keySpend: SqliteQuotas;

  constructor(db: DatabaseSync, keySpend: SqliteQuotas) {
    this.#db = db;
    this.#keySpend = keySpend;
    const p = (sql: string) => db.prepare(sql);
    this.#sql = {
      reservation: p(`SELECT ${RESERVATION_COLUMNS} FROM reservations WHERE id = ?`),
      entry: p(`SELECT ${ENTRY_COLUMNS} FROM ledger_entries WHERE request_id = ?`),
      balance: p("SELECT balance FROM users WHERE id = ?"),
      agent: p("SELECT id FROM agents WHERE id = ?"),
      head: p(`SELECT ${HEAD_COLUMNS} FROM ledger_heads WHERE agent_id = ?`),
      insertEntry: p(ENTRY_INSERT),
      insertHead: p(`INSERT INTO ledger_heads (${HEAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)`),
      updateHead: p(
        `UPDATE ledger_heads SET seq = ?, hash = ?, official = ?, user_charge = ?,
         agent_payout = ? WHERE agent_id = ?`,
      ),
      insertPosting: p(`INSERT INTO postings (${POSTING_COLUMNS}) VALUES (?, ?, ?, ?, ?)`),
      setBalance: p("UPDATE users SET balance = ? WHERE id = ?"),
      closeReservation: p(
        "UPDATE reservations SET status = 'settled', closed_at_ms = ?, request_id = ? WHERE id = ?",
      ),
    };
  }

  settleMany(settlements: readonly Settlement[]): SettleOutcome[] {
    if (settlements.length === 0) return [];
    const sql = this.#sql;
    return immediate(this.#db, () => {
      const plan = planSettlements(settlements, this.#snapshot(settlements));
      for (const { entry, reservationId } of plan.entries) {
        sql.insertEntry.run(...entryValues(entry, reservationId));
        this.#keySpend.close(reservationId, parseUsd(entry.userCharge));
        sql.closeReservation.run(entry.settledAtMs, entry.requestId, reservationId);
      }
      for (const { head, isNew } of plan.heads) {
        const { official, userCharge, agentPayout } = head.totals;
        if (isNew) {
          sql.insertHead.run(head.agentId, head.seq, head.hash, official, userCharge, agentPayout);
        } else {
          sql.updateHead.run(head.seq, head.hash, official, userCharge, agentPayout, head.agentId);
        }
      }
      for (const [requestId, account, accountId, amount, atMs] of plan.postings) {
        sql.insertPosting.run(requestId, account, accountId, formatUsd(amount), atMs);
      }
      for (const { userId, balance } of plan.balances) {
        sql.setBalance.run(formatUsd(balance), userId);
      }
      return plan.outcomes;
    });
  }

  #snapshot(settlements: readonly Settlement[]): SettleSnapshot {
    const sql = this.#sql;
    const { reservationIds, requestIds, agentIds } = batchKeys(settlements);
    const snap: SettleSnapshot = {
      reservations: new Map(),
      entries: new Map(),
      balances: new Map(),
      agents: new Set(),
      heads: new Map(),
    };
    for (const id of reservationIds) {
      const row = sql.reservation.get(id) as Row | undefined;
      if (!row) continue;
      snap.reservations.set(id, row);
      const userId = String(row.user_id);
      if (snap.balances.has(userId)) continue;
      const user = sql.balance.get(userId) as { balance: string } | undefined;
      if (user) snap.balances.set(userId, parseUsd(user.balance));
    }
    for (const id of requestIds) {
      const row = sql.entry.get(id) as Row | undefined;
      if (row) snap.entries.set(id, row);
    }
    for (const id of agentIds) {
      if (!sql.agent.get(id)) continue;
      snap.agents.add(id);
      const head = sql.head.get(id) as Row | undefined;
      if (head) snap.heads.set(id, rowToHead(head));
    }
    return snap;
  }
}
