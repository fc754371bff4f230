// Ledger sync on MySQL/MariaDB (see _ledger_sync_types.ts). A claim takes its row locks in the
// same order as `settle` (_mysql_billing.ts): reservation, user, agent — so the two cannot
// deadlock, and the agent row lock keeps its chain gapless.
import { mysqlCode, readCommitted } from "./_mysql_tx.ts";
import type { Pool, PoolConnection, RowDataPacket } from "mysql2/promise";
import { formatUsd } from "../../protocol/money.ts";
import type { Usage } from "../../protocol/usage.ts";
import { closeKeySpend } from "./_mysql_quotas.ts";
import {
  ENTRY_COLUMNS,
  ENTRY_INSERT,
  entryValues,
  HEAD_COLUMNS,
  nextEntry,
  nextHead,
  POSTING_COLUMNS,
  postingsFor,
  type Row,
  rowToEntry,
  rowToHead,
} from "./_billing.ts";
import {
  CHECKPOINT_COLUMNS,
  checkpointValues,
  CLAIM_COLUMNS,
  claimUserCharge,
  deliveredValues,
  DISPATCH_COLUMNS,
  DISPATCH_INSERT_COLUMNS,
  dispatchProblem,
  dispatchValues,
  DIVERGENCE_COLUMNS,
  divergenceValues,
  isDelivered,
  rowToCheckpoint,
  rowToClaim,
  rowToDispatch,
  rowToDivergence,
  SYNC_PAGE_MAX,
  usageJson,
  usd,
} from "./_ledger_sync.ts";
import type {
  CheckpointRecord,
  ClaimOutcome,
  ClaimRecord,
  ClaimSettlement,
  DeliveredDispatch,
  DispatchRecord,
  DispatchWrite,
  DivergenceRecord,
  LedgerSyncStore,
  NewDispatch,
} from "./_ledger_sync_types.ts";

type Db = Pool | PoolConnection;
const DEC = "CAST(? AS DECIMAL(38,12))";

async function rows(db: Db, sql: string, params: unknown[]): Promise<Row[]> {
  const [out] = await db.query<RowDataPacket[]>(sql, params);
  return out as Row[];
}

export class MysqlLedgerSync implements LedgerSyncStore {
  constructor(private readonly pool: Pool) {}

