/**
 * A token bucket with multi-unit takes and debt: `capacity` units, refilled continuously at
 * `refillPerMs`. A take that turns out too small (tokens are estimated before the vendor call
 * and known only after it) is corrected with `adjust`, which may drive the level below zero;
 * nothing more is taken until refill has repaid that debt. Pure: time is always passed in.
 */

/** Result of `TokenBucket.take`. */
export type TakeResult = { ok: true } | { ok: false; retryAfterMs: number };

/** Float slack so that waiting exactly the advertised `retryAfterMs` always succeeds. */
const EPSILON = 1e-9;

export class TokenBucket {
  #capacity: number;
  #refillPerMs: number;
  #level: number;
  /** Time the level was last brought up to date; refill starts here (may lie in the future). */
  #at: number;

  /**
   * @param capacity most units ever held (the burst), > 0
   * @param refillPerMs units added per millisecond, > 0
   * @param nowMs the current time
   * @param initialLevel starting level, `capacity` (full) by default
   */
  constructor(capacity: number, refillPerMs: number, nowMs: number, initialLevel = capacity) {
    checkRate(capacity, refillPerMs);
    this.#capacity = capacity;
    this.#refillPerMs = refillPerMs;
    this.#level = Math.min(initialLevel, capacity);
    this.#at = nowMs;
  }

  /** Most units the bucket holds. */
  get capacity(): number {
    return this.#capacity;
  }

  /** Units added per millisecond. */
  get refillPerMs(): number {
    return this.#refillPerMs;
  }

  /** Current level; negative while in debt. */
  level(nowMs: number): number {
    this.#refill(nowMs);
    return this.#level;
  }

  /**
   * Milliseconds until `units` could be taken (0: now). A take larger than the capacity needs
   * a full bucket and then leaves the bucket in debt, so it is possible, only rarer.
   */
  waitMs(units: number, nowMs: number): number {
    if (!(units >= 0)) throw new RangeError(`units must be >= 0, got ${units}`);
    this.#refill(nowMs);
    const need = Math.min(units, this.#capacity);
    const wait = Math.max(0, this.#at - nowMs); // refill has not started yet (see `hold`)
    if (this.#level + EPSILON >= need) return wait;
    return wait + Math.max(1, Math.ceil((need - this.#level) / this.#refillPerMs));
  }

  /** Takes `units` if they are available now; otherwise says how long to wait. */
  take(units: number, nowMs: number): TakeResult {
    const retryAfterMs = this.waitMs(units, nowMs);
    if (retryAfterMs > 0) return { ok: false, retryAfterMs };
    this.#level -= units;
    return { ok: true };
  }

  /**
   * Corrects an earlier take once the real usage is known: a positive delta takes more (and may
   * leave the bucket in debt), a negative delta gives units back (never above the capacity).
   */
  adjust(deltaUnits: number, nowMs: number): void {
    this.#refill(nowMs);
    this.#level = Math.min(this.#capacity, this.#level - deltaUnits);
  }

  /** Empties the bucket (keeping any debt) and stops refill until `untilMs`: a pause. */
  hold(untilMs: number, nowMs: number): void {
    this.#refill(nowMs);
    this.#level = Math.min(this.#level, 0);
    this.#at = Math.max(this.#at, untilMs);
  }

  /** Changes capacity and rate from now on; the level is kept, clipped to the new capacity. */
  setRate(capacity: number, refillPerMs: number, nowMs: number): void {
    checkRate(capacity, refillPerMs);
    this.#refill(nowMs);
    this.#capacity = capacity;
    this.#refillPerMs = refillPerMs;
    this.#level = Math.min(this.#level, capacity);
  }

  #refill(nowMs: number): void {
    // A clock that steps back refills nothing, and `#at` stays put until time passes it again.
    if (nowMs <= this.#at) return;
    this.#level = Math.min(this.#capacity, this.#level + (nowMs - this.#at) * this.#refillPerMs);
    this.#at = nowMs;
  }
}

function checkRate(capacity: number, refillPerMs: number): void {
  if (!(capacity > 0) || !Number.isFinite(capacity)) {
    throw new RangeError(`capacity must be a positive number, got ${capacity}`);
  }
  if (!(refillPerMs > 0) || !Number.isFinite(refillPerMs)) {
    throw new RangeError(`refillPerMs must be a positive number, got ${refillPerMs}`);
  }
}
