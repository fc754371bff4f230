/**
 * Rate / quota limiting for the hub: one `Limiter` interface, three implementations.
 *
 * - `MemoryLimiter` (memory.ts): one process, injected `Clock`, bounded maps.
 * - `RedisLimiter` (redis.ts): shared by every hub process behind the load balancer; one Lua
 *   script per call, Redis `TIME` as the only clock.
 * - `ResilientLimiter` (resilient.ts): Redis with a local fallback while Redis is down or slow.
 *
 * Algorithm (both stores): a sliding LOG per rule key, one entry (timestamp, units) per charged
 * request. A rule allows a request of `u` units at time `now` iff
 * `sum(units of entries with now - ts < windowMs) + u <= limit`. That is the "at most `limit`
 * units in ANY window of `windowMs`" contract, exactly, with no smoothing: a burst of `limit`
 * is allowed at once and the next unit fits exactly when the oldest entry it needs leaves the
 * window (`retryAfterMs = entry.ts + windowMs - now`). GCRA was rejected: it keeps one
 * theoretical arrival time and refills continuously, so after a burst of N it admits another
 * request after windowMs/N, i.e. N+1 in one window; it cannot be exact for "N per window"
 * together with bursts of N. The log costs one entry per request (never per token), so a
 * 1,000,000 TPM rule holds as many entries as requests were charged in the window.
 */

/** One limit: at most `limit` units per `windowMs` (requests: units = 1; tokens: units = tokens). */
export interface LimitRule {
  /** Store key, e.g. "key:key_abc:rpm". One key should always carry the same limit and window. */
  key: string;
  /** Positive safe integer. */
  limit: number;
  /** Positive integer milliseconds. */
  windowMs: number;
}

/** Units to take from one rule. */
export interface Acquire {
  rule: LimitRule;
  /** Non-negative safe integer. A request for more than `rule.limit` can never fit. */
  units: number;
}

/** Outcome of `Limiter.acquire`. */
export type Decision =
  | { allowed: true; reservation: Reservation }
  | {
    allowed: false;
    /**
     * Milliseconds until this request would fit on every refusing rule, if nothing else is
     * charged meanwhile (the largest over refusing rules). For `units > limit` it is `windowMs`
     * although the request can never fit.
     */
    retryAfterMs: number;
    /** The rule that refused (the one with the largest `retryAfterMs`). */
    rule: LimitRule;
  };

/** Handle for what was taken, to correct it later (token estimates → actual usage) or give it back. */
export interface Reservation {
  readonly id: string;
  readonly parts: readonly Acquire[];
}

/** Result of `Limiter.acquireSlot`. */
export type SlotDecision = { allowed: true; release: () => Promise<void> } | { allowed: false };

/** The hub's limiter. Every implementation passes `limiter_conformance_test.ts`. */
export interface Limiter {
  /** All-or-nothing across several rules (e.g. key RPM + key TPM + channel RPM + channel TPM): either every rule has room and all are charged, or none is charged. */
  acquire(parts: Acquire[]): Promise<Decision>;
  /**
   * Adjusts a reservation after the fact: `actualUnits` per rule key (may be more or less than
   * reserved; never makes a window negative). The entry keeps its original timestamp; if it has
   * already left the window, only an excess over the reserved units is charged, at "now".
   * Keys absent from `actualUnits` are left as they are.
   */
  settle(reservation: Reservation, actualUnits: Record<string, number>): Promise<void>;
  /** Returns everything (request failed before it used anything). Idempotent. */
  release(reservation: Reservation): Promise<void>;
  /**
   * Concurrency slots (e.g. concurrent streams per key): acquire/release counters with a TTL
   * safety net so a crashed hub's slots expire. `ttlMs` must outlive the longest legitimate
   * holder (there is no renewal). `release` is idempotent.
   */
  acquireSlot(key: string, max: number, ttlMs: number): Promise<SlotDecision>;
  readonly kind: "memory" | "redis";
  close(): Promise<void>;
}

/**
 * Validates `parts` and merges parts that name the same rule key (summing units), so a
 * store never checks one key twice within a call. Throws `RangeError` on bad input.
 */
export function normalizeParts(parts: readonly Acquire[]): Acquire[] {
  const byKey = new Map<string, Acquire>();
  for (const p of parts) {
    const { rule, units } = p;
    if (typeof rule.key !== "string" || rule.key === "") {
      throw new RangeError("limit rule key must be a non-empty string");
    }
    if (!Number.isSafeInteger(rule.limit) || rule.limit <= 0) {
      throw new RangeError(`limit must be a positive integer (${rule.key}: ${rule.limit})`);
    }
    if (!Number.isSafeInteger(rule.windowMs) || rule.windowMs <= 0) {
      throw new RangeError(`windowMs must be a positive integer (${rule.key}: ${rule.windowMs})`);
    }
    if (!Number.isSafeInteger(units) || units < 0) {
      throw new RangeError(`units must be a non-negative integer (${rule.key}: ${units})`);
    }
    const seen = byKey.get(rule.key);
    if (!seen) byKey.set(rule.key, { rule, units });
    else if (seen.rule.limit !== rule.limit || seen.rule.windowMs !== rule.windowMs) {
      throw new RangeError(`rule ${rule.key} given twice with different limits`);
    } else byKey.set(rule.key, { rule: seen.rule, units: seen.units + units });
  }
  return [...byKey.values()];
}

/** Units reserved per rule key (after merging duplicates). */
export function reservedByKey(reservation: Reservation): Map<string, number> {
  const m = new Map<string, number>();
  for (const p of reservation.parts) m.set(p.rule.key, (m.get(p.rule.key) ?? 0) + p.units);
  return m;
}

/** Clamps a settled amount: not a number or negative → 0, fractions round up. */
export function clampUnits(n: number | undefined): number {
  return typeof n === "number" && Number.isFinite(n) && n > 0 ? Math.ceil(n) : 0;
}

/** A fresh reservation handle. */
export function newReservation(parts: readonly Acquire[]): Reservation {
  return Object.freeze({ id: crypto.randomUUID(), parts: Object.freeze([...parts]) });
}

/** Validates slot arguments. */
export function checkSlotArgs(key: string, max: number, ttlMs: number): void {
  if (typeof key !== "string" || key === "") throw new RangeError("slot key must be non-empty");
  if (!Number.isSafeInteger(max) || max < 0) throw new RangeError(`slot max must be >= 0: ${max}`);
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw new RangeError(`slot ttlMs: ${ttlMs}`);
}

export { MemoryLimiter, type MemoryLimiterOptions } from "./memory.ts";
export { createRedisClient, RedisLimiter, type RedisLimiterOptions } from "./redis.ts";
export { type FailMode, ResilientLimiter, type ResilientOptions } from "./resilient.ts";
