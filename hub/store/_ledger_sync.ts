// Ledger sync rows and the claim policy's arithmetic, shared by both engines.
import { type Money, parseUsd } from "../../protocol/money.ts";
import { type Usage, USAGE_FIELDS } from "../../protocol/usage.ts";
import type { Row } from "./_billing.ts";
import type {
  CheckpointRecord,
  ClaimRecord,
  DeliveredDispatch,
  DispatchRecord,
  DispatchWrite,
  DivergenceRecord,
  NewDispatch,
} from "./_ledger_sync_types.ts";

/** A dispatch row's columns before it is delivered. */
export const DISPATCH_INSERT_COLUMNS =
  "request_id, agent_id, vendor, model, zone, dispatched_at_ms";
export const DISPATCH_COLUMNS =
  `${DISPATCH_INSERT_COLUMNS}, delivered_at_ms, zone_multiplier, payout_ratio`;
export const CHECKPOINT_COLUMNS =
  "agent_id, seq, hash, official, user_charge, agent_payout, note, created_at_ms";
export const DIVERGENCE_COLUMNS =
  "agent_id, seq, kind, detail, hub_hash, agent_hash, detected_at_ms";
export const CLAIM_COLUMNS =
  "request_id, agent_id, outcome, reason, seq, usage_json, created_at_ms";
/** The most a listing returns. */
export const SYNC_PAGE_MAX = 1000;

const nullable = (v: unknown) => v === null || v === undefined ? null : v;

export function rowToDispatch(r: Row): DispatchRecord {
  return {
    requestId: String(r.request_id),
    agentId: String(r.agent_id),
    vendor: String(r.vendor),
    model: String(r.model),
    zone: String(r.zone),
    dispatchedAtMs: Number(r.dispatched_at_ms),
    deliveredAtMs: nullable(r.delivered_at_ms) === null ? null : Number(r.delivered_at_ms),
    zoneMultiplier: nullable(r.zone_multiplier) === null ? null : String(r.zone_multiplier),
    payoutRatio: nullable(r.payout_ratio) === null ? null : String(r.payout_ratio),
  };
}

export function rowToCheckpoint(r: Row): CheckpointRecord {
  return {
    agentId: String(r.agent_id),
    seq: Number(r.seq),
    hash: String(r.hash),
    totals: {
      official: String(r.official),
      userCharge: String(r.user_charge),
      agentPayout: String(r.agent_payout),
    },
    note: String(r.note),
    createdAtMs: Number(r.created_at_ms),
  };
}

export function checkpointValues(c: CheckpointRecord): (string | number)[] {
  const t = c.totals;
  return [c.agentId, c.seq, c.hash, t.official, t.userCharge, t.agentPayout, c.note, c.createdAtMs];
}

export function rowToDivergence(r: Row): DivergenceRecord {
  return {
    agentId: String(r.agent_id),
    seq: Number(r.seq),
    kind: String(r.kind),
    detail: String(r.detail),
    hubHash: nullable(r.hub_hash) === null ? null : String(r.hub_hash),
    agentHash: nullable(r.agent_hash) === null ? null : String(r.agent_hash),
    detectedAtMs: Number(r.detected_at_ms),
  };
}

export function divergenceValues(d: DivergenceRecord): (string | number | null)[] {
  return [
    d.agentId,
    d.seq,
    d.kind.slice(0, 40),
    d.detail.slice(0, 500),
    d.hubHash,
    d.agentHash,
    d.detectedAtMs,
  ];
}

export function rowToClaim(r: Row): ClaimRecord {
  return {
    requestId: String(r.request_id),
    agentId: String(r.agent_id),
    outcome: r.outcome as ClaimRecord["outcome"],
    reason: String(r.reason),
    seq: nullable(r.seq) === null ? null : Number(r.seq),
    createdAtMs: Number(r.created_at_ms),
  };
}

export function usageJson(usage: Usage): string {
  return JSON.stringify(Object.fromEntries(USAGE_FIELDS.map((f) => [f, usage[f] ?? 0])));
}

/** Why a claim for `agentId` cannot be settled against these dispatch rows, or null. */
export function dispatchProblem(rows: readonly DispatchRecord[], agentId: string): string | null {
  if (rows.length === 0) return "unknown request: no dispatch record";
  if (!rows.some((r) => r.agentId === agentId)) return "request was dispatched to another agent";
  return null;
}

/**
 * The claim policy's user side: charged only when delivered, never more than the hold, nor
 * than what the user has (`available` = balance, plus the hold while it is still held).
 */
export function claimUserCharge(
  delivered: boolean,
  wanted: Money,
  hold: Money,
  available: Money,
): Money {
  if (!delivered) return 0n;
  let charge = wanted;
  if (charge > hold) charge = hold;
  if (charge > available) charge = available;
  return charge < 0n ? 0n : charge;
}

export const usd = (v: unknown): Money => parseUsd(String(v));

export const isDelivered = (d: DispatchWrite): d is DeliveredDispatch => "zoneMultiplier" in d;

/** A dispatch's values for `DISPATCH_INSERT_COLUMNS`. */
export const dispatchValues = (d: NewDispatch) =>
  [d.requestId, d.agentId, d.vendor, d.model, d.zone, d.atMs] as const;

/** A delivery mark's values for `DISPATCH_COLUMNS` (delivered when it is written). */
export const deliveredValues = (d: DeliveredDispatch) =>
  [...dispatchValues(d), d.atMs, d.zoneMultiplier, d.payoutRatio] as const;
