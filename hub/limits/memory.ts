import { type Clock, systemClock } from "../../protocol/clock.ts";
import {
  type Acquire,
  checkSlotArgs,
  clampUnits,
  type Decision,
  type Limiter,
  type LimitRule,
  newReservation,
  normalizeParts,
  type Reservation,
  reservedByKey,
  type SlotDecision,
} from "./mod.ts";

/** Options of `MemoryLimiter`. */
export interface MemoryLimiterOptions {
  /** Time source (`monoMs`); tests pass a fake one. Default: the system clock. */
  clock?: Clock;
  /**
   * At most this many rule keys (and, separately, slot keys) are kept. Idle keys (nothing left
   * in the window) are swept as calls go by; past the cap the least recently used key is
   * dropped even if not idle, which forgets its charges (fails open for that key). Default 100,000.
   */
  maxKeys?: number;
  /**
   * Every rule limit and slot max is scaled by this factor (floored, at least 1). A fallback for
   * N hub processes sharing one budget uses `1 / N`. Default 1.
   */
  limitScale?: number;
}

interface Entry {
  ts: number;
  units: number;
  id: string;
}

/** The sliding log of one rule key: entries in timestamp order, `head` = first live one. */
interface Log {
  entries: Entry[];
  head: number;
  sum: number;
  byId: Map<string, Entry>;
  windowMs: number;
}

/** In-process sliding-log limiter (see mod.ts for the algorithm). Not shared between processes. */
export class MemoryLimiter implements Limiter {
  readonly kind = "memory" as const;
  readonly #clock: Clock;
  readonly #maxKeys: number;
  readonly #scale: number;
  readonly #logs = new Map<string, Log>();
  readonly #slots = new Map<string, Map<string, number>>();

