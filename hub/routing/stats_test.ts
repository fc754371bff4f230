import assert from "node:assert/strict";
import { type Outcome, StatsBoard } from "./stats.ts";
import { TTFT_BINS, ttftBin, ttftPercentile } from "./ttft_histogram.ts";

const MIN = 60_000;

function board(): StatsBoard {
  return new StatsBoard({ bucketMs: MIN, buckets: 15, recentBuckets: 2 });
}

function feed(b: StatsBoard, outcome: Outcome, atMs: number, n = 1, extra = {}): void {
  for (let i = 0; i < n; i++) {
    b.recordOutcome({ agentId: "agt_a", channelId: "main", outcome, atMs, ...extra });
  }
}

Deno.test("counts outcomes; client errors never count against availability", () => {
  const b = board();
  feed(b, "success", 1_000, 8);
  feed(b, "upstream_failure", 2_000, 2);
  feed(b, "client_error", 3_000, 5);
  const s = b.channelStats("agt_a", "main", 4_000);
  assert.equal(s.requests, 15);
  assert.equal(s.successes, 8);
  assert.equal(s.upstreamFailures, 2);
  assert.equal(s.clientErrors, 5);
  assert.equal(s.availability, 0.8);
  assert.equal(s.errorRate, 0.2);
  const onlyClient = new StatsBoard();
  onlyClient.recordOutcome({ agentId: "x", channelId: "y", outcome: "client_error", atMs: 0 });
  const o = onlyClient.channelStats("x", "y", 0);
  assert.equal(o.availability, null, "4xx alone says nothing about availability");
  assert.equal(o.errorRate, null);
});

Deno.test("a lost tunnel counts against the agent's availability like a vendor failure", () => {
  const b = board();
  feed(b, "success", 1_000, 3);
  feed(b, "tunnel_failure", 2_000, 1);
  const s = b.channelStats("agt_a", "main", 4_000);
  assert.deepEqual([s.requests, s.successes, s.upstreamFailures], [4, 3, 1]);
  assert.equal(s.availability, 0.75);
});

Deno.test("the window rolls off bucket by bucket", () => {
  const b = board();
  feed(b, "success", 0, 3); // bucket 0
  feed(b, "upstream_failure", 5 * MIN + 1, 1); // bucket 5
  const cases: [number, number, number][] = [
    // [nowMs, successes, failures]
    [5 * MIN + 2, 3, 1],
    [15 * MIN - 1, 3, 1], // bucket 14: bucket 0 still inside
    [15 * MIN, 0, 1], // bucket 15: bucket 0 rolled off
    [20 * MIN - 1, 0, 1],
    [20 * MIN, 0, 0], // bucket 20: everything gone
    [3 * MIN, 3, 0], // looking back before the failure (clock went back): not counted
  ];
  for (const [now, ok, fail] of cases) {
    const s = b.channelStats("agt_a", "main", now);
    assert.deepEqual([s.successes, s.upstreamFailures], [ok, fail], `at ${now / MIN} min`);
  }
  assert.equal(b.channelStats("agt_a", "main", 20 * MIN).availability, null);
});

Deno.test("recent counts cover only the newest recentBuckets", () => {
  const b = board();
  feed(b, "upstream_failure", 0, 4);
  feed(b, "success", 8 * MIN, 2);
  feed(b, "upstream_failure", 9 * MIN + 30_000, 1);
  const s = b.channelStats("agt_a", "main", 9 * MIN + 40_000);
  assert.deepEqual([s.recentSuccesses, s.recentFailures], [2, 1]);
  assert.deepEqual([s.successes, s.upstreamFailures], [2, 5]);
  const later = b.channelStats("agt_a", "main", 10 * MIN);
  assert.deepEqual([later.recentSuccesses, later.recentFailures], [0, 1]);
});

Deno.test("buckets are reused in place; late records outside the window are dropped", () => {
  const b = board();
  feed(b, "success", 0, 5); // bucket 0 → slot 0
  feed(b, "upstream_failure", 15 * MIN, 1); // bucket 15 → slot 0 again: resets it
  let s = b.channelStats("agt_a", "main", 15 * MIN);
  assert.deepEqual([s.successes, s.upstreamFailures], [0, 1]);
  feed(b, "success", 0, 1); // bucket 0 arrives late: outside the window now
  feed(b, "success", 2 * MIN, 1); // late but inside
  s = b.channelStats("agt_a", "main", 15 * MIN);
  assert.deepEqual([s.successes, s.upstreamFailures], [1, 1]);
  assert.throws(() => feed(b, "timeout" as Outcome, 0), TypeError);
  assert.throws(() => feed(b, "success", NaN), TypeError);
});

Deno.test("TTFT percentiles come from successes, within the histogram's ±12%", () => {
  const b = board();
  for (let i = 1; i <= 100; i++) feed(b, "success", 1_000, 1, { ttftMs: i * 10 });
  feed(b, "upstream_failure", 1_000, 50, { ttftMs: 60_000 }); // failures' timings are ignored
  const s = b.channelStats("agt_a", "main", 2_000);
  const near = (got: number | null, want: number) =>
    assert.ok(got !== null && Math.abs(got - want) / want <= 0.13, `${got} ≉ ${want}`);
  near(s.ttftP50Ms, 500);
  near(s.ttftP90Ms, 900);
  assert.equal(board().channelStats("agt_a", "main", 0).ttftP50Ms, null);
});

