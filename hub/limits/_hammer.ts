/**
 * Child process of `redis_multi_test.ts`: one "hub process" hammering one rule.
 *
 * Usage: deno run --allow-net --allow-env --allow-read _hammer.ts <redisUrl> <prefix> <key>
 *        <count> <limit> <windowMs> <parties>
 * Waits at a Redis barrier until `parties` processes are ready and a common start time, fires `count` acquires all
 * in flight at once, and prints one JSON line {allowed, refused, burstMs, startedAt}.
 */
import { RedisLimiter } from "./redis.ts";

const [url, prefix, key, count, limit, windowMs, parties] = Deno.args;
if (!url || !prefix || !key || !count || !limit || !windowMs || !parties) {
  console.error("usage: _hammer.ts <url> <prefix> <key> <count> <limit> <windowMs> <parties>");
  Deno.exit(2);
}
const limiter = await RedisLimiter.connect(url, { prefix });
try {
  // Barrier: the last process to arrive picks a start time 100 ms ahead; everyone sleeps to it.
  const barrier = `${prefix}barrier`, go = `${prefix}go`;
  if ((await limiter.redis.incr(barrier)) === Number(parties)) {
    await limiter.redis.set(go, String(Date.now() + 100), "PX", 60_000);
  }
  await limiter.redis.pexpire(barrier, 60_000);
  const t0 = performance.now();
  let goAt: string | null = null;
  while ((goAt = await limiter.redis.get(go)) === null) {
    if (performance.now() - t0 > 20_000) throw new Error("barrier timeout");
    await new Promise((r) => setTimeout(r, 2));
  }
  await new Promise((r) => setTimeout(r, Math.max(0, Number(goAt) - Date.now())));
  const rule = { key, limit: Number(limit), windowMs: Number(windowMs) };
  const startedAt = Date.now();
  const start = performance.now();
  const decisions = await Promise.all(
    Array.from({ length: Number(count) }, () => limiter.acquire([{ rule, units: 1 }])),
  );
  const burstMs = performance.now() - start;
  const allowed = decisions.filter((d) => d.allowed).length;
  console.log(JSON.stringify({ allowed, refused: decisions.length - allowed, burstMs, startedAt }));
} finally {
  await limiter.close();
}
