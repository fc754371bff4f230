import assert from "node:assert/strict";
import { seededRandom } from "../../protocol/prng.ts";
import { fullJitterDelayMs } from "./backoff.ts";

const policy = { baseMs: 1000, capMs: 60_000 };

Deno.test("backoff ceiling doubles per attempt and stops at the cap", () => {
  const almostOne = () => 0.999999;
  assert.equal(fullJitterDelayMs(0, policy, almostOne), 999);
  assert.equal(fullJitterDelayMs(1, policy, almostOne), 1999);
  assert.equal(fullJitterDelayMs(5, policy, almostOne), 31_999);
  assert.equal(fullJitterDelayMs(6, policy, almostOne), 59_999);
  assert.equal(fullJitterDelayMs(500, policy, almostOne), 59_999);
  assert.equal(fullJitterDelayMs(3, policy, () => 0), 0);
});

Deno.test("backoff delays are spread over the whole window (full jitter)", () => {
  const random = seededRandom(42);
  const delays = Array.from({ length: 10_000 }, () => fullJitterDelayMs(4, policy, random));
  assert.ok(delays.every((d) => d >= 0 && d < 16_000));
  const mean = delays.reduce((a, b) => a + b, 0) / delays.length;
  assert.ok(Math.abs(mean - 8000) < 300, `mean ${mean} near the middle of [0, 16000)`);
  assert.ok(delays.some((d) => d < 1000) && delays.some((d) => d > 15_000));
});
