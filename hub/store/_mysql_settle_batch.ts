// `settleMany` on MySQL/MariaDB: one READ COMMITTED transaction per batch (one redo-log flush at
// COMMIT under innodb_flush_log_at_trx_commit=1), a fixed number of round trips whatever the
// batch size. Row locks are taken in `settle`'s order — reservations, users, agents — each set
// in ascending id order, so a batch and single settlements (or another hub's batch) wait for one
// another instead of deadlocking; InnoDB's deadlock victim is retried as in _mysql_billing.ts.
//
// Another hub may book one of the batch's request ids between our read and our INSERT (a unique
// key collision, ER_DUP_ENTRY): the whole transaction rolls back and each item then goes through
// the single `settle`, which resolves exactly that race.
import { mysqlCode, readCommitted } from "./_mysql_tx.ts";
import type { Pool, PoolConnection, RowDataPacket } from "mysql2/promise";
import type { LedgerEntry } from "../../protocol/chain.ts";
import { formatUsd, parseUsd } from "../../protocol/money.ts";
import {
  ENTRY_COLUMNS,
  entryValues,
  HEAD_COLUMNS,
  POSTING_COLUMNS,
  RESERVATION_COLUMNS,
  type Row,
  rowToHead,
} from "./_billing.ts";
import type { Settlement, SettleOutcome } from "./_billing_types.ts";
import {
  batchKeys,
  planSettlements,
  type SettlePlan,
  type SettleSnapshot,
} from "./_settle_batch.ts";
import { closeKeySpendMany } from "./_mysql_quotas.ts";

const DEC = "CAST(? AS DECIMAL(38,12))";
const marks = (n: number, one = "?") => Array(n).fill(one).join(", ");

export class MysqlSettleBatch {
  constructor(
    private readonly pool: Pool,
    /** The single settlement, for the rare batch that collides with another hub's booking. */
    private readonly settleOne: (s: Settlement) => Promise<LedgerEntry>,
  ) {}

  async settleMany(settlements: readonly Settlement[]): Promise<SettleOutcome[]> {
    if (settlements.length === 0) return [];
    try {
      return await this.#tx(async (c) => {
        const plan = planSettlements(settlements, await snapshot(c, settlements));
        await write(c, plan);
        return plan.outcomes;
      });
    } catch (e) {
      if (mysqlCode(e) !== "ER_DUP_ENTRY") throw e;
      const out: SettleOutcome[] = [];
      for (const s of settlements) out.push(await this.settleOne(s).catch((err) => err as Error));
      return out;
    }
  }

  #tx<T>(fn: (c: PoolConnection) => Promise<T>): Promise<T> {
    return readCommitted(this.pool, fn);
  }
}

/** Variable-length statements go through `query` (client-side placeholders): no per-size prepare. */
async function rows(c: PoolConnection, sql: string, params: unknown[]): Promise<Row[]> {
  if (params.length === 0) return [];
  const [out] = await c.query<RowDataPacket[]>(sql, params);
  return out as Row[];
}

async function snapshot(
  c: PoolConnection,
  settlements: readonly Settlement[],
): Promise<SettleSnapshot> {
  const { reservationIds, requestIds, agentIds } = batchKeys(settlements);
  const snap: SettleSnapshot = {
    reservations: new Map(),
    entries: new Map(),
    balances: new Map(),
    agents: new Set(),
    heads: new Map(),
  };
  for (
    const r of await rows(
      c,
      `SELECT ${RESERVATION_COLUMNS} FROM reservations WHERE id IN (${marks(reservationIds.length)})
       ORDER BY id FOR UPDATE`,
      reservationIds,
    )
  ) snap.reservations.set(String(r.id), r);
  // After the reservation locks: a settle of one of them that was committing is visible now.
  for (
    const r of await rows(
      c,
      `SELECT ${ENTRY_COLUMNS} FROM ledger_entries WHERE request_id IN (${
        marks(requestIds.length)
      })`,
      requestIds,
    )
  ) snap.entries.set(String(r.request_id), r);
  const userIds = [...new Set([...snap.reservations.values()].map((r) => String(r.user_id)))]
    .sort();
  for (
    const r of await rows(
      c,
      `SELECT id, balance FROM users WHERE id IN (${marks(userIds.length)}) ORDER BY id FOR UPDATE`,
      userIds,
    )
  ) snap.balances.set(String(r.id), parseUsd(String(r.balance)));
  for (
    const r of await rows(
      c,
      `SELECT id FROM agents WHERE id IN (${marks(agentIds.length)}) ORDER BY id FOR UPDATE`,
      agentIds,
    )
  ) snap.agents.add(String(r.id));
  for (
    const r of await rows(
      c,
      `SELECT ${HEAD_COLUMNS} FROM ledger_heads WHERE agent_id IN (${marks(agentIds.length)})`,
      agentIds,
    )
  ) snap.heads.set(String(r.agent_id), rowToHead(r));
  return snap;
}

