import assert from "node:assert/strict";
import { seededRandom } from "../../protocol/prng.ts";
import { cand, ctx, statsOf } from "./_test_fixtures.ts";
import { parsePolicy } from "./policy.ts";
import { type Candidate, scoreCandidate, select, STRATEGIES } from "./select.ts";

const ids = (cs: Candidate[]) => cs.map((c) => `${c.agentId}/${c.channelId}`);
const sorted = (xs: string[]) => [...xs].sort();

Deno.test("every policy filters by vendor, model and breaker health", () => {
  const cases: [string, Partial<Candidate>, boolean][] = [
    ["healthy, any model", {}, true],
    ["model listed", { models: ["gpt-4o-mini", "gpt-4o"] }, true],
    ["model not listed", { models: ["gpt-4o-mini"] }, false],
    ["other vendor", { vendor: "anthropic" }, false],
    ["breaker open", { breaker: "open" }, false],
    ["half-open, no probe out", { breaker: "half-open" }, true],
    ["half-open, probe in flight", { breaker: "half-open", probeInFlight: true }, false],
    ["closed ignores a stale probe flag", { probeInFlight: true }, true],
  ];
  const policies = [
    parsePolicy(null),
    parsePolicy({ type: "grade", minGrade: "C" }),
    parsePolicy({ type: "cheapest" }),
    parsePolicy({ type: "pinned", agents: ["agt_x"] }),
  ];
  for (const [name, over, ok] of cases) {
    for (const policy of policies) {
      const got = select([cand({ agentId: "agt_x", ...over })], policy, ctx(1));
      assert.equal(got.length, ok ? 1 : 0, `${name} under ${policy.type}`);
    }
  }
  assert.deepEqual(select([], parsePolicy(null), ctx(1)), [], "no candidates → no capacity");
});

/** A mixed field: grades S..C, equal health, so each policy's own rule decides. */
const field: Candidate[] = [
  cand({ agentId: "agt_s", grade: "S", stats: statsOf(200, 0, 300, 80) }),
  cand({ agentId: "agt_a", grade: "A", stats: statsOf(200, 0, 300, 80) }),
  cand({ agentId: "agt_a", channelId: "c2", grade: "A", stats: statsOf(200, 0, 300, 80) }),
  cand({ agentId: "agt_b", grade: "B", stats: statsOf(200, 0, 300, 80) }),
  cand({ agentId: "agt_c", grade: "C", stats: statsOf(200, 0, 300, 80) }),
  cand({ agentId: "agt_c2", grade: "C", stats: statsOf(200, 0, 300, 80), breaker: "open" }),
  cand({ agentId: "agt_other", grade: "C", vendor: "anthropic" }),
];

Deno.test("each policy picks what it should", () => {
  const cases: [string, unknown, string[], string | null][] = [
    // [name, policy JSON, returned set, first (null = any)]
    ["auto takes every healthy match", null, [
      "agt_s/c1",
      "agt_a/c1",
      "agt_a/c2",
      "agt_b/c1",
      "agt_c/c1",
    ], null],
    ["pinned agent only", { type: "pinned", agents: ["agt_a"] }, ["agt_a/c1", "agt_a/c2"], null],
    ["pinned channel only", { type: "pinned", channels: ["agt_a/c2"] }, ["agt_a/c2"], "agt_a/c2"],
    ["pinned agent or channel", { type: "pinned", agents: ["agt_b"], channels: ["agt_s/c1"] }, [
      "agt_b/c1",
      "agt_s/c1",
    ], null],
    ["pinned to an unhealthy agent: nothing", { type: "pinned", agents: ["agt_c2"] }, [], null],
    ["pinned to another vendor: nothing", { type: "pinned", agents: ["agt_other"] }, [], null],
    ["grade S", { type: "grade", minGrade: "S" }, ["agt_s/c1"], "agt_s/c1"],
    ["grade A: nothing below A", { type: "grade", minGrade: "A" }, [
      "agt_s/c1",
      "agt_a/c1",
      "agt_a/c2",
    ], null],
    ["cheapest: lowest ratio first", { type: "cheapest" }, [
      "agt_s/c1",
      "agt_a/c1",
      "agt_a/c2",
      "agt_b/c1",
      "agt_c/c1",
    ], "agt_c/c1"],
    ["cheapest meeting B", { type: "cheapest", minGrade: "B" }, [
      "agt_s/c1",
      "agt_a/c1",
      "agt_a/c2",
      "agt_b/c1",
    ], "agt_b/c1"],
    ["cheapest meeting S", { type: "cheapest", minGrade: "S" }, ["agt_s/c1"], "agt_s/c1"],
  ];
  for (const [name, json, expected, first] of cases) {
    for (let seed = 0; seed < 5; seed++) {
      const got = ids(select(field, parsePolicy(json), ctx(seed)));
      assert.deepEqual(sorted(got), sorted(expected), `${name} (seed ${seed})`);
      if (first) assert.equal(got[0], first, `${name}: first (seed ${seed})`);
    }
  }
  // Cheapest orders the whole list by ratio: C (0.50) < B (0.65) < A (0.80) < S (0.90).
  const order = select(field, parsePolicy({ type: "cheapest" }), ctx(3)).map((c) => c.grade);
  assert.deepEqual(order, ["C", "B", "A", "A", "S"]);
});