  constructor(opts: MemoryLimiterOptions = {}) {
    this.#clock = opts.clock ?? systemClock;
    this.#maxKeys = opts.maxKeys ?? 100_000;
    this.#scale = opts.limitScale ?? 1;
    if (!(this.#scale > 0)) throw new RangeError("limitScale must be > 0");
  }

  acquire(parts: Acquire[]): Promise<Decision> {
    return new Promise((resolve) => resolve(this.#acquire(parts)));
  }

  #acquire(parts: Acquire[]): Decision {
    const norm = normalizeParts(parts);
    const now = this.#clock.monoMs();
    this.#sweep(now);
    let refused: { rule: LimitRule; retryAfterMs: number } | undefined;
    const logs: Log[] = [];
    for (const { rule, units } of norm) {
      const log = this.#log(rule.key, rule.windowMs, now);
      logs.push(log);
      const limit = this.#scaled(rule.limit);
      if (log.sum + units <= limit) continue;
      const retryAfterMs = units > limit
        ? rule.windowMs
        : retryAfter(log, log.sum + units - limit, now);
      if (!refused || retryAfterMs > refused.retryAfterMs) refused = { rule, retryAfterMs };
    }
    if (refused) return { allowed: false, ...refused };
    const reservation = newReservation(norm);
    norm.forEach((p, i) => addEntry(logs[i]!, reservation.id, now, p.units));
    return { allowed: true, reservation };
  }

  settle(reservation: Reservation, actualUnits: Record<string, number>): Promise<void> {
    const now = this.#clock.monoMs();
    for (const [key, reserved] of reservedByKey(reservation)) {
      if (!(key in actualUnits)) continue;
      const actual = clampUnits(actualUnits[key]);
      const log = this.#logs.get(key);
      if (log) trim(log, now);
      const entry = log?.byId.get(reservation.id);
      if (log && entry) setUnits(log, entry, actual);
      else if (actual > reserved) {
        const rule = reservation.parts.find((p) => p.rule.key === key)!.rule;
        const l = this.#log(key, rule.windowMs, now);
        const extra = l.byId.get(`${reservation.id}:x`);
        if (extra) setUnits(l, extra, actual - reserved);
        else addEntry(l, `${reservation.id}:x`, now, actual - reserved);
      }
    }
    return Promise.resolve();
  }

  release(reservation: Reservation): Promise<void> {
    for (const key of reservedByKey(reservation).keys()) {
      const log = this.#logs.get(key);
      if (!log) continue;
      for (const id of [reservation.id, `${reservation.id}:x`]) {
        const entry = log.byId.get(id);
        if (!entry) continue;
        setUnits(log, entry, 0);
        log.byId.delete(id);
      }
    }
    return Promise.resolve();
  }

  acquireSlot(key: string, max: number, ttlMs: number): Promise<SlotDecision> {
    return new Promise((resolve) => resolve(this.#acquireSlot(key, max, ttlMs)));
  }

  #acquireSlot(key: string, max: number, ttlMs: number): SlotDecision {
    checkSlotArgs(key, max, ttlMs);
    const now = this.#clock.monoMs();
    this.#sweep(now);
    let held = this.#slots.get(key);
    if (held) {
      for (const [id, exp] of held) if (exp <= now) held.delete(id);
      this.#slots.delete(key); // re-insert below: Map order = least recently used first
    }
    held ??= new Map();
    this.#slots.set(key, held);
    evictOver(this.#slots, this.#maxKeys);
    if (held.size >= (max === 0 ? 0 : this.#scaled(max))) {
      if (held.size === 0) this.#slots.delete(key);
      return { allowed: false };
    }
    const id = crypto.randomUUID();
    held.set(id, now + ttlMs);
    const h = held;
    const release = () => {
      h.delete(id);
      if (h.size === 0 && this.#slots.get(key) === h) this.#slots.delete(key);
      return Promise.resolve();
    };
    return { allowed: true, release };
  }

  /** Live entries (including zero-unit ones) in the log of `key`; for tests and metrics. */
  entryCount(key: string): number {
    const log = this.#logs.get(key);
    if (!log) return 0;
    trim(log, this.#clock.monoMs());
    return log.byId.size;
  }

  /** Number of rule keys and slot keys currently held. */
  get size(): { rules: number; slots: number } {
    return { rules: this.#logs.size, slots: this.#slots.size };
  }

  close(): Promise<void> {
    this.#logs.clear();
    this.#slots.clear();
    return Promise.resolve();
  }

  #scaled(n: number): number {
    return this.#scale === 1 ? n : Math.max(1, Math.floor(n * this.#scale));
  }

  /** The trimmed log of `key`, created if missing, moved to most-recently-used. */
  #log(key: string, windowMs: number, now: number): Log {
    let log = this.#logs.get(key);
    if (log) this.#logs.delete(key);
    else log = { entries: [], head: 0, sum: 0, byId: new Map(), windowMs };
    log.windowMs = windowMs;
    trim(log, now);
    this.#logs.set(key, log);
    evictOver(this.#logs, this.#maxKeys);
    return log;
  }

  /** Drops up to two idle keys from the least-recently-used ends (like Redis PEXPIRE). */
  #sweep(now: number): void {
    let n = 0;
    for (const [key, log] of this.#logs) {
      const last = log.entries[log.entries.length - 1];
      if (n++ >= 2 || (last && last.ts + log.windowMs > now)) break;
      this.#logs.delete(key);
    }
    n = 0;
    for (const [key, held] of this.#slots) {
      if (n++ >= 2 || [...held.values()].some((exp) => exp > now)) break;
      this.#slots.delete(key);
    }
  }
}

function trim(log: Log, now: number): void {
  const { entries } = log;
  while (log.head < entries.length && entries[log.head]!.ts + log.windowMs <= now) {
    const e = entries[log.head++]!;
    log.sum -= e.units;
    if (log.byId.get(e.id) === e) log.byId.delete(e.id);
  }
  if (log.head > 64 && log.head * 2 > entries.length) {
    log.entries = entries.slice(log.head);
    log.head = 0;
  }
}

function addEntry(log: Log, id: string, ts: number, units: number): void {
  const e = { ts, units, id };
  log.entries.push(e);
  log.byId.set(id, e);
  log.sum += units;
}

function setUnits(log: Log, entry: Entry, units: number): void {
  log.sum += units - entry.units;
  entry.units = units;
}

/** Time until enough of the oldest entries leave the window to free `need` units. */
function retryAfter(log: Log, need: number, now: number): number {
  let freed = 0;
  for (let i = log.head; i < log.entries.length; i++) {
    const e = log.entries[i]!;
    freed += e.units;
    if (freed >= need) return Math.max(1, Math.ceil(e.ts + log.windowMs - now));
  }
  return log.windowMs;
}

/** Evicts least-recently-used entries (the front of the Map) while over `max`. */
function evictOver<V>(map: Map<string, V>, max: number): void {
  while (map.size > max) {
    const oldest = map.keys().next();
    if (oldest.done) return;
    map.delete(oldest.value);
  }
}
