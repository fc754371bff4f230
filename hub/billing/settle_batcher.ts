/**
 * Group commit for settlements (runtime/group_commit.ts over `store.settleMany`). `settle` calls
 * that arrive while a batch is committing wait and go together in the next one (one transaction,
 * one disk sync); a call that finds nothing in flight goes at once, so a lone settlement costs one
 * commit, as before.
 *
 * Unlike usage records (hub/billing/usage_writer.ts), nobody is told "settled" before it is
 * durable: each caller's promise resolves with its own entry — or rejects with its own error,
 * exactly what `store.settle` would have thrown — only after its batch has committed.
 * @module
 */
import type { LedgerEntry } from "../../protocol/chain.ts";
import { GroupCommit, type GroupCommitOptions } from "../../runtime/group_commit.ts";
import type { BillingStore, Settlement } from "../store/mod.ts";

/** Concurrent requests settle independently: what queued during the last commit is the batch. */
export const SETTLE_BATCHER_DEFAULTS: Required<GroupCommitOptions> = {
  batchMax: 256,
  inFlightMax: 1,
  gather: false,
};

export class SettleBatcher {
  readonly #group: GroupCommit<Settlement, LedgerEntry>;

  constructor(
    readonly store: Pick<BillingStore, "settleMany">,
    options: GroupCommitOptions = SETTLE_BATCHER_DEFAULTS,
  ) {
    this.#group = new GroupCommit((batch) => store.settleMany(batch), options);
  }

  /** `store.settle(settlement)`, committed together with whatever else is waiting. */
  settle(settlement: Settlement): Promise<LedgerEntry> {
    return this.#group.add(settlement);
  }

  /** Settlements waiting for a batch (not yet sent to the store). */
  get queued(): number {
    return this.#group.queued;
  }

  /** Resolves once every settlement handed in so far has committed or failed. */
  idle(): Promise<void> {
    return this.#group.idle();
  }
}
