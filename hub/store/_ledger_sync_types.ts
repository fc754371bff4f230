// Ledger sync (issue #5 items 6–8): dispatch records, claims, checkpoints and divergences.
// Reached as `store.ledgerSync` (see mod.ts); SQL lives in _sqlite_/_mysql_ledger_sync.ts.
import type { ChainHead, EntryFields, LedgerEntry } from "../../protocol/chain.ts";
import type { Money } from "../../protocol/money.ts";
import type { Usage } from "../../protocol/usage.ts";

/** Which agent a request was sent to and, once its response reached the client, when. */
export interface DispatchRecord {
  requestId: string;
  agentId: string;
  vendor: string;
  /** The model the client asked for (priced by this name). */
  model: string;
  zone: string;
  dispatchedAtMs: number;
  deliveredAtMs: number | null;
  /** The pricing inputs of the settlement (null until delivered). */
  zoneMultiplier: string | null;
  payoutRatio: string | null;
}

export interface NewDispatch {
  requestId: string;
  agentId: string;
  vendor: string;
  model: string;
  zone: string;
  atMs: number;
}

/** The response reached the client: its dispatch with the settlement's pricing inputs. */
export type DeliveredDispatch = NewDispatch & { zoneMultiplier: string; payoutRatio: string };

/** One write to the dispatch records: a dispatch, or a delivery mark. */
export type DispatchWrite = NewDispatch | DeliveredDispatch;

/** What the hub books for a CLAIM (amounts computed by hub/billing/ledger_sync.ts). */
export interface ClaimSettlement {
  /** The reservation (= request id for gateway requests). */
  reservationId: string;
  /** Entry fields; `userCharge` is replaced by what the policy charges. */
  entry: EntryFields;
  /** Charged to the user only when the dispatch record says the response was delivered. */
  userChargeIfDelivered: Money;
  /** The agent's payout, already capped at the hold. */
  agentPayout: Money;
  usage: Usage;
  /** The pricing inputs, kept on the dispatch record so a catch-up can resend the SETTLED. */
  zoneMultiplier: string;
  payoutRatio: string;
  nowMs: number;
}

export type ClaimOutcome =
  | { outcome: "settled"; entry: LedgerEntry; delivered: boolean }
  | { outcome: "replay"; entry: LedgerEntry | null; reason: string }
  | { outcome: "rejected"; reason: string };

export interface ClaimRecord {
  requestId: string;
  agentId: string;
  outcome: "settled" | "rejected";
  reason: string;
  seq: number | null;
  createdAtMs: number;
}

export interface CheckpointRecord extends ChainHead {
  /** The note signed by agent and hub (protocol/chain.ts). */
  note: string;
  createdAtMs: number;
}

export interface DivergenceRecord {
  agentId: string;
  /** The first seq where the two ledgers (or a ledger and its own hashes) disagree. */
  seq: number;
  /** e.g. `hash_mismatch`, `hub_entry_corrupt`, `agent_ahead`, `below_checkpoint`. */
  kind: string;
  detail: string;
  hubHash: string | null;
  agentHash: string | null;
  detectedAtMs: number;
}

export interface LedgerSyncStore {
  /**
   * Applies `writes` in order, in one transaction (the gateway group-commits them: two per
   * request). A dispatch notes that `requestId` was sent to `agentId` (idempotent; keeps the
   * first time); a delivery mark says the response reached the client and stores the
   * settlement's pricing inputs (creating the row when the dispatch has not landed yet).
   */
  writeDispatches(writes: readonly DispatchWrite[]): Promise<void>;
  /** `writeDispatches([d])` for one dispatch. */
  recordDispatch(d: NewDispatch): Promise<void>;
  /** `writeDispatches([d])` for one delivery mark. */
  markDelivered(d: DeliveredDispatch): Promise<void>;
  dispatches(requestId: string): Promise<DispatchRecord[]>;
  /** Pricing inputs per request id for these entries (catch-up resends SETTLED). */
  pricingInputs(
    agentId: string,
    requestIds: readonly string[],
  ): Promise<Map<string, { zoneMultiplier: string; payoutRatio: string }>>;
  /**
   * Settles a CLAIM in one transaction, once: `rejected` unless the request was dispatched to
   * `entry.agentId` and has a reservation; `replay` if the request already has an entry (nothing
   * changes). Otherwise appends the agent's next entry and three postings summing to zero: the
   * user pays `userChargeIfDelivered` (capped at what the hold and balance cover) only when the
   * dispatch is marked delivered; otherwise the hold (if still held) is released and the
   * platform bears the payout. Every outcome is recorded (`claims`).
   */
  settleClaim(c: ClaimSettlement): Promise<ClaimOutcome>;
  recordClaimRejection(
    r: { requestId: string; agentId: string; reason: string; usage: Usage; nowMs: number },
  ): Promise<void>;
  claims(agentId: string, limit: number): Promise<ClaimRecord[]>;
  /** Stores a mutually signed checkpoint (idempotent by agent and seq). */
  addCheckpoint(c: CheckpointRecord): Promise<void>;
  lastCheckpoint(agentId: string): Promise<CheckpointRecord | null>;
  checkpoints(agentId: string, limit: number): Promise<CheckpointRecord[]>;
  /** Records a divergence once per (agent, seq, kind); `true` when it is new. */
  recordDivergence(d: DivergenceRecord): Promise<boolean>;
  /** Newest first; every agent's when `agentId` is omitted. */
  divergences(agentId: string | undefined, limit: number): Promise<DivergenceRecord[]>;
}
