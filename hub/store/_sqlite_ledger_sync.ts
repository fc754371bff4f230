// Ledger sync on node:sqlite (see _ledger_sync_types.ts). Writes run synchronously inside
// `BEGIN IMMEDIATE`, like _sqlite_billing.ts, so a claim's chain append cannot interleave with a
// settlement on the same connection, and another process waits for the write lock.
import type { SqliteQuotas } from "./_sqlite_quotas.ts";
import { immediate } from "./_sqlite_tx.ts";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { formatUsd } from "../../protocol/money.ts";
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
import type { Usage } from "../../protocol/usage.ts";

export class SqliteLedgerSync implements LedgerSyncStore {
  readonly #insertDispatch: StatementSync;
  readonly #markDelivered: StatementSync;

  /** `keySpend`: claimed charges count against their key's caps like any other settlement. */
  constructor(
    private readonly db: DatabaseSync,
    private readonly keySpend: SqliteQuotas,
  ) {
    // Prepared once: two dispatch writes per gateway request.
    this.#insertDispatch = db.prepare(
      `INSERT INTO ledger_dispatches (${DISPATCH_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (request_id, agent_id) DO NOTHING`,
    );
    this.#markDelivered = db.prepare(
      `INSERT INTO ledger_dispatches (${DISPATCH_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (request_id, agent_id) DO UPDATE SET delivered_at_ms = excluded.delivered_at_ms,
         zone_multiplier = excluded.zone_multiplier, payout_ratio = excluded.payout_ratio`,
    );
  }

  #write<T>(fn: () => T): T {
    return immediate(this.db, fn);
  }

  writeDispatches(writes: readonly DispatchWrite[]): Promise<void> {
    return Promise.try(() => {
      if (writes.length === 0) return;
      this.#write(() => {
        for (const d of writes) {
          if (isDelivered(d)) this.#markDelivered.run(...deliveredValues(d));
          else this.#insertDispatch.run(...dispatchValues(d));
        }
      });
    });
  }

  recordDispatch(d: NewDispatch): Promise<void> {
    return this.writeDispatches([d]);
  }

  markDelivered(d: DeliveredDispatch): Promise<void> {
    return this.writeDispatches([d]);
  }

  dispatches(requestId: string): Promise<DispatchRecord[]> {
    return Promise.try(() => this.#dispatches(requestId));
  }

  #dispatches(requestId: string): DispatchRecord[] {
    return this.db.prepare(
      `SELECT ${DISPATCH_COLUMNS} FROM ledger_dispatches WHERE request_id = ? ORDER BY dispatched_at_ms`,
    ).all(requestId).map((r) => rowToDispatch(r as Row));
  }

  pricingInputs(agentId: string, requestIds: readonly string[]) {
    return Promise.try(() => {
      const out = new Map<string, { zoneMultiplier: string; payoutRatio: string }>();
      const q = this.db.prepare(
        `SELECT zone_multiplier, payout_ratio FROM ledger_dispatches
         WHERE request_id = ? AND agent_id = ? AND zone_multiplier IS NOT NULL`,
      );
      for (const id of requestIds) {
        const r = q.get(id, agentId) as Row | undefined;
        if (r) {
          out.set(id, {
            zoneMultiplier: String(r.zone_multiplier),
            payoutRatio: String(r.payout_ratio),
          });
        }
      }
      return out;
    });
  }

  settleClaim(c: ClaimSettlement): Promise<ClaimOutcome> {
    return Promise.try(() => this.#write(() => this.#settleClaim(c)));
  }

  #settleClaim(c: ClaimSettlement): ClaimOutcome {
    const db = this.db, f = c.entry;
    const booked = db.prepare(`SELECT ${ENTRY_COLUMNS} FROM ledger_entries WHERE request_id = ?`)
      .get(f.requestId) as Row | undefined;
    if (booked) {
      const entry = rowToEntry(booked);
      const mine = entry.agentId === f.agentId;
      return {
        outcome: "replay",
        entry: mine ? entry : null,
        reason: mine ? `already settled as seq ${entry.seq}` : "request settled for another agent",
      };
    }
    const rows = this.#dispatches(f.requestId);
    const problem = dispatchProblem(rows, f.agentId);
    const reject = (reason: string): ClaimOutcome => {
      this.#insertClaim(f.requestId, f.agentId, "rejected", reason, null, c.usage, c.nowMs);
      return { outcome: "rejected", reason };
    };
    if (problem) return reject(problem);
    const held = db.prepare("SELECT user_id, amount, status FROM reservations WHERE id = ?")
      .get(c.reservationId) as Row | undefined;
    if (!held) return reject("unknown request: no reservation");
    const delivered = rows.find((r) => r.agentId === f.agentId)!.deliveredAtMs !== null;
    const userId = String(held.user_id), hold = usd(held.amount);
    const stillHeld = held.status === "held";
    const balanceRow = db.prepare("SELECT balance FROM users WHERE id = ?").get(userId) as Row;
    const balance = usd(balanceRow.balance);
    const available = balance + (stillHeld ? hold : 0n);
    const userCharge = claimUserCharge(delivered, c.userChargeIfDelivered, hold, available);
    const headRow = db.prepare(`SELECT ${HEAD_COLUMNS} FROM ledger_heads WHERE agent_id = ?`)
      .get(f.agentId) as Row | undefined;
    const prev = headRow ? rowToHead(headRow) : null;
    const fields = {
      ...f,
      userCharge: formatUsd(userCharge),
      agentPayout: formatUsd(c.agentPayout),
    };
    const entry = nextEntry(prev, fields);
    db.prepare(ENTRY_INSERT).run(...entryValues(entry, c.reservationId));
    db.prepare(
      "UPDATE ledger_dispatches SET zone_multiplier = ?, payout_ratio = ? WHERE request_id = ? AND agent_id = ?",
    )
      .run(c.zoneMultiplier, c.payoutRatio, f.requestId, f.agentId);
    const head = nextHead(prev, entry), t = head.totals;
    db.prepare(
      `INSERT INTO ledger_heads (${HEAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (agent_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
         official = excluded.official, user_charge = excluded.user_charge,
         agent_payout = excluded.agent_payout`,
    ).run(head.agentId, head.seq, head.hash, t.official, t.userCharge, t.agentPayout);
    const settlement = {
      reservationId: c.reservationId,
      entry: fields,
      userCharge,
      agentPayout: c.agentPayout,
    };
    const posting = db.prepare(`INSERT INTO postings (${POSTING_COLUMNS}) VALUES (?, ?, ?, ?, ?)`);
    for (const [account, accountId, amount] of postingsFor(userId, settlement)) {
      posting.run(entry.requestId, account, accountId, formatUsd(amount), entry.settledAtMs);
    }
    db.prepare("UPDATE users SET balance = ? WHERE id = ?")
      .run(formatUsd(available - userCharge), userId);
    // The key's spend counters follow the charge (a hold already given back adds it whole).
    this.keySpend.close(c.reservationId, userCharge, stillHeld);
    if (stillHeld) {
      db.prepare(
        "UPDATE reservations SET status = ?, closed_at_ms = ?, request_id = ? WHERE id = ?",
      ).run(
        delivered ? "settled" : "released",
        c.nowMs,
        delivered ? entry.requestId : null,
        c.reservationId,
      );
    }
    const reason = delivered ? "settled: response delivered" : "settled: not delivered";
    this.#insertClaim(f.requestId, f.agentId, "settled", reason, entry.seq, c.usage, c.nowMs);
    return { outcome: "settled", entry, delivered };
  }

  #insertClaim(
    requestId: string,
    agentId: string,
    outcome: string,
    reason: string,
    seq: number | null,
    usage: Usage,
    nowMs: number,
  ): void {
    this.db.prepare(`INSERT INTO ledger_claims (${CLAIM_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`)
      .run(requestId, agentId, outcome, reason.slice(0, 500), seq, usageJson(usage), nowMs);
  }

  recordClaimRejection(
    r: { requestId: string; agentId: string; reason: string; usage: Usage; nowMs: number },
  ): Promise<void> {
    return Promise.try(() =>
      this.#insertClaim(r.requestId, r.agentId, "rejected", r.reason, null, r.usage, r.nowMs)
    );
  }

  claims(agentId: string, limit: number): Promise<ClaimRecord[]> {
    return Promise.try(() =>
      this.db.prepare(
        `SELECT ${CLAIM_COLUMNS} FROM ledger_claims WHERE agent_id = ?
         ORDER BY created_at_ms DESC, rowid DESC LIMIT ?`,
      ).all(agentId, Math.min(limit, SYNC_PAGE_MAX)).map((r) => rowToClaim(r as Row))
    );
  }

  addCheckpoint(c: CheckpointRecord): Promise<void> {
    return Promise.try(() => {
      this.db.prepare(
        `INSERT INTO ledger_checkpoints (${CHECKPOINT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (agent_id, seq) DO NOTHING`,
      ).run(...checkpointValues(c));
    });
  }

  lastCheckpoint(agentId: string): Promise<CheckpointRecord | null> {
    return Promise.try(() => {
      const r = this.db.prepare(
        `SELECT ${CHECKPOINT_COLUMNS} FROM ledger_checkpoints WHERE agent_id = ?
         ORDER BY seq DESC LIMIT 1`,
      ).get(agentId) as Row | undefined;
      return r ? rowToCheckpoint(r) : null;
    });
  }

  checkpoints(agentId: string, limit: number): Promise<CheckpointRecord[]> {
    return Promise.try(() =>
      this.db.prepare(
        `SELECT ${CHECKPOINT_COLUMNS} FROM ledger_checkpoints WHERE agent_id = ?
         ORDER BY seq DESC LIMIT ?`,
      ).all(agentId, Math.min(limit, SYNC_PAGE_MAX)).map((r) => rowToCheckpoint(r as Row))
    );
  }

  recordDivergence(d: DivergenceRecord): Promise<boolean> {
    return Promise.try(() => {
      const res = this.db.prepare(
        `INSERT INTO ledger_divergences (${DIVERGENCE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (agent_id, seq, kind) DO NOTHING`,
      ).run(...divergenceValues(d));
      return Number(res.changes) > 0;
    });
  }

  divergences(agentId: string | undefined, limit: number): Promise<DivergenceRecord[]> {
    return Promise.try(() => {
      const max = Math.min(limit, SYNC_PAGE_MAX);
      const rows = agentId
        ? this.db.prepare(
          `SELECT ${DIVERGENCE_COLUMNS} FROM ledger_divergences WHERE agent_id = ?
           ORDER BY detected_at_ms DESC, seq LIMIT ?`,
        ).all(agentId, max)
        : this.db.prepare(
          `SELECT ${DIVERGENCE_COLUMNS} FROM ledger_divergences
           ORDER BY detected_at_ms DESC, seq LIMIT ?`,
        ).all(max);
      return rows.map((r) => rowToDivergence(r as Row));
    });
  }
}
