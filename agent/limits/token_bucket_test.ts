import assert from "node:assert/strict";
import { SlidingWindowSum } from "./sliding_window.ts";
import { TokenBucket } from "./token_bucket.ts";

Deno.test("bucket starts full and refills continuously up to its capacity", () => {
  const b = new TokenBucket(10, 0.01, 0); // 10 units, one per 100 ms
  assert.equal(b.level(0), 10);
  assert.deepEqual(b.take(10, 0), { ok: true });
  assert.equal(b.level(0), 0);
  assert.equal(b.level(250), 2.5);
  assert.equal(b.level(1000), 10);
  assert.equal(b.level(60_000), 10, "never above the capacity");
});

Deno.test("multi-unit takes wait for exactly the missing units", () => {
  const b = new TokenBucket(10, 0.01, 0, 0);
  assert.deepEqual(b.take(3, 0), { ok: false, retryAfterMs: 300 });
  assert.deepEqual(b.take(3, 299), { ok: false, retryAfterMs: 1 });
  assert.deepEqual(b.take(3, 300), { ok: true });
  assert.equal(b.level(300), 0);
  assert.equal(b.waitMs(0, 300), 0, "a zero take only needs a level >= 0");
});

Deno.test("a take larger than the capacity waits for a full bucket, then leaves debt", () => {
  const b = new TokenBucket(10, 0.01, 0, 4);
  assert.deepEqual(b.take(25, 0), { ok: false, retryAfterMs: 600 }, "waits for 10, not 25");
  assert.deepEqual(b.take(25, 600), { ok: true });
  assert.equal(b.level(600), -15);
  assert.deepEqual(b.take(1, 600), { ok: false, retryAfterMs: 1600 }, "repay 15, then earn 1");
});

Deno.test("adjust charges debt for underestimates and refunds overestimates", () => {
  const b = new TokenBucket(100, 0.1, 0);
  assert.deepEqual(b.take(40, 0), { ok: true }); // estimated 40
  b.adjust(+100, 0); // actually 140
  assert.equal(b.level(0), -40);
  assert.equal(b.waitMs(0, 0), 400, "even a zero take waits until the debt is repaid");
  assert.equal(b.waitMs(10, 0), 500);
  b.adjust(-30, 0); // a later refund
  assert.equal(b.level(0), -10);
  b.adjust(-1000, 0);
  assert.equal(b.level(0), 100, "refunds never exceed the capacity");
});

Deno.test("hold empties the bucket and delays refill until the pause ends", () => {
  const b = new TokenBucket(10, 0.01, 0);
  b.hold(2000, 500);
  assert.equal(b.level(1500), 0);
  assert.equal(b.waitMs(1, 1500), 600, "500 ms of pause left + 100 ms to earn one unit");
  assert.equal(b.level(2300), 3);
});

Deno.test("setRate keeps the level (clipped) and refills at the new rate from now", () => {
  const b = new TokenBucket(10, 0.01, 0);
  b.setRate(4, 0.001, 0);
  assert.equal(b.level(0), 4);
  b.take(4, 0);
  assert.equal(b.level(1000), 1);
  b.setRate(100, 0.1, 1000);
  assert.equal(b.level(1100), 11);
});

Deno.test("a clock stepping back refills nothing", () => {
  const b = new TokenBucket(10, 0.01, 10_000, 0);
  assert.equal(b.level(5000), 0);
  assert.equal(b.level(10_100), 1);
});

Deno.test("bucket rejects nonsense parameters", () => {
  assert.throws(() => new TokenBucket(0, 1, 0), RangeError);
  assert.throws(() => new TokenBucket(1, 0, 0), RangeError);
  assert.throws(() => new TokenBucket(Infinity, 1, 0), RangeError);
  assert.throws(() => new TokenBucket(1, 1, 0).take(-1, 0), RangeError);
  assert.throws(() => new TokenBucket(1, 1, 0).take(NaN, 0), RangeError);
});

Deno.test("sliding window sums exactly the last windowMs", () => {
  const w = new SlidingWindowSum(1000);
  w.add(1, 0);
  w.add(5, 400);
  w.add(-2, 900); // a correction
  assert.equal(w.total(900), 4);
  assert.equal(w.count(900), 3);
  assert.equal(w.nextExpiryMs(900), 100);
  assert.equal(w.total(1000), 3, "the entry at 0 falls out at exactly 1000");
  assert.equal(w.total(1899), -2);
  assert.equal(w.total(1900), 0);
  assert.equal(w.nextExpiryMs(1900), 0);
  for (let t = 0; t < 5000; t++) w.add(1, 10_000 + t); // compaction keeps the sum right
  assert.equal(w.total(14_999), 1000);
});
