/**
 * Exact sliding-window sum: what was added during the last `windowMs` (entries at or before
 * `now - windowMs` have fallen out). Memory is one entry per `add` still inside the window.
 * Used for the expert-mode hard RPM cap and for the "remaining" figures heartbeats report.
 */
export class SlidingWindowSum {
  #times: number[] = [];
  #amounts: number[] = [];
  #head = 0;
  #sum = 0;

  /** @param windowMs length of the window, e.g. 60 000 for "per minute" */
  constructor(readonly windowMs: number) {
    if (!(windowMs > 0)) throw new RangeError(`windowMs must be > 0, got ${windowMs}`);
  }

  /** Records `amount` (may be negative: a correction) at `nowMs`. */
  add(amount: number, nowMs: number): void {
    this.#prune(nowMs);
    this.#times.push(nowMs);
    this.#amounts.push(amount);
    this.#sum += amount;
  }

  /** Sum of the amounts inside the window ending at `nowMs`. */
  total(nowMs: number): number {
    this.#prune(nowMs);
    return this.#sum;
  }

  /** Number of entries inside the window ending at `nowMs`. */
  count(nowMs: number): number {
    this.#prune(nowMs);
    return this.#times.length - this.#head;
  }

  /** Milliseconds until the oldest entry falls out of the window (0 when empty). */
  nextExpiryMs(nowMs: number): number {
    this.#prune(nowMs);
    const oldest = this.#times[this.#head];
    return oldest === undefined ? 0 : Math.max(1, oldest + this.windowMs - nowMs);
  }

  #prune(nowMs: number): void {
    const edge = nowMs - this.windowMs;
    while (this.#head < this.#times.length && this.#times[this.#head]! <= edge) {
      this.#sum -= this.#amounts[this.#head]!;
      this.#head++;
    }
    if (this.#head === this.#times.length) {
      this.#times = [];
      this.#amounts = [];
      this.#head = 0;
      this.#sum = 0; // also clears float drift
    } else if (this.#head > 1024 && this.#head * 2 > this.#times.length) {
      this.#times = this.#times.slice(this.#head);
      this.#amounts = this.#amounts.slice(this.#head);
      this.#head = 0;
    }
  }
}
