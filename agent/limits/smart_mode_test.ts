import assert from "node:assert/strict";
import { DECREASE_FACTOR, DEFAULT_SMART_RPM, DEFAULT_SMART_TPM, FLOOR_RPM } from "./aimd.ts";
import { ChannelLimiter, limiterConfigOf, MAX_PAUSE_MS, type Ticket } from "./channel_limiter.ts";
import { fakeClock, openaiHeaders, T0, ticketOf } from "./test_helpers.ts";

Deno.test("smart mode starts from defaults, then from the account's advertised limits", () => {
  const clock = fakeClock();
  const limiter = new ChannelLimiter(
    limiterConfigOf({
      id: "c1",
      vendor: "openai",
      models: [],
      rpm: 0,
      tpm: 0,
      keys: ["sk-test"],
    }),
    clock,
  );
  let snap = limiter.snapshot();
  assert.equal(snap.mode, "smart");
  assert.equal(snap.effectiveRpm, DEFAULT_SMART_RPM);
  assert.equal(snap.effectiveTpm, DEFAULT_SMART_TPM);
  const t = ticketOf(limiter.acquire({ estimatedTokens: 50 }));
  limiter.complete(t, { actualTokens: 50, status: 200, headers: openaiHeaders(5000, 2_000_000) });
  snap = limiter.snapshot();
  assert.equal(snap.effectiveRpm, 5000);
  assert.equal(snap.effectiveTpm, 2_000_000);
  assert.equal(snap.remainingRpm, 4999);
});

Deno.test("smart mode AIMD: ×0.7 on a 429, +5% of the limit per busy interval, capped", () => {
  const clock = fakeClock();
  const limiter = new ChannelLimiter({ vendor: "openai", rpm: 0, tpm: 0 }, clock);
  const headers = openaiHeaders(600, 1e9);
  limiter.complete(ticketOf(limiter.acquire({ estimatedTokens: 1 })), {
    actualTokens: 1,
    status: 200,
    headers,
  });
  assert.equal(limiter.snapshot().effectiveRpm, 600);
  clock.now += 1000;
  const t = ticketOf(limiter.acquire({ estimatedTokens: 1 }));
  limiter.complete(t, { actualTokens: 0, status: 429, headers });
  assert.equal(limiter.snapshot().effectiveRpm, 600 * DECREASE_FACTOR);
  assert.equal(limiter.snapshot().pausedMs, 0, "no hint, no pause");
  const rpmAfter = (seconds: number) => {
    for (let s = 0; s < seconds; s++) {
      clock.now += 1000;
      // Saturate: acquire until refused, so the interval counts as busy.
      while (true) {
        const got = limiter.acquire({ estimatedTokens: 1 });
        if (!got.ok) break;
        limiter.complete(got.ticket, { actualTokens: 1, status: 200, headers });
      }
    }
    return limiter.snapshot().effectiveRpm;
  };
  assert.equal(rpmAfter(1), 420, "the interval with the 429 does not increase");
  assert.equal(rpmAfter(1), 450, "+5% of the advertised 600");
  assert.equal(rpmAfter(4), 570, "back to 95% of the last 429's rate");
  assert.equal(rpmAfter(1), 573, "then the gentle 0.5% steps near it");
  assert.equal(rpmAfter(60), 600, "capped at the advertised limit");
  clock.now += 10_000; // an idle interval does not increase
  assert.equal(limiter.snapshot().effectiveRpm, 600);
});

