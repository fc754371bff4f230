/** Redis-only properties of `RedisLimiter`: key expiry and cleanup on the shared test Redis. */
import assert from "node:assert/strict";
import { deleteByPrefix, TEST_REDIS } from "./_conformance_harness.ts";
import { waitFor } from "./_redis_server.ts";
import { RedisLimiter } from "./redis.ts";

Deno.test("redis limiter: keys get PEXPIRE = windowMs and vanish when idle", async () => {
  const prefix = `aqtest:ttl:${crypto.randomUUID()}:`;
  const l = await RedisLimiter.connect(TEST_REDIS, { prefix });
  try {
    const rule = { key: "key:k:tpm", limit: 1_000, windowMs: 300 };
    const d = await l.acquire([{ rule, units: 10 }]);
    assert.ok(d.allowed);
    const [z, h] = l.keysOf(rule.key);
    for (const k of [z, h]) {
      const ttl = await l.redis.pttl(k);
      assert.ok(ttl > 200 && ttl <= 300, `${k}: PTTL ${ttl}`);
    }
    await l.settle(d.reservation, { [rule.key]: 20 }); // in place: TTL not extended
    assert.ok((await l.redis.pttl(z)) <= 300);
    const gone = await waitFor(
      "idle keys to expire",
      async () => (await l.redis.exists(z, h)) === 0,
    );
    assert.ok(gone < 1_000, `took ${gone} ms`);
    const d2 = await l.acquire([{ rule, units: 10 }]);
    assert.ok(d2.allowed);
    await l.release(d2.reservation);
    assert.equal(await l.redis.exists(z, h), 0, "releasing the last entry deletes both keys");
    const s = await l.acquireSlot("streams:k", 3, 500);
    assert.ok(s.allowed);
    const ttl = await l.redis.pttl(`${prefix}slot:streams:k`);
    assert.ok(ttl > 400 && ttl <= 500, `slot key PTTL ${ttl}`);
    await s.release();
    assert.equal(await l.redis.exists(`${prefix}slot:streams:k`), 0);
  } finally {
    await deleteByPrefix(l, prefix);
    await l.close();
  }
});