Deno.test("histogram bins: monotone, bounded, percentiles of single values", () => {
  let previous = -1;
  for (const ms of [0, 0.5, 1, 1.2, 2, 10, 100, 1_000, 60_000, 1e9, Infinity]) {
    const k = ttftBin(ms);
    assert.ok(k >= previous && k < TTFT_BINS, `bin of ${ms}`);
    previous = k;
  }
  for (const ms of [3, 40, 700, 5_000, 90_000]) {
    const hist = new Uint32Array(TTFT_BINS);
    hist[ttftBin(ms)] = 1;
    const p = ttftPercentile(hist, 0.5)!;
    assert.ok(Math.abs(p - ms) / ms <= 0.13, `${ms} → ${p}`);
  }
});

Deno.test("throughput is output tokens per second after the first token", () => {
  const b = board();
  feed(b, "success", 0, 1, { ttftMs: 100, outputTokens: 100, durationMs: 2_100 }); // 50 tok/s
  feed(b, "success", 0, 1, { ttftMs: 500, outputTokens: 300, durationMs: 2_500 }); // 150 tok/s
  feed(b, "success", 0, 1, { outputTokens: 0, durationMs: 1_000 }); // nothing generated
  feed(b, "success", 0, 1, { ttftMs: 50, outputTokens: 10, durationMs: 50 }); // no gen time
  feed(b, "upstream_failure", 0, 1, { outputTokens: 1000, durationMs: 1 });
  const s = b.channelStats("agt_a", "main", 0);
  assert.equal(s.throughputTps, 400 / 4); // token-weighted: 400 tokens over 4 s
  const none = board();
  feed(none, "success", 0, 3, { ttftMs: 10 });
  assert.equal(none.channelStats("agt_a", "main", 0).throughputTps, null, "no token counts");
});

Deno.test("per-agent aggregates merge the agent's channels only", () => {
  const b = board();
  const rec = (agentId: string, channelId: string, outcome: Outcome, ttftMs: number) =>
    b.recordOutcome({ agentId, channelId, outcome, ttftMs, atMs: 1_000 });
  for (let i = 0; i < 6; i++) rec("agt_a", "one", "success", 100);
  for (let i = 0; i < 4; i++) rec("agt_a", "two", "upstream_failure", 100);
  for (let i = 0; i < 4; i++) rec("agt_a", "two", "success", 5_000);
  rec("agt_b", "one", "upstream_failure", 1);
  const a = b.agentStats("agt_a", 2_000);
  assert.deepEqual([a.successes, a.upstreamFailures, a.requests], [10, 4, 14]);
  assert.ok(a.ttftP90Ms! > 4_000, "the slow channel's tail shows in the agent's p90");
  assert.deepEqual(b.agentStats("agt_b", 2_000).upstreamFailures, 1);
  assert.equal(b.agentStats("agt_zzz", 2_000).requests, 0);
});

Deno.test("snapshots are cached until a record arrives or a bucket rolls", () => {
  const b = board();
  feed(b, "success", 0);
  const first = b.channelStats("agt_a", "main", 10);
  assert.equal(b.channelStats("agt_a", "main", 20), first, "same bucket, no change: cached");
  assert.equal(b.agentStats("agt_a", 20), b.agentStats("agt_a", 30));
  feed(b, "success", 30);
  assert.equal(b.channelStats("agt_a", "main", 40).successes, 2);
  assert.equal(b.agentStats("agt_a", 40).successes, 2);
  assert.notEqual(b.channelStats("agt_a", "main", MIN), b.channelStats("agt_a", "main", 40));
});

Deno.test("prune drops channels idle for the whole window, keeping memory bounded", () => {
  const b = board();
  for (let i = 0; i < 100; i++) {
    b.recordOutcome({ agentId: `agt_${i % 10}`, channelId: `c${i}`, outcome: "success", atMs: 0 });
  }
  b.recordOutcome({ agentId: "agt_0", channelId: "c0", outcome: "success", atMs: 10 * MIN });
  assert.equal(b.size, 100);
  assert.equal(b.prune(14 * MIN), 0);
  assert.equal(b.prune(15 * MIN), 99);
  assert.equal(b.size, 1);
  assert.equal(b.agentStats("agt_0", 15 * MIN).successes, 1);
  assert.equal(b.agentStats("agt_1", 15 * MIN).requests, 0);
  assert.equal(b.prune(25 * MIN), 1);
  assert.equal(b.size, 0);
});

Deno.test("StatsBoard validates its options", () => {
  assert.throws(() => new StatsBoard({ bucketMs: 0 }), RangeError);
  assert.throws(() => new StatsBoard({ buckets: 1.5 }), RangeError);
  assert.equal(new StatsBoard({ buckets: 1, recentBuckets: 5 }).recentBuckets, 1);
});
