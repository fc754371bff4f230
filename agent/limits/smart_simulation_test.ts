/**
 * Smart mode against a fake vendor whose limit is hidden: no rate-limit headers, just 429 when
 * more than R requests were attempted in its own sliding window, 200 otherwise. Clients offer
 * three times R. After a warm-up, the limiter's accepted rate must sit within ±20% of R and
 * fewer than 5% of the calls it lets through may be refused upstream.
 */
import assert from "node:assert/strict";
import type { Clock } from "../../protocol/clock.ts";
import { seededRandom } from "../../protocol/prng.ts";
import { ChannelLimiter, type Ticket } from "./channel_limiter.ts";

interface Scenario {
  /** Hidden vendor limit, requests per minute. */
  hiddenRpm: number;
  /** The fake vendor's sliding window. */
  windowMs: number;
  /** Whether the vendor's 429 carries an honest `retry-after-ms`. */
  retryHint: boolean;
  seed: number;
}

const WARMUP_MS = 120_000;
const MEASURE_MS = 300_000;
const OFFERED_FACTOR = 3;

function simulate(s: Scenario) {
  const random = seededRandom(s.seed);
  let now = 1_750_000_000_000; // a wall-clock time, as Clock.nowMs() gives
  const start = now;
  const clock: Clock = { nowMs: () => now, monoMs: () => now - start };
  const limiter = new ChannelLimiter({ vendor: "fakevendor", rpm: 0, tpm: 0 }, clock);

  // The vendor: every attempt counts, also the ones it refuses.
  const perWindow = (s.hiddenRpm * s.windowMs) / 60_000;
  const attempts: number[] = [];
  let head = 0;
  const vendorCall = () => {
    while (head < attempts.length && attempts[head]! <= now - s.windowMs) head++;
    const over = attempts.length - head >= perWindow;
    attempts.push(now);
    if (!over) return { status: 200, headers: {} as Record<string, string> };
    const wait = attempts[head]! + s.windowMs - now;
    return { status: 429, headers: s.retryHint ? { "retry-after-ms": String(wait) } : {} };
  };

  const pending = new Map<
    number,
    { ticket: Ticket; status: number; headers: Record<string, string> }[]
  >();
  const offeredPerMs = (OFFERED_FACTOR * s.hiddenRpm) / 60_000;
  let nextArrival = now;
  let accepted = 0, calls = 0, throttled = 0;
  const effective: [number, number][] = [];
  for (let t = 0; t < WARMUP_MS + MEASURE_MS; t++, now++) {
    const measuring = t >= WARMUP_MS;
    for (const done of pending.get(now) ?? []) {
      const actualTokens = 10 + Math.floor(random() * 21);
      limiter.complete(done.ticket, { actualTokens, status: done.status, headers: done.headers });
    }
    pending.delete(now);
    while (nextArrival <= now) {
      nextArrival += -Math.log(1 - random()) / offeredPerMs;
      const got = limiter.acquire({ estimatedTokens: 20 });
      if (!got.ok) continue;
      const answer = vendorCall();
      if (measuring) {
        accepted++;
        calls++;
        if (answer.status === 429) throttled++;
      }
      const at = now + 50 + Math.floor(random() * 450); // 50–500 ms latency
      pending.set(at, [...(pending.get(at) ?? []), { ticket: got.ticket, ...answer }]);
    }
    if (measuring && t % 1000 === 0) {
      const { effectiveRpm, effectiveTpm } = limiter.snapshot();
      effective.push([effectiveRpm, effectiveTpm]);
    }
  }
  const acceptedRpm = accepted / (MEASURE_MS / 60_000);
  const mean = (i: 0 | 1) => effective.reduce((a, b) => a + b[i], 0) / effective.length;
  return {
    acceptedRpm,
    throttledFraction: throttled / calls,
    meanEffectiveRpm: mean(0),
    meanEffectiveTpm: mean(1),
  };
}

const scenarios: Omit<Scenario, "seed">[] = [
  ...[1200, 2220, 6000].flatMap((hiddenRpm) =>
    [false, true].map((retryHint) => ({ hiddenRpm, windowMs: 1000, retryHint }))
  ),
  // A longer vendor window: its honest retry-after-ms is what keeps 429s rare.
  { hiddenRpm: 2220, windowMs: 10_000, retryHint: true },
];

for (const [i, scenario] of scenarios.entries()) {
  const { hiddenRpm, windowMs, retryHint } = scenario;
  const name = `smart mode settles near a hidden ${hiddenRpm} RPM (${windowMs / 1000} s window, ` +
    `${retryHint ? "retry-after-ms" : "no headers"})`;
  Deno.test(name, () => {
    const seed = 0x5eed + i;
    const r = simulate({ ...scenario, seed });
    const pct = (x: number) => (x * 100).toFixed(1) + "%";
    const rpm = r.meanEffectiveRpm.toFixed(0), tpm = r.meanEffectiveTpm.toFixed(0);
    console.log(
      `seed ${seed}: hidden ${hiddenRpm} RPM → accepted ${r.acceptedRpm.toFixed(0)} RPM ` +
        `(${pct(r.acceptedRpm / hiddenRpm)} of R), upstream 429s ${pct(r.throttledFraction)}, ` +
        `mean effective ${rpm} RPM / ${tpm} TPM (~20 tokens a request)`,
    );
    assert.ok(Math.abs(r.acceptedRpm - hiddenRpm) <= 0.2 * hiddenRpm, "accepted within ±20% of R");
    assert.ok(r.throttledFraction < 0.05, `429 fraction ${r.throttledFraction} < 5%`);
  });
}
