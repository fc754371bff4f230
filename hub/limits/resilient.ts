import { MemoryLimiter } from "./memory.ts";
import {
  type Acquire,
  checkSlotArgs,
  type Decision,
  type Limiter,
  newReservation,
  normalizeParts,
  type Reservation,
  type SlotDecision,
} from "./mod.ts";
import type { RedisLimiter } from "./redis.ts";

/** What to decide while Redis is unusable: local = memory limiter, open = allow, closed = deny. */
export type FailMode = "local" | "open" | "closed";

/** Options of `ResilientLimiter`. */
export interface ResilientOptions {
  /** The shared limiter. Its client should come from `createRedisClient` (no offline queue). */
  primary: RedisLimiter;
  /** Default "local". */
  failMode?: FailMode;
  /**
   * Scale applied to every limit by the local fallback. Each hub process then counts alone, so
   * with N processes behind the load balancer use `1 / N` (each process gets its share of the
   * budget; the fleet stays within the limit if traffic is spread evenly). Default 1: each
   * process allows the full limit (up to N× the budget fleet-wide during an outage).
   */
  localScale?: number;
  /** Fallback limiter; default `new MemoryLimiter({ limitScale: localScale })`. */
  fallback?: Limiter;
  /** Per-call budget for Redis; a slower call counts as a failure. Default 50 ms. */
  timeoutMs?: number;
  /** While degraded, PING Redis this often and return to it once it answers. Default 1000 ms. */
  probeIntervalMs?: number;
  /** Called once per transition (not per failed call). */
  onStateChange?: (state: { degraded: boolean; reason?: string }) => void;
}

/** Reservation origin: the limiter that charged it, or null for an "open" allowance. */
type Origin = Limiter | null;

/**
 * A Redis limiter that keeps answering when Redis is down or slow. Any Redis error or timeout
 * flips it to `degraded`; from then on calls go straight to the fail mode (no Redis round trip)
 * until a PING probe succeeds. A call that timed out may still have been charged in Redis; that
 * charge simply ages out with its window. Reservations and slots always settle/release against
 * the limiter that made them; Redis-side ones are dropped while Redis is down (they expire).
 */
export class ResilientLimiter implements Limiter {
  readonly kind = "redis" as const;
  readonly #primary: RedisLimiter;
  readonly #fallback: Limiter;
  readonly #mode: FailMode;
  readonly #timeoutMs: number;
  readonly #probeMs: number;
  readonly #onState: ResilientOptions["onStateChange"];
  readonly #origin = new WeakMap<Reservation, Origin>();
  #degraded = false;
  #probe: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(opts: ResilientOptions) {
    this.#primary = opts.primary;
    this.#mode = opts.failMode ?? "local";
    this.#fallback = opts.fallback ?? new MemoryLimiter({ limitScale: opts.localScale ?? 1 });
    this.#timeoutMs = opts.timeoutMs ?? 50;
    this.#probeMs = opts.probeIntervalMs ?? 1_000;
    this.#onState = opts.onStateChange;
  }

  /** True while decisions come from the fail mode instead of Redis. */
  get degraded(): boolean {
    return this.#degraded;
  }

  /** The fail mode in use while degraded. */
  get failMode(): FailMode {
    return this.#mode;
  }

  async acquire(parts: Acquire[]): Promise<Decision> {
    const norm = normalizeParts(parts); // bad input throws here, not as a "Redis failure"
    if (!this.#degraded) {
      try {
        const d = await this.#timed(this.#primary.acquire(norm));
        if (d.allowed) this.#origin.set(d.reservation, this.#primary);
        return d;
      } catch (e) {
        this.#markDown(e);
      }
    }
    if (this.#mode === "open" || norm.length === 0) {
      const reservation = newReservation(norm);
      this.#origin.set(reservation, null);
      return { allowed: true, reservation };
    }
    if (this.#mode === "closed") {
      return { allowed: false, retryAfterMs: 1_000, rule: norm[0]!.rule };
    }
    const d = await this.#fallback.acquire(norm);
    if (d.allowed) this.#origin.set(d.reservation, this.#fallback);
    return d;
  }

  settle(reservation: Reservation, actualUnits: Record<string, number>): Promise<void> {
    return this.#onOrigin(reservation, (l) => l.settle(reservation, actualUnits));
  }

  release(reservation: Reservation): Promise<void> {
    return this.#onOrigin(reservation, (l) => l.release(reservation));
  }

  async acquireSlot(key: string, max: number, ttlMs: number): Promise<SlotDecision> {
    checkSlotArgs(key, max, ttlMs);
    if (!this.#degraded) {
      try {
        const d = await this.#timed(this.#primary.acquireSlot(key, max, ttlMs));
        if (!d.allowed) return d;
        return { allowed: true, release: () => this.#bestEffort(d.release()) };
      } catch (e) {
        this.#markDown(e);
      }
    }
    if (this.#mode === "open") return { allowed: true, release: () => Promise.resolve() };
    if (this.#mode === "closed") return { allowed: false };
    return await this.#fallback.acquireSlot(key, max, ttlMs);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#probe);
    this.#probe = undefined;
    await this.#fallback.close();
    await this.#primary.close();
  }

  #onOrigin(reservation: Reservation, op: (l: Limiter) => Promise<void>): Promise<void> {
    const origin = this.#origin.has(reservation) ? this.#origin.get(reservation)! : this.#primary;
    if (origin === null) return Promise.resolve();
    if (origin !== this.#primary) return op(origin);
    if (this.#degraded) return Promise.resolve(); // its Redis entries will age out
    return this.#bestEffort(op(origin));
  }

  async #bestEffort(p: Promise<void>): Promise<void> {
    try {
      await this.#timed(p);
    } catch (e) {
      this.#markDown(e);
    }
  }

  /** `p`, or a rejection after the per-call budget (p's own late failure is swallowed). */
  #timed<T>(p: Promise<T>, ms = this.#timeoutMs): Promise<T> {
    p.catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`redis call took over ${ms} ms`)), ms);
    });
    return Promise.race([p, limit]).finally(() => clearTimeout(timer));
  }

  #markDown(e: unknown): void {
    if (this.#degraded || this.#closed) return;
    this.#degraded = true;
    this.#onState?.({ degraded: true, reason: e instanceof Error ? e.message : String(e) });
    this.#scheduleProbe();
  }

  #scheduleProbe(): void {
    if (this.#closed) return;
    this.#probe = setTimeout(async () => {
      try {
        await this.#timed(this.#primary.ping(), Math.max(this.#timeoutMs, 250));
      } catch {
        return this.#scheduleProbe();
      }
      if (this.#closed) return;
      this.#probe = undefined;
      this.#degraded = false;
      this.#onState?.({ degraded: false });
    }, this.#probeMs);
  }
}
