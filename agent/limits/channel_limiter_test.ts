import assert from "node:assert/strict";
import { seededRandom } from "../../protocol/prng.ts";
import { ChannelLimiter, DAY_MS } from "./channel_limiter.ts";
import { fakeClock, openaiHeaders, T0, ticketOf } from "./test_helpers.ts";

Deno.test("expert mode never admits more than RPM in any 60 s window (random arrivals)", () => {
  const envSeed = Deno.env.get("LIMITS_SEED");
  const fresh = crypto.getRandomValues(new Uint32Array(1))[0]!;
  const seeds = envSeed ? [Number(envSeed)] : [1, 2, 3, 0xdecade, fresh];
  for (const seed of seeds) {
    console.log(`expert RPM property: seed ${seed} (rerun with LIMITS_SEED=${seed})`);
    const random = seededRandom(seed);
    const rpm = [1, 3, 7, 60, 250, 1000, 3500][Math.floor(random() * 7)]!;
    const clock = fakeClock();
    const limiter = new ChannelLimiter({ vendor: "openai", rpm, tpm: 1e9 }, clock);
    const admitted: number[] = [];
    const end = T0 + 10 * 60_000;
    while (clock.now < end) {
      // Bursts of up to 20 simultaneous arrivals, then a gap of up to 3 × the mean spacing.
      const burst = random() < 0.2 ? 1 + Math.floor(random() * 20) : 1;
      for (let i = 0; i < burst; i++) {
        const got = limiter.acquire({ estimatedTokens: 1 + Math.floor(random() * 500) });
        if (!got.ok) continue;
        admitted.push(clock.now);
        // The vendor claims a larger limit and sometimes 429s: expert mode must not care.
        const status = random() < 0.1 ? 429 : 200;
        limiter.complete(got.ticket, {
          actualTokens: 100,
          status,
          headers: openaiHeaders(rpm * 10, 1e10),
        });
      }
      clock.now += Math.floor(random() * 3 * (60_000 / rpm / 3)) + 1;
    }
    let worst = 0;
    for (let i = 0, j = 0; i < admitted.length; i++) {
      while (j < admitted.length && admitted[j]! < admitted[i]! + 60_000) j++;
      worst = Math.max(worst, j - i);
    }
    assert.ok(worst <= rpm, `seed ${seed}: ${worst} requests in a 60 s window > ${rpm} RPM`);
    assert.ok(admitted.length >= rpm * 5, `seed ${seed}: only ${admitted.length} admitted`);
    const snap = limiter.snapshot();
    assert.equal(snap.mode, "expert");
    assert.equal(snap.effectiveRpm, rpm, "expert rates never change");
    assert.equal(snap.effectiveTpm, 1e9);
  }
});

Deno.test("the expert hard cap holds even when a burst meets a full bucket", () => {
  const clock = fakeClock();
  const limiter = new ChannelLimiter({ vendor: "openai", rpm: 120, tpm: 1e6 }, clock);
  let admitted = 0;
  for (let ms = 0; ms < 60_000; ms++, clock.now++) {
    while (limiter.acquire({ estimatedTokens: 1 }).ok) admitted++;
  }
  assert.equal(admitted, 120, "exactly RPM in the first minute, though the bucket refilled 120");
  clock.now = T0 + 59_999;
  const refused = limiter.acquire({ estimatedTokens: 1 });
  assert.ok(!refused.ok && refused.reason === "rpm");
});

Deno.test("TPM is corrected by actual − estimated: underestimates become debt", () => {
  const clock = fakeClock();
  const limiter = new ChannelLimiter({ vendor: "openai", rpm: 1000, tpm: 60_000 }, clock);
  // 60 000 TPM = 1 token/ms; the bucket holds 6 s = 6 000 tokens.
  const t = ticketOf(limiter.acquire({ estimatedTokens: 1000 }));
  limiter.complete(t, { actualTokens: 9000, status: 200 });
  assert.equal(limiter.snapshot().remainingTpm, 60_000 - 9000);
  // Level 6000 − 1000 − 8000 = −3000: 1000 more tokens need 4 s.
  const refused = limiter.acquire({ estimatedTokens: 1000 });
  assert.deepEqual(refused, { ok: false, retryAfterMs: 4000, reason: "tpm" });
  clock.now += 4000;
  const t2 = ticketOf(limiter.acquire({ estimatedTokens: 1000 }));
  limiter.complete(t2, { actualTokens: 0, status: 200 }); // overestimate: refunded
  assert.ok(limiter.acquire({ estimatedTokens: 1000 }).ok);
  limiter.complete(t2, { actualTokens: 99_999, status: 200 }); // settled twice: ignored
  assert.equal(limiter.snapshot().remainingTpm, 60_000 - 9000 - 1000);
});

Deno.test("the daily token budget refuses until the next UTC midnight", () => {
  const clock = fakeClock();
  const limiter = new ChannelLimiter(
    { vendor: "openai", rpm: 1e6, tpm: 1e9, dailyTokens: 10_000 },
    clock,
  );
  const t = ticketOf(limiter.acquire({ estimatedTokens: 6000 }));
  assert.equal(limiter.snapshot().remainingDailyTokens, 4000);
  limiter.complete(t, { actualTokens: 9000, status: 200 });
  assert.equal(limiter.snapshot().remainingDailyTokens, 1000);
  const midnight = Math.ceil(T0 / DAY_MS) * DAY_MS;
  assert.deepEqual(limiter.acquire({ estimatedTokens: 1001 }), {
    ok: false,
    retryAfterMs: midnight - T0,
    reason: "daily",
  });
  assert.ok(limiter.acquire({ estimatedTokens: 1000 }).ok);
  clock.now = midnight;
  assert.equal(limiter.snapshot().remainingDailyTokens, 10_000);
  assert.ok(limiter.acquire({ estimatedTokens: 5000 }).ok);
  assert.equal(
    new ChannelLimiter({ vendor: "x", rpm: 1, tpm: 1 }).snapshot().remainingDailyTokens,
    null,
  );
});

Deno.test("acquire rejects a nonsense token estimate", () => {
  const limiter = new ChannelLimiter({ vendor: "openai", rpm: 10, tpm: 1000 }, fakeClock());
  assert.throws(() => limiter.acquire({ estimatedTokens: -1 }), RangeError);
  assert.throws(() => limiter.acquire({ estimatedTokens: NaN }), RangeError);
});
