/**
 * Failure tests of `ResilientLimiter` against a PRIVATE redis-server (never the shared one):
 * kill -9 mid-run, hang (SIGSTOP) past the per-call timeout, restart on the same port.
 */
import assert from "node:assert/strict";
import { PrivateRedis, waitFor } from "./_redis_server.ts";
import type { Limiter, LimitRule } from "./mod.ts";
import { RedisLimiter } from "./redis.ts";
import { type FailMode, ResilientLimiter } from "./resilient.ts";

type State = { degraded: boolean; reason?: string };

async function make(srv: PrivateRedis, failMode: FailMode, states: State[]) {
  const primary = await RedisLimiter.connect(srv.url, { prefix: "t:" });
  const limiter = new ResilientLimiter({
    primary,
    failMode,
    localScale: 0.5,
    probeIntervalMs: 200,
    onStateChange: (s) => states.push(s),
  });
  return { primary, limiter };
}

/** Acquires one unit and checks that the answer came fast (the request path never hangs). */
async function timedAcquire(l: Limiter, rule: LimitRule) {
  const t0 = performance.now();
  const d = await l.acquire([{ rule, units: 1 }]);
  const ms = performance.now() - t0;
  assert.ok(ms < 250, `answer took ${ms.toFixed(0)} ms`);
  return d;
}

async function count(l: Limiter, rule: LimitRule, n: number): Promise<number> {
  let ok = 0;
  for (let i = 0; i < n; i++) if ((await timedAcquire(l, rule)).allowed) ok++;
  return ok;
}

Deno.test("resilient limiter: kill -9 Redis → local/open/closed fallbacks → restart → back to Redis", async () => {
  const srv = await PrivateRedis.start();
  const states: Record<FailMode, State[]> = { local: [], open: [], closed: [] };
  const all: Awaited<ReturnType<typeof make>>[] = [];
  try {
    for (const mode of ["local", "open", "closed"] as const) {
      all.push(await make(srv, mode, states[mode]));
    }
    const [local, open, closed] = all.map((x) => x.limiter) as [
      ResilientLimiter,
      ResilientLimiter,
      ResilientLimiter,
    ];
    const rule = { key: "key:k:rpm", limit: 4, windowMs: 60_000 };

    // Healthy: the three limiters share one budget in Redis.
    const viaRedis = await local.acquire([{ rule, units: 1 }]);
    assert.ok(viaRedis.allowed);
    assert.equal(
      await count(local, rule, 1) + await count(open, rule, 1) + await count(closed, rule, 1),
      3,
    );
    const shared = await closed.acquire([{ rule, units: 1 }]);
    assert.ok(!shared.allowed && shared.retryAfterMs > 50_000, "5th refused by the shared window");
    assert.deepEqual(all.map((x) => x.limiter.degraded), [false, false, false]);

    await srv.signal("SIGKILL");

    // local: a fresh memory window at limit 4 × 0.5 = 2; its reservations release against memory.
    assert.equal(await count(local, rule, 3), 2);
    assert.equal(local.degraded, true);
    await local.release(viaRedis.reservation); // made in Redis: dropped, no throw
    const memSlot = await local.acquireSlot("streams:k", 2, 10_000);
    assert.ok(memSlot.allowed);
    assert.equal((await local.acquireSlot("streams:k", 2, 10_000)).allowed, false, "2 × 0.5 = 1");
    await memSlot.release();
    assert.equal((await local.acquireSlot("streams:k", 2, 10_000)).allowed, true);
    // open: everything passes; closed: everything is refused with retryAfterMs 1000.
    assert.equal(await count(open, rule, 10), 10);
    assert.ok((await open.acquireSlot("streams:k", 1, 10_000)).allowed);
    const refusal = await timedAcquire(closed, rule);
    assert.deepEqual(refusal, { allowed: false, retryAfterMs: 1_000, rule });
    assert.equal((await closed.acquireSlot("streams:k", 5, 10_000)).allowed, false);
    for (const mode of ["local", "open", "closed"] as const) {
      assert.equal(states[mode].length, 1, `${mode}: one transition logged, not one per call`);
      assert.equal(states[mode][0]!.degraded, true);
    }
    // A reservation made in fallback mode releases against the memory limiter.
    const rule2 = { key: "key:k2:rpm", limit: 2, windowMs: 60_000 };
    const m1 = await local.acquire([{ rule: rule2, units: 1 }]);
    assert.ok(m1.allowed);
    assert.equal((await local.acquire([{ rule: rule2, units: 1 }])).allowed, false);
    await local.release(m1.reservation);
    assert.equal((await local.acquire([{ rule: rule2, units: 1 }])).allowed, true);

    await srv.restart();
    const back = await waitFor(
      "all limiters back on Redis",
      () => all.every((x) => !x.limiter.degraded),
    );
    console.log(`back on Redis ${back.toFixed(0)} ms after the restart`);
    for (const mode of ["local", "open", "closed"] as const) {
      assert.deepEqual(states[mode].map((s) => s.degraded), [true, false]);
    }

    // Shared counting resumes (Redis lost its data: --save ""), scripts re-sent after NOSCRIPT.
    const rule3 = { key: "key:k3:rpm", limit: 3, windowMs: 60_000 };
    assert.equal(
      await count(local, rule3, 1) + await count(open, rule3, 1) + await count(closed, rule3, 1),
      3,
    );
    const after = await closed.acquire([{ rule: rule3, units: 1 }]);
    assert.ok(!after.allowed && after.retryAfterMs > 50_000, "refused by Redis, not by fail mode");
    assert.ok(all.some((x) => x.primary.noscriptFallbacks > 0), "EVALSHA fell back to EVAL");
    await local.release(m1.reservation); // fallback-made: goes to memory, not Redis
    assert.equal(await all[0]!.primary.redis.zcard("t:key:k3:rpm"), 3);
  } finally {
    for (const x of all) await x.limiter.close();
    await srv.stop();
  }
});

Deno.test("resilient limiter: a hung Redis (SIGSTOP) trips the per-call timeout, then recovers", async () => {
  const srv = await PrivateRedis.start();
  const states: State[] = [];
  const { limiter } = await make(srv, "local", states);
  try {
    const rule = { key: "key:hang:rpm", limit: 10, windowMs: 60_000 };
    assert.ok((await limiter.acquire([{ rule, units: 1 }])).allowed);
    await srv.signal("SIGSTOP");
    const t0 = performance.now();
    const d = await limiter.acquire([{ rule, units: 1 }]);
    const ms = performance.now() - t0;
    assert.ok(d.allowed, "answered by the local fallback");
    assert.ok(ms >= 45 && ms < 200, `timeout path took ${ms.toFixed(0)} ms (budget 50)`);
    assert.equal(limiter.degraded, true);
    assert.match(states[0]?.reason ?? "", /over 50 ms/);
    await srv.signal("SIGCONT");
    await waitFor("recovery after SIGCONT", () => !limiter.degraded);
    assert.deepEqual(states.map((s) => s.degraded), [true, false]);
  } finally {
    await limiter.close();
    await srv.stop();
  }
});