Deno.test("auto ranks by health, speed and load", () => {
  const cases: [string, Partial<Candidate>, Partial<Candidate>][] = [
    // [name, better, worse] with everything else equal
    ["more available", { stats: statsOf(100, 0) }, { stats: statsOf(90, 10) }],
    ["faster first token", { stats: statsOf(100, 0, 300) }, { stats: statsOf(100, 0, 2_000) }],
    ["higher throughput", { stats: statsOf(100, 0, 500, 120) }, {
      stats: statsOf(100, 0, 500, 20),
    }],
    ["less loaded", { streamsOpen: 0 }, { streamsOpen: 6 }],
    ["more headroom", { remainingRpm: 500 }, { remainingRpm: 1 }],
    ["rate-limited upstream last", {}, { remainingTpm: 0 }],
    ["cheaper", { payoutRatio: "0.50" }, { payoutRatio: "0.90" }],
    // Optimism under uncertainty: an untried channel is tried before a proven slow one.
    ["unknown is tried before slow", {}, { stats: statsOf(200, 0, 2_000, 10) }],
    ["unknown beats failing", {}, { stats: statsOf(50, 50, 300, 80) }],
  ];
  for (const [name, better, worse] of cases) {
    const b = cand({ agentId: "agt_better", ...better }),
      w = cand({ agentId: "agt_worse", ...worse });
    assert.ok(scoreCandidate(b) > scoreCandidate(w), `${name}: score`);
    for (let seed = 0; seed < 5; seed++) {
      assert.deepEqual(ids(select([w, b], parsePolicy(null), ctx(seed))), [
        "agt_better/c1",
        "agt_worse/c1",
      ], `${name} (seed ${seed})`);
    }
  }
});

Deno.test("a historyless channel scores as documented", () => {
  // 0.30·0.98 + 0.15·0.98 + 0.20·1 + 0.10·1 + 0.10·(1 − 0.65) + 0.15·1 = 0.926
  assert.equal(scoreCandidate(cand({ agentId: "agt_new" })), 0.926);
  const priceOnly = { availability: 0, recentErrors: 0, ttft: 0, throughput: 0, price: 1, load: 0 };
  assert.equal(scoreCandidate(cand({ agentId: "x", payoutRatio: "0.25" }), priceOnly), 0.75);
  const zero = { ...priceOnly, price: 0 };
  assert.equal(scoreCandidate(cand({ agentId: "x" }), zero), 0, "all-zero weights score 0");
});

Deno.test("ties are broken by the injected random, spreading load evenly", () => {
  const seed = 0x7135;
  console.log(`tie spread seed ${seed}`);
  const twins = ["a", "b", "c", "d"].map((x) => cand({ agentId: `agt_${x}` }));
  const random = seededRandom(seed);
  const firsts = new Map<string, number>();
  const runs = 4_000;
  for (let i = 0; i < runs; i++) {
    const first = select(twins, parsePolicy(null), { ...ctx(0), random })[0]!.agentId;
    firsts.set(first, (firsts.get(first) ?? 0) + 1);
  }
  assert.equal(firsts.size, 4);
  for (const [agent, n] of firsts) {
    assert.ok(Math.abs(n - runs / 4) < runs / 4 * 0.15, `${agent} first ${n} of ${runs}`);
  }
  // Same seed, same decision: replayable.
  const again = (s: number) => ids(select(twins, parsePolicy(null), ctx(s)));
  assert.deepEqual(again(99), again(99));
});

Deno.test("limit returns the best few, and callers' extra fields pass through", () => {
  const many = Array.from({ length: 50 }, (_, i) => ({
    ...cand({ agentId: `agt_${i}`, streamsOpen: i }),
    session: { tag: i },
  }));
  const top = select(many, parsePolicy(null), ctx(1, { limit: 3 }));
  assert.deepEqual(top.map((c) => c.session.tag), [0, 1, 2]);
  assert.equal(select(many, parsePolicy(null), ctx(1, { limit: 0 })).length, 0);
  assert.equal(select(many, parsePolicy(null), ctx(1)).length, 50);
});

Deno.test("the strategy table has exactly one function per policy type", () => {
  assert.deepEqual(Object.keys(STRATEGIES).sort(), ["auto", "cheapest", "grade", "pinned"]);
  for (const f of Object.values(STRATEGIES)) assert.equal(typeof f, "function");
});