async function write(c: PoolConnection, plan: SettlePlan): Promise<void> {
  if (plan.entries.length === 0) return;
  const entryCols = ENTRY_COLUMNS.split(", ").length;
  await c.query(
    `INSERT INTO ledger_entries (${ENTRY_COLUMNS}) VALUES ${
      marks(plan.entries.length, `(${marks(entryCols)})`)
    }`,
    plan.entries.flatMap(({ entry, reservationId }) => entryValues(entry, reservationId)),
  );
  await c.query(
    `INSERT INTO ledger_heads (${HEAD_COLUMNS}) VALUES ${
      marks(plan.heads.length, `(?, ?, ?, ${DEC}, ${DEC}, ${DEC})`)
    }
     ON DUPLICATE KEY UPDATE seq = VALUES(seq), hash = VALUES(hash), official = VALUES(official),
       user_charge = VALUES(user_charge), agent_payout = VALUES(agent_payout)`,
    plan.heads.flatMap(({ head: h }) => [
      h.agentId,
      h.seq,
      h.hash,
      h.totals.official,
      h.totals.userCharge,
      h.totals.agentPayout,
    ]),
  );
  await c.query(
    `INSERT INTO postings (${POSTING_COLUMNS}) VALUES ${
      marks(plan.postings.length, `(?, ?, ?, ${DEC}, ?)`)
    }`,
    plan.postings.flatMap(([requestId, account, accountId, amount, atMs]) => [
      requestId,
      account,
      accountId,
      formatUsd(amount),
      atMs,
    ]),
  );
  // Absolute balances: the rows are locked FOR UPDATE since the snapshot read them.
  await c.query(
    `UPDATE users SET balance = CASE id ${
      plan.balances.map(() => `WHEN ? THEN ${DEC}`).join(" ")
    } END WHERE id IN (${marks(plan.balances.length)})`,
    [
      ...plan.balances.flatMap(({ userId, balance }) => [userId, formatUsd(balance)]),
      ...plan.balances.map((b) => b.userId),
    ],
  );
  // Key spend caps: each hold's key spend becomes the real charge (users are locked already).
  await closeKeySpendMany(
    c,
    plan.entries.map(({ entry, reservationId }) => ({
      reservationId,
      charge: parseUsd(entry.userCharge),
    })),
  );
  const closing = plan.entries.map(({ entry, reservationId }) => ({
    id: reservationId,
    atMs: entry.settledAtMs,
    requestId: entry.requestId,
  }));
  await c.query(
    `UPDATE reservations SET status = 'settled',
       closed_at_ms = CASE id ${closing.map(() => "WHEN ? THEN ?").join(" ")} END,
       request_id = CASE id ${closing.map(() => "WHEN ? THEN ?").join(" ")} END
     WHERE id IN (${marks(closing.length)})`,
    [
      ...closing.flatMap((r) => [r.id, r.atMs]),
      ...closing.flatMap((r) => [r.id, r.requestId]),
      ...closing.map((r) => r.id),
    ],
  );
}