Deno.test("repeated 429s decrease once per congestion event, down to the floor", () => {
  const clock = fakeClock();
  const limiter = new ChannelLimiter({ vendor: "mystery", rpm: 0, tpm: 0 }, clock);
  const inFlight: Ticket[] = [];
  for (let i = 0; i < 5; i++, clock.now += 1000) {
    inFlight.push(ticketOf(limiter.acquire({ estimatedTokens: 1 })));
  }
  for (const t of inFlight) limiter.complete(t, { actualTokens: 0, status: 429 });
  assert.equal(limiter.snapshot().effectiveRpm, Math.floor(DEFAULT_SMART_RPM * DECREASE_FACTOR));
  for (let i = 0; i < 40; i++) {
    clock.now += 60_000;
    limiter.complete(ticketOf(limiter.acquire({ estimatedTokens: 1 })), {
      actualTokens: 0,
      status: 429,
    });
  }
  assert.equal(limiter.snapshot().effectiveRpm, FLOOR_RPM);
});

Deno.test("an exhausted quota is not a rate problem: no decrease, no pause", () => {
  const clock = fakeClock();
  const limiter = new ChannelLimiter({ vendor: "openai", rpm: 0, tpm: 0 }, clock);
  const t = ticketOf(limiter.acquire({ estimatedTokens: 1 }));
  limiter.complete(t, {
    actualTokens: 0,
    status: 429,
    quotaExhausted: true,
    headers: { "retry-after": "30" },
  });
  const snap = limiter.snapshot();
  assert.equal(snap.effectiveRpm, DEFAULT_SMART_RPM);
  assert.equal(snap.pausedMs, 0);
});

Deno.test("a vendor 429's retry-after pauses the channel, then no burst follows", () => {
  const clock = fakeClock();
  const limiter = new ChannelLimiter({ vendor: "anthropic", rpm: 600, tpm: 1e6 }, clock);
  const t = ticketOf(limiter.acquire({ estimatedTokens: 10 }));
  limiter.complete(t, { actualTokens: 0, status: 429, headers: { "retry-after": "2" } });
  assert.equal(limiter.snapshot().effectiveRpm, 600, "expert: paused, not slowed");
  assert.equal(limiter.snapshot().pausedMs, 2000);
  assert.equal(limiter.snapshot().remainingRpm, 0);
  assert.deepEqual(limiter.acquire({ estimatedTokens: 10 }), {
    ok: false,
    retryAfterMs: 2000 + 100, // the pause, then 100 ms to earn one request at 600 RPM
    reason: "rpm",
  });
  clock.now += 1999;
  assert.equal(limiter.acquire({ estimatedTokens: 10 }).ok, false);
  clock.now += 101;
  assert.equal(limiter.acquire({ estimatedTokens: 10 }).ok, true);
  assert.equal(limiter.acquire({ estimatedTokens: 10 }).ok, false, "the bucket restarted empty");
});

Deno.test("pause hints: retry-after-ms, exhausted resets, body hints, capped at a minute", () => {
  const pausedFor = (vendor: string, outcome: object) => {
    const clock = fakeClock();
    const limiter = new ChannelLimiter({ vendor, rpm: 0, tpm: 0 }, clock);
    const t = ticketOf(limiter.acquire({ estimatedTokens: 10 }));
    limiter.complete(t, { actualTokens: 0, status: 429, ...outcome });
    const refused = limiter.acquire({ estimatedTokens: 10 });
    return [limiter.snapshot().pausedMs, refused.ok ? null : refused.reason];
  };
  assert.deepEqual(pausedFor("openai", { headers: { "retry-after-ms": "750" } }), [750, "rpm"]);
  const tokensOut = { "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6.5s" };
  assert.deepEqual(pausedFor("openai", { headers: tokensOut }), [6500, "tpm"]);
  const requestsOut = {
    "anthropic-ratelimit-requests-remaining": "0",
    "anthropic-ratelimit-requests-reset": new Date(T0 + 3000).toISOString(),
  };
  assert.deepEqual(pausedFor("anthropic", { headers: requestsOut }), [3000, "rpm"]);
  assert.deepEqual(pausedFor("gemini", { retryAfterMs: 4200 }), [4200, "rpm"]);
  const long = { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s" };
  assert.deepEqual(pausedFor("openai", { headers: long }), [MAX_PAUSE_MS, "rpm"]);
});
