/**
 * Group commit: items handed to `add` while a batch is being written wait and are written
 * together in the next batch (one transaction, one disk sync for the lot); an item that finds
 * nothing in flight goes at once, so a lone item costs one write, as without batching. Each
 * caller's promise settles with its OWN outcome, and only after its batch's write returned —
 * i.e. once it is durable, for a durable `write`.
 *
 * Used by the hub's settlements (hub/billing/settle_batcher.ts) and the agent's ledger appends
 * (agent/ledger/mod.ts).
 * @module
 */

export interface GroupCommitOptions {
  /** Items per batch at most. */
  batchMax: number;
  /** Batches being written at the same time; 1 (the default) keeps batches in order. */
  inFlightMax?: number;
  /**
   * Before writing a batch, yield to the event loop (one macrotask at a time) for as long as the
   * queue keeps growing. For producers that feed items one after another from a local queue and
   * whose write blocks the event loop (a synchronous fsync): without it each batch would hold only
   * what queued up before the previous write blocked. Costs a lone item one macrotask.
   */
  gather?: boolean;
}

/**
 * Writes a batch: one outcome per item, in order — its result, or the Error that refused it
 * alone. Throwing means the whole batch failed (each of its callers gets that error).
 */
export type BatchWrite<I, O> = (items: I[]) => Promise<(O | Error)[]>;

interface Waiting<I, O> {
  item: I;
  resolve(out: O): void;
  reject(error: unknown): void;
}

export class GroupCommit<I, O> {
  readonly #queue: Waiting<I, O>[] = [];
  #inFlight = 0;
  #idle = Promise.withResolvers<void>();

  constructor(readonly write: BatchWrite<I, O>, readonly options: GroupCommitOptions) {
    this.#idle.resolve();
  }

  add(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      if (this.#inFlight === 0 && this.#queue.length === 0) this.#idle = Promise.withResolvers();
      this.#queue.push({ item, resolve, reject });
      this.#pump();
    });
  }

  /** Items waiting for a batch (not yet handed to `write`). */
  get queued(): number {
    return this.#queue.length;
  }

  /** Resolves once everything added so far has been written (or refused). */
  idle(): Promise<void> {
    return this.#idle.promise;
  }

  #pump(): void {
    while (this.#inFlight < (this.options.inFlightMax ?? 1) && this.#queue.length > 0) {
      this.#inFlight++;
      const take = () => this.#queue.splice(0, this.options.batchMax);
      const written = this.options.gather
        ? this.#gathered().then(() => this.#commit(take()))
        : this.#commit(take());
      written.finally(() => {
        this.#inFlight--;
        this.#pump();
        if (this.#inFlight === 0 && this.#queue.length === 0) this.#idle.resolve();
      });
      if (this.options.gather) return; // the gathering flight takes what comes meanwhile
    }
  }

  async #gathered(): Promise<void> {
    for (let seen = -1; seen < this.#queue.length && this.#queue.length < this.options.batchMax;) {
      seen = this.#queue.length;
      await new Promise((r) => setTimeout(r, 0));
    }
  }

  async #commit(batch: Waiting<I, O>[]): Promise<void> {
    if (batch.length === 0) return;
    try {
      const outcomes = await this.write(batch.map((w) => w.item));
      batch.forEach((w, i) => {
        const o = outcomes[i];
        if (o instanceof Error) w.reject(o);
        else if (i < outcomes.length) w.resolve(o as O);
        else w.reject(new Error(`batch write returned no outcome for item ${i}`));
      });
    } catch (e) {
      // Nothing of the batch was written (e.g. the database is down): each caller learns why.
      for (const w of batch) w.reject(e);
    }
  }
}