  #tx<T>(fn: (c: PoolConnection) => Promise<T>): Promise<T> {
    return readCommitted(this.pool, fn);
  }

  async writeDispatches(writes: readonly DispatchWrite[]): Promise<void> {
    if (writes.length === 0) return;
    // Rows locked in one order (request, agent), so two hubs' batches wait instead of deadlocking;
    // a dispatch's own mark comes after it in every batch, so dispatches go first.
    const byKey = (a: NewDispatch, b: NewDispatch) =>
      a.requestId === b.requestId
        ? a.agentId < b.agentId ? -1 : a.agentId > b.agentId ? 1 : 0
        : a.requestId < b.requestId
        ? -1
        : 1;
    const sent = writes.filter((d) => !isDelivered(d)).toSorted(byKey);
    const delivered = writes.filter(isDelivered).toSorted(byKey);
    await this.#tx(async (c) => {
      if (sent.length > 0) {
        await c.execute(
          `INSERT IGNORE INTO ledger_dispatches (${DISPATCH_INSERT_COLUMNS}) VALUES ${
            sent.map(() => "(?, ?, ?, ?, ?, ?)").join(", ")
          }`,
          sent.flatMap(dispatchValues),
        );
      }
      if (delivered.length > 0) {
        await c.execute(
          `INSERT INTO ledger_dispatches (${DISPATCH_COLUMNS}) VALUES ${
            delivered.map(() => "(?, ?, ?, ?, ?, ?, ?, ?, ?)").join(", ")
          } ON DUPLICATE KEY UPDATE delivered_at_ms = VALUES(delivered_at_ms),
            zone_multiplier = VALUES(zone_multiplier), payout_ratio = VALUES(payout_ratio)`,
          delivered.flatMap(deliveredValues),
        );
      }
    });
  }

  recordDispatch(d: NewDispatch): Promise<void> {
    return this.writeDispatches([d]);
  }

  markDelivered(d: DeliveredDispatch): Promise<void> {
    return this.writeDispatches([d]);
  }

  async dispatches(requestId: string, db: Db = this.pool): Promise<DispatchRecord[]> {
    return (await rows(
      db,
      `SELECT ${DISPATCH_COLUMNS} FROM ledger_dispatches WHERE request_id = ?
       ORDER BY dispatched_at_ms`,
      [requestId],
    )).map(rowToDispatch);
  }

  async pricingInputs(agentId: string, requestIds: readonly string[]) {
    const out = new Map<string, { zoneMultiplier: string; payoutRatio: string }>();
    if (requestIds.length === 0) return out;
    const found = await rows(
      this.pool,
      `SELECT request_id, zone_multiplier, payout_ratio FROM ledger_dispatches
       WHERE agent_id = ? AND zone_multiplier IS NOT NULL AND request_id IN (?)`,
      [agentId, requestIds],
    );
    for (const r of found) {
      out.set(String(r.request_id), {
        zoneMultiplier: String(r.zone_multiplier),
        payoutRatio: String(r.payout_ratio),
      });
    }
    return out;
  }

  async settleClaim(c: ClaimSettlement): Promise<ClaimOutcome> {
    try {
      return await this.#tx((conn) => this.#settleClaim(conn, c));
    } catch (e) {
      // A concurrent settle/claim booked the request first: report it as a replay.
      if (mysqlCode(e) !== "ER_DUP_ENTRY") throw e;
      const [row] = await rows(
        this.pool,
        `SELECT ${ENTRY_COLUMNS} FROM ledger_entries WHERE request_id = ?`,
        [c.entry.requestId],
      );
      if (!row) throw e;
      const entry = rowToEntry(row);
      return { outcome: "replay", entry, reason: `already settled as seq ${entry.seq}` };
    }
  }

  async #settleClaim(conn: PoolConnection, c: ClaimSettlement): Promise<ClaimOutcome> {
    const f = c.entry;
    const reject = async (reason: string): Promise<ClaimOutcome> => {
      await this.#insertClaim(conn, f.requestId, f.agentId, "rejected", reason, null, c.usage, c);
      return { outcome: "rejected", reason };
    };
    const [held] = await rows(
      conn,
      "SELECT user_id, amount, status FROM reservations WHERE id = ? FOR UPDATE",
      [c.reservationId],
    );
    const [booked] = await rows(
      conn,
      `SELECT ${ENTRY_COLUMNS} FROM ledger_entries WHERE request_id = ?`,
      [f.requestId],
    );
    if (booked) {
      const entry = rowToEntry(booked);
      const mine = entry.agentId === f.agentId;
      return {
        outcome: "replay",
        entry: mine ? entry : null,
        reason: mine ? `already settled as seq ${entry.seq}` : "request settled for another agent",
      };
    }
    const dispatched = await this.dispatches(f.requestId, conn);
    const problem = dispatchProblem(dispatched, f.agentId);
    if (problem) return await reject(problem);
    if (!held) return await reject("unknown request: no reservation");
    const delivered = dispatched.find((r) => r.agentId === f.agentId)!.deliveredAtMs !== null;
    const userId = String(held.user_id), hold = usd(held.amount);
    const stillHeld = held.status === "held";
    const [user] = await rows(conn, "SELECT balance FROM users WHERE id = ? FOR UPDATE", [userId]);
    const balance = usd(user!.balance);
    const available = balance + (stillHeld ? hold : 0n);
    const userCharge = claimUserCharge(delivered, c.userChargeIfDelivered, hold, available);
    await rows(conn, "SELECT id FROM agents WHERE id = ? FOR UPDATE", [f.agentId]);
    const [last] = await rows(
      conn,
      `SELECT ${ENTRY_COLUMNS} FROM ledger_entries WHERE agent_id = ? ORDER BY seq DESC LIMIT 1`,
      [f.agentId],
    );
    const fields = {
      ...f,
      userCharge: formatUsd(userCharge),
      agentPayout: formatUsd(c.agentPayout),
    };
    const entry = nextEntry(last ? rowToEntry(last) : null, fields);
    await conn.execute(ENTRY_INSERT, entryValues(entry, c.reservationId));
    await conn.execute(
      "UPDATE ledger_dispatches SET zone_multiplier = ?, payout_ratio = ? WHERE request_id = ? AND agent_id = ?",
      [c.zoneMultiplier, c.payoutRatio, f.requestId, f.agentId],
    );
    const [headRow] = await rows(
      conn,
      `SELECT ${HEAD_COLUMNS} FROM ledger_heads WHERE agent_id = ?`,
      [f.agentId],
    );
    const head = nextHead(headRow ? rowToHead(headRow) : null, entry), t = head.totals;
    const headValues = [head.seq, head.hash, t.official, t.userCharge, t.agentPayout];
    await conn.execute(
      `INSERT INTO ledger_heads (${HEAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)
       ON DUPLICATE KEY UPDATE seq = ?, hash = ?, official = ?, user_charge = ?, agent_payout = ?`,
      [head.agentId, ...headValues, ...headValues],
    );
    const settlement = {
      reservationId: c.reservationId,
      entry: fields,
      userCharge,
      agentPayout: c.agentPayout,
    };
    for (const [account, accountId, amount] of postingsFor(userId, settlement)) {
      await conn.execute(
        `INSERT INTO postings (${POSTING_COLUMNS}) VALUES (?, ?, ?, ${DEC}, ?)`,
        [entry.requestId, account, accountId, formatUsd(amount), entry.settledAtMs],
      );
    }
    await conn.execute(`UPDATE users SET balance = ${DEC} WHERE id = ?`, [
      formatUsd(available - userCharge),
      userId,
    ]);
    // The key's spend counters follow the charge (a hold already given back adds it whole).
    await closeKeySpend(conn, c.reservationId, userCharge, stillHeld);
    if (stillHeld) {
      await conn.execute(
        "UPDATE reservations SET status = ?, closed_at_ms = ?, request_id = ? WHERE id = ?",
        [
          delivered ? "settled" : "released",
          c.nowMs,
          delivered ? entry.requestId : null,
          c.reservationId,
        ],
      );
    }
    const reason = delivered ? "settled: response delivered" : "settled: not delivered";
    await this.#insertClaim(conn, f.requestId, f.agentId, "settled", reason, entry.seq, c.usage, c);
    return { outcome: "settled", entry, delivered };
  }

  async #insertClaim(
    db: Db,
    requestId: string,
    agentId: string,
    outcome: string,
    reason: string,
    seq: number | null,
    usage: Usage,
    at: { nowMs: number },
  ): Promise<void> {
    await db.execute(
      `INSERT INTO ledger_claims (${CLAIM_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      [requestId, agentId, outcome, reason.slice(0, 500), seq, usageJson(usage), at.nowMs],
    );
  }

  recordClaimRejection(
    r: { requestId: string; agentId: string; reason: string; usage: Usage; nowMs: number },
  ): Promise<void> {
    return this.#insertClaim(
      this.pool,
      r.requestId,
      r.agentId,
      "rejected",
      r.reason,
      null,
      r.usage,
      r,
    );
  }

  async claims(agentId: string, limit: number): Promise<ClaimRecord[]> {
    return (await rows(
      this.pool,
      `SELECT ${CLAIM_COLUMNS} FROM ledger_claims WHERE agent_id = ?
       ORDER BY created_at_ms DESC, id DESC LIMIT ?`,
      [agentId, Math.min(limit, SYNC_PAGE_MAX)],
    )).map(rowToClaim);
  }

  async addCheckpoint(c: CheckpointRecord): Promise<void> {
    await this.pool.execute(
      `INSERT IGNORE INTO ledger_checkpoints (${CHECKPOINT_COLUMNS})
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      checkpointValues(c),
    );
  }

  async lastCheckpoint(agentId: string): Promise<CheckpointRecord | null> {
    const [r] = await rows(
      this.pool,
      `SELECT ${CHECKPOINT_COLUMNS} FROM ledger_checkpoints WHERE agent_id = ?
       ORDER BY seq DESC LIMIT 1`,
      [agentId],
    );
    return r ? rowToCheckpoint(r) : null;
  }

  async checkpoints(agentId: string, limit: number): Promise<CheckpointRecord[]> {
    return (await rows(
      this.pool,
      `SELECT ${CHECKPOINT_COLUMNS} FROM ledger_checkpoints WHERE agent_id = ?
       ORDER BY seq DESC LIMIT ?`,
      [agentId, Math.min(limit, SYNC_PAGE_MAX)],
    )).map(rowToCheckpoint);
  }

  async recordDivergence(d: DivergenceRecord): Promise<boolean> {
    const [res] = await this.pool.execute(
      `INSERT IGNORE INTO ledger_divergences (${DIVERGENCE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      divergenceValues(d),
    );
    return (res as { affectedRows: number }).affectedRows > 0;
  }

  async divergences(agentId: string | undefined, limit: number): Promise<DivergenceRecord[]> {
    const max = Math.min(limit, SYNC_PAGE_MAX);
    const found = agentId
      ? await rows(
        this.pool,
        `SELECT ${DIVERGENCE_COLUMNS} FROM ledger_divergences WHERE agent_id = ?
         ORDER BY detected_at_ms DESC, seq LIMIT ?`,
        [agentId, max],
      )
      : await rows(
        this.pool,
        `SELECT ${DIVERGENCE_COLUMNS} FROM ledger_divergences
         ORDER BY detected_at_ms DESC, seq LIMIT ?`,
        [max],
      );
    return found.map(rowToDivergence);
  }
}
