import { Redis, type RedisOptions } from "ioredis";
import {
  type Acquire,
  checkSlotArgs,
  clampUnits,
  type Decision,
  type Limiter,
  newReservation,
  normalizeParts,
  type Reservation,
  reservedByKey,
  type SlotDecision,
} from "./mod.ts";
import { type LuaScript, SCRIPTS } from "./redis_lua.ts";

/**
 * An ioredis client set up for the request path: `lazyConnect`, no offline queue (commands fail
 * at once while Redis is down instead of queueing), one retry per request, endless reconnects
 * with a delay capped at `reconnectCapMs` (default 500), and an 'error' listener so a dead
 * Redis never crashes the process with an unhandled 'error' event. `onError` sees those errors.
 * Accepts a `redis://` URL or a unix socket path (`/tmp/redis.sock`).
 */
export function createRedisClient(
  target: string,
  opts: { reconnectCapMs?: number; onError?: (e: Error) => void; extra?: RedisOptions } = {},
): Redis {
  const cap = opts.reconnectCapMs ?? 500;
  const options: RedisOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    retryStrategy: (times: number) => Math.min(25 * 2 ** Math.min(times, 10), cap),
    ...opts.extra,
  };
  const client = target.startsWith("/")
    ? new Redis({ ...options, path: target })
    : new Redis(target, options);
  client.on("error", (e: Error) => opts.onError?.(e));
  return client;
}

/** Options of `RedisLimiter`. */
export interface RedisLimiterOptions {
  /** Prefix of every Redis key this limiter touches. Default "aq:lim:". */
  prefix?: string;
  /** Close the client in `close()`. Default true. */
  ownsClient?: boolean;
}

/**
 * Limiter shared by every hub process through one Redis (standalone; not Redis Cluster, since
 * one call's keys may live in different slots). Each call is ONE Lua script (EVALSHA, falling
 * back to EVAL on NOSCRIPT), which Redis runs atomically, with Redis `TIME` as the clock: so
 * N hub processes are exactly as strict as one. See redis_lua.ts for the key layout.
 */
export class RedisLimiter implements Limiter {
  readonly kind = "redis" as const;
  /** The client (for PING probes and tests). */
  readonly redis: Redis;
  readonly #prefix: string;
  readonly #owns: boolean;
  /** EVALSHA calls that hit NOSCRIPT (e.g. after a Redis restart) and were re-sent as EVAL. */
  noscriptFallbacks = 0;

  constructor(redis: Redis, opts: RedisLimiterOptions = {}) {
    this.redis = redis;
    this.#prefix = opts.prefix ?? "aq:lim:";
    this.#owns = opts.ownsClient ?? true;
    if (redis.status === "wait") redis.connect().catch(() => {});
  }

  /**
   * Creates a client for `target` (see `createRedisClient`) and waits until it is ready.
   * Throws a clear error (and closes the client) if Redis does not answer within `timeoutMs`.
   */
  static async connect(
    target: string,
    opts: RedisLimiterOptions & { timeoutMs?: number } = {},
  ): Promise<RedisLimiter> {
    let lastError: Error | undefined;
    const client = createRedisClient(target, { onError: (e) => lastError = e });
    const timeoutMs = opts.timeoutMs ?? 3_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        client.connect(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (e) {
      client.disconnect();
      const why = [lastError?.message, (e as Error).message].filter(Boolean).join("; ");
      throw new Error(`Redis at ${target} is unreachable: ${why}`);
    } finally {
      clearTimeout(timer);
    }
    return new RedisLimiter(client, opts);
  }

  async acquire(parts: Acquire[]): Promise<Decision> {
    const norm = normalizeParts(parts);
    const reservation = newReservation(norm);
    const args: (string | number)[] = [reservation.id];
    for (const { rule, units } of norm) args.push(rule.limit, rule.windowMs, units);
    const r = await this.#run(SCRIPTS.acquire, this.#ruleKeys(norm.map((p) => p.rule.key)), args);
    const [ok, index, retryAfterMs] = r as [number, number, number];
    if (ok === 1) return { allowed: true, reservation };
    return { allowed: false, retryAfterMs: Number(retryAfterMs), rule: norm[index - 1]!.rule };
  }

  async settle(reservation: Reservation, actualUnits: Record<string, number>): Promise<void> {
    const keys: string[] = [];
    const args: (string | number)[] = [reservation.id];
    for (const [key, reserved] of reservedByKey(reservation)) {
      if (!(key in actualUnits)) continue;
      keys.push(key);
      args.push(this.#windowOf(reservation, key), clampUnits(actualUnits[key]), reserved);
    }
    if (keys.length > 0) await this.#run(SCRIPTS.adjust, this.#ruleKeys(keys), args);
  }

  async release(reservation: Reservation): Promise<void> {
    const keys = [...reservedByKey(reservation).keys()];
    const args: (string | number)[] = [reservation.id];
    for (const key of keys) args.push(this.#windowOf(reservation, key), -1, 0);
    if (keys.length > 0) await this.#run(SCRIPTS.adjust, this.#ruleKeys(keys), args);
  }

  async acquireSlot(key: string, max: number, ttlMs: number): Promise<SlotDecision> {
    checkSlotArgs(key, max, ttlMs);
    const id = crypto.randomUUID();
    const slotKey = `${this.#prefix}slot:${key}`;
    const ok = await this.#run(SCRIPTS.slot, [slotKey], [id, max, ttlMs]);
    if (Number(ok) !== 1) return { allowed: false };
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      await this.redis.zrem(slotKey, id);
    };
    return { allowed: true, release };
  }

  /** Resolves when Redis answers PING; rejects otherwise (fast, since nothing is queued). */
  async ping(): Promise<void> {
    await this.redis.ping();
  }

  /** The Redis keys (ZSET, HASH) that hold rule `key`: for tests and debugging. */
  keysOf(key: string): [string, string] {
    return [`${this.#prefix}${key}`, `${this.#prefix}${key}#u`];
  }

  async close(): Promise<void> {
    if (!this.#owns) return;
    try {
      if (this.redis.status === "ready") await this.redis.quit();
    } catch { /* fall through to disconnect */ }
    this.redis.disconnect();
  }

  #ruleKeys(keys: string[]): string[] {
    return keys.flatMap((k) => this.keysOf(k));
  }

  #windowOf(reservation: Reservation, key: string): number {
    return reservation.parts.find((p) => p.rule.key === key)!.rule.windowMs;
  }

  async #run(s: LuaScript, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await this.redis.evalsha(s.sha, keys.length, ...keys, ...args);
    } catch (e) {
      if (!String((e as Error)?.message).includes("NOSCRIPT")) throw e;
      this.noscriptFallbacks++;
      return await this.redis.eval(s.src, keys.length, ...keys, ...args);
    }
  }
}
