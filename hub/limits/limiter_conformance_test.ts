/**
 * ONE conformance suite for every `Limiter`: each case runs against the memory limiter (fake
 * clock, exact timings) and the Redis limiter (real time, short windows, tolerance `h.tol`).
 * Redis: env AQUEDUCT_TEST_REDIS (default redis://127.0.0.1:6379); unreachable = FAIL.
 */
import assert from "node:assert/strict";
import {
  type Harness,
  memoryHarness,
  one,
  redisHarness,
  take,
  until,
} from "./_conformance_harness.ts";

/** |actual - expected| <= tol. */
function near(actual: number, expected: number, tol: number, what: string): void {
  assert.ok(
    Math.abs(actual - expected) <= tol,
    `${what}: ${actual} not within ${tol} of ${expected}`,
  );
}

function refused(d: Awaited<ReturnType<typeof one>>): { retryAfterMs: number; key: string } {
  assert.equal(d.allowed, false, "expected a refusal");
  if (d.allowed) throw new Error("unreachable");
  return { retryAfterMs: d.retryAfterMs, key: d.rule.key };
}

const CASES: Record<string, (h: Harness) => Promise<void>> = {
  "N per window is exact; the 61st waits until the first expires": async (h) => {
    const rpm = h.rule("rpm", 60, 1_000);
    const t0 = h.now();
    assert.equal(await take(h, [{ rule: rpm, units: 1 }]), 1);
    await h.wait(100);
    assert.equal(await take(h, [{ rule: rpm, units: 1 }], 59), 59);
    const r = refused(await one(h, rpm));
    assert.equal(r.key, rpm.key);
    near(r.retryAfterMs, t0 + 1_000 - h.now(), h.tol, "retryAfterMs");
    if (h.tol === 0) {
      await h.wait(r.retryAfterMs - 1);
      refused(await one(h, rpm));
      await h.wait(1);
    } else await h.wait(r.retryAfterMs);
    assert.equal((await one(h, rpm)).allowed, true, "the first entry has left the window");
    const again = refused(await one(h, rpm)); // the other 59 are ~100 ms younger
    assert.ok(again.retryAfterMs > 0 && again.retryAfterMs <= 100 + h.tol, `${again.retryAfterMs}`);
  },

  "concurrent in-flight acquires never overshoot": async (h) => {
    const rpm = h.rule("burst", 60, 1_000), tpm = h.rule("burst-tpm", 100_000, 1_000);
    const parts = [{ rule: rpm, units: 1 }, { rule: tpm, units: 1_000 }];
    const ds = await Promise.all(Array.from({ length: 200 }, () => h.limiter.acquire(parts)));
    assert.equal(ds.filter((d) => d.allowed).length, 60);
    assert.equal(await h.entries(tpm), 60, "refusals on RPM charged no TPM");
  },

  "sliding: room returns as the oldest entries age out": async (h) => {
    const r5 = h.rule("slide", 5, 400);
    assert.equal(await take(h, [{ rule: r5, units: 1 }], 3), 3);
    await h.wait(200);
    assert.equal(await take(h, [{ rule: r5, units: 1 }], 3), 2);
    const r = refused(await one(h, r5));
    near(r.retryAfterMs, 200, h.tol, "retryAfterMs");
    await h.wait(r.retryAfterMs);
    assert.equal(await take(h, [{ rule: r5, units: 1 }], 4), 3, "exactly the first 3 aged out");
  },

  "multi-rule is all-or-nothing": async (h) => {
    const a = h.rule("a", 10, 400), b = h.rule("b", 2, 400);
    const ab = [{ rule: a, units: 1 }, { rule: b, units: 1 }];
    assert.equal(await take(h, ab, 2), 2);
    assert.equal(refused(await h.limiter.acquire(ab)).key, b.key);
    assert.equal((await one(h, a, 8)).allowed, true, "the refusal on B charged nothing on A");
    assert.equal(refused(await one(h, a)).key, a.key);
    const c = h.rule("c", 1, 400), d = h.rule("d", 1, 400);
    await one(h, c);
    assert.equal(
      refused(await h.limiter.acquire([{ rule: d, units: 1 }, { rule: c, units: 1 }])).key,
      c.key,
    );
    assert.equal((await one(h, d)).allowed, true, "refusal on the 2nd rule left the 1st alone");
  },

  "several refusing rules: the latest-to-fit one is reported": async (h) => {
    const e = h.rule("e", 1, 400), f = h.rule("f", 1, 400);
    await one(h, e);
    await h.wait(100);
    await one(h, f);
    const r = refused(await h.limiter.acquire([{ rule: e, units: 1 }, { rule: f, units: 1 }]));
    assert.equal(r.key, f.key);
    near(r.retryAfterMs, 400, h.tol, "retryAfterMs of f");
  },

  "units > 1 (TPM) and a log bounded by requests": async (h) => {
    const tpm = h.rule("tpm", 1_000_000, 400);
    assert.equal(await take(h, [{ rule: tpm, units: 400_000 }], 2), 2);
    const r = refused(await one(h, tpm, 300_000));
    near(r.retryAfterMs, 400, h.tol, "retryAfterMs");
    assert.equal((await one(h, tpm, 200_000)).allowed, true);
    refused(await one(h, tpm, 1));
    assert.equal(refused(await one(h, tpm, 1_000_001)).retryAfterMs, 400, "never fits");
    assert.equal(await h.entries(tpm), 3, "one entry per request, not per token");
    const big = h.rule("tpm2", 1_000_000, 400);
    assert.equal(await take(h, [{ rule: big, units: 20_000 }], 51), 50);
    assert.equal(await h.entries(big), 50);
  },

  "retryAfter: the oldest entries that must leave for THIS request": async (h) => {
    const r = h.rule("retry", 5, 400);
    const t0 = h.now();
    await one(h, r, 2);
    await h.wait(50);
    await one(h, r, 1);
    await h.wait(50);
    await one(h, r, 2);
    assert.ok(refused(await one(h, r, 1)).retryAfterMs <= t0 + 400 - h.now() + h.tol);
    const three = refused(await one(h, r, 3)); // needs the first two entries (2 + 1) gone
    near(three.retryAfterMs, t0 + 450 - h.now(), h.tol, "retryAfterMs for 3 units");
    assert.ok(three.retryAfterMs > 0 && three.retryAfterMs <= 400);
    await h.wait(three.retryAfterMs);
    assert.equal((await one(h, r, 3)).allowed, true);
  },

  "settle down and up; never negative": async (h) => {
    const t = h.rule("settle", 1_000, 400);
    const d1 = await one(h, t, 800);
    assert.ok(d1.allowed);
    await h.limiter.settle(d1.reservation, { [t.key]: 300, "not-in-reservation": 5 });
    assert.equal((await one(h, t, 700)).allowed, true);
    refused(await one(h, t, 1));
    const u = h.rule("settle-up", 1_000, 400);
    const d2 = await one(h, u, 200);
    assert.ok(d2.allowed);
    await h.limiter.settle(d2.reservation, { [u.key]: 900 });
    assert.equal((await one(h, u, 100)).allowed, true);
    refused(await one(h, u, 1));
    await h.limiter.settle(d2.reservation, { [u.key]: 1_500 }); // over the limit: usage happened
    refused(await one(h, u, 1));
    await h.limiter.settle(d2.reservation, { [u.key]: -50 }); // clamps to 0
    assert.equal((await one(h, u, 900)).allowed, true, "only the 100 remains");
    await h.limiter.settle(d2.reservation, {}); // absent key: unchanged
    refused(await one(h, u, 1));
  },

  "settle after the entry left the window charges only the excess, now": async (h) => {
    const v = h.rule("late", 100, 300);
    const d = await one(h, v, 10);
    assert.ok(d.allowed);
    await h.wait(300 + h.tol);
    await h.limiter.settle(d.reservation, { [v.key]: 5 }); // less than reserved: nothing to do
    assert.equal(await h.entries(v), 0);
    await h.limiter.settle(d.reservation, { [v.key]: 30 });
    refused(await one(h, v, 81));
    assert.equal((await one(h, v, 80)).allowed, true);
  },

  "release returns every rule, once": async (h) => {
    const rpm = h.rule("rel-rpm", 1, 400), tpm = h.rule("rel-tpm", 1_000, 400);
    const parts = [{ rule: rpm, units: 1 }, { rule: tpm, units: 1_000 }];
    const d = await h.limiter.acquire(parts);
    assert.ok(d.allowed);
    refused(await one(h, rpm));
    refused(await one(h, tpm, 1));
    await h.limiter.release(d.reservation);
    assert.equal(await h.entries(rpm), 0);
    assert.equal(await take(h, parts), 1, "both rules have room again");
    await h.limiter.release(d.reservation); // idempotent: must not free the new one
    refused(await one(h, rpm));
  },

  "slots: max concurrent, release frees once": async (h) => {
    const s1 = await h.limiter.acquireSlot("streams:k1", 2, 10_000);
    const s2 = await h.limiter.acquireSlot("streams:k1", 2, 10_000);
    assert.ok(s1.allowed && s2.allowed);
    assert.equal((await h.limiter.acquireSlot("streams:k1", 2, 10_000)).allowed, false);
    assert.equal((await h.limiter.acquireSlot("streams:k2", 2, 10_000)).allowed, true);
    await s1.release();
    const s3 = await h.limiter.acquireSlot("streams:k1", 2, 10_000);
    assert.ok(s3.allowed);
    await s1.release(); // double release frees nothing more
    assert.equal((await h.limiter.acquireSlot("streams:k1", 2, 10_000)).allowed, false);
    await s2.release();
    await s3.release();
    assert.equal((await h.limiter.acquireSlot("streams:k1", 0, 10_000)).allowed, false);
  },

  "slots: the TTL frees a crashed holder's slots": async (h) => {
    const key = "streams:crashed";
    for (let i = 0; i < 2; i++) assert.ok((await h.limiter.acquireSlot(key, 2, 300)).allowed);
    if (h.tol === 0) {
      await h.wait(299);
      assert.equal((await h.limiter.acquireSlot(key, 2, 300)).allowed, false);
      await h.wait(1);
    }
    const took = await until(
      h,
      async () => (await h.limiter.acquireSlot(key, 2, 300)).allowed,
      2_000,
    );
    assert.ok(h.tol === 0 || took >= 300 - h.tol, `freed too early: ${took} ms`);
  },

  "bad input is rejected": async (h) => {
    const r = h.rule("bad", 5, 400);
    await assert.rejects(h.limiter.acquire([{ rule: r, units: -1 }]), RangeError);
    await assert.rejects(h.limiter.acquire([{ rule: r, units: 1.5 }]), RangeError);
    await assert.rejects(h.limiter.acquire([{ rule: { ...r, limit: 0 }, units: 1 }]), RangeError);
    await assert.rejects(h.limiter.acquireSlot("s", 1, 0), RangeError);
    assert.equal((await h.limiter.acquire([])).allowed, true, "no rules: nothing to refuse");
  },
};

const IMPLS: Record<string, () => Promise<Harness>> = {
  memory: () => Promise.resolve(memoryHarness()),
  redis: redisHarness,
};

for (const [impl, make] of Object.entries(IMPLS)) {
  for (const [name, run] of Object.entries(CASES)) {
    Deno.test(`limiter conformance [${impl}]: ${name}`, async () => {
      const h = await make();
      try {
        await run(h);
      } finally {
        await h.cleanup();
      }
    });
  }
}
