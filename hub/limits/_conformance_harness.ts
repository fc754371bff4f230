/**
 * Test harness of the limiter conformance suite: one `Harness` per implementation, so every
 * case runs unchanged against memory (fake clock, exact) and Redis (real time, tolerance).
 */
import type { Clock } from "../../protocol/clock.ts";
import { MemoryLimiter } from "./memory.ts";
import type { Acquire, Limiter, LimitRule } from "./mod.ts";
import { RedisLimiter } from "./redis.ts";

/** What a conformance case needs from an implementation. */
export interface Harness {
  readonly limiter: Limiter;
  /** Allowed timing error in ms: 0 for the fake clock, a few tens of ms for real Redis. */
  readonly tol: number;
  /** Milliseconds on the limiter's time line (fake clock or `performance.now()`). */
  now(): number;
  /** Lets `ms` pass: advances the fake clock, or really waits (Redis). */
  wait(ms: number): Promise<void>;
  /** A rule on a key unique to this test run. */
  rule(name: string, limit: number, windowMs: number): LimitRule;
  /** Live log entries of a rule (bounded by requests, not units). */
  entries(rule: LimitRule): Promise<number>;
  cleanup(): Promise<void>;
}

/** One-rule acquire; returns the decision. */
export function one(h: Harness, rule: LimitRule, units = 1) {
  return h.limiter.acquire([{ rule, units }]);
}

/** Acquires `n` times `units` and returns how many were allowed. */
export async function take(h: Harness, parts: Acquire[], n = 1): Promise<number> {
  let ok = 0;
  for (let i = 0; i < n; i++) if ((await h.limiter.acquire(parts)).allowed) ok++;
  return ok;
}

/**
 * Waits until `pred` holds (stepping the fake clock, or polling in real time) and returns the
 * elapsed time on the limiter's time line. Fails after `maxMs`.
 */
export async function until(
  h: Harness,
  pred: () => Promise<boolean>,
  maxMs: number,
  stepMs = 10,
): Promise<number> {
  const t0 = h.now();
  while (!(await pred())) {
    if (h.now() - t0 > maxMs) throw new Error(`condition not met within ${maxMs} ms`);
    await h.wait(stepMs);
  }
  return h.now() - t0;
}

/** Memory limiter on a fake clock. */
export function memoryHarness(): Harness {
  let t = 1_000_000;
  const clock: Clock = { nowMs: () => t, monoMs: () => t };
  const limiter = new MemoryLimiter({ clock });
  const tag = crypto.randomUUID().slice(0, 8);
  return {
    limiter,
    tol: 0,
    now: () => t,
    wait: (ms) => {
      t += ms;
      return Promise.resolve();
    },
    rule: (name, limit, windowMs) => ({ key: `t:${tag}:${name}`, limit, windowMs }),
    entries: (rule) => Promise.resolve(limiter.entryCount(rule.key)),
    cleanup: () => limiter.close(),
  };
}

/** The Redis under test: env AQUEDUCT_TEST_REDIS, default redis://127.0.0.1:6379. */
export const TEST_REDIS = Deno.env.get("AQUEDUCT_TEST_REDIS") ?? "redis://127.0.0.1:6379";

/**
 * Redis limiter on the shared test Redis under a random key prefix; `cleanup` deletes every key
 * with that prefix. Throws a clear error if Redis is unreachable (no silent skip).
 */
export async function redisHarness(): Promise<Harness> {
  const prefix = `aqtest:lim:${crypto.randomUUID()}:`;
  const limiter = await RedisLimiter.connect(TEST_REDIS, { prefix });
  return {
    limiter,
    tol: 40,
    now: () => performance.now(),
    wait: (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms))),
    rule: (name, limit, windowMs) => ({ key: name, limit, windowMs }),
    entries: (rule) => limiter.redis.zcard(limiter.keysOf(rule.key)[0]),
    cleanup: async () => {
      try {
        await deleteByPrefix(limiter, prefix);
      } finally {
        await limiter.close();
      }
    },
  };
}

/** Deletes every key under `prefix` (SCAN, never FLUSH: the Redis is shared). */
export async function deleteByPrefix(limiter: RedisLimiter, prefix: string): Promise<number> {
  let cursor = "0";
  let n = 0;
  do {
    const [next, keys] = await limiter.redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
    cursor = next;
    if (keys.length > 0) n += await limiter.redis.del(...keys);
  } while (cursor !== "0");
  return n;
}
