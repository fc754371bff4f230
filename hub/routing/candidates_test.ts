import assert from "node:assert/strict";
import { seededRandom } from "../../protocol/prng.ts";
import type { SessionRegistry } from "../tunnel/registry.ts";
import { BreakerBoard } from "./breaker.ts";
import {
  buildCandidates,
  type CandidateSources,
  recordRoutingOutcome,
  type SessionView,
} from "./candidates.ts";
import { parsePolicy } from "./policy.ts";
import { offeredModels, select, selectCandidates } from "./select.ts";
import { channelKey, type OutcomeRecord, StatsBoard } from "./stats.ts";

const MIN = 60_000;

function session(agentId: string, channels: [string, string[]][], streamsOpen = 0): SessionView {
  return {
    agentId,
    closed: false,
    streamsOpen,
    capabilities: {
      channels: channels.map(([id, models]) => ({ id, vendor: "openai", models, rpm: 0, tpm: 0 })),
    },
  };
}

function sources(nowMs: number, over: Partial<CandidateSources> = {}): CandidateSources {
  return { stats: new StatsBoard(), breakers: new BreakerBoard(), nowMs, tierOf: () => 2, ...over };
}

Deno.test("buildCandidates: one per channel of open, known sessions, with board state", () => {
  const src = sources(1_000, {
    tierOf: (id) => (id === "agt_unknown" ? undefined : id === "agt_a" ? 0 : 2),
    remaining: (agent, ch) => (agent === "agt_a" && ch === "x" ? { rpm: 7, tpm: 900 } : undefined),
  });
  for (let i = 0; i < 3; i++) src.breakers.onFailure(channelKey("agt_a", "y"), 0);
  for (let i = 0; i < 30; i++) {
    src.stats.recordOutcome({ agentId: "agt_a", channelId: "x", outcome: "success", atMs: 500 });
  }
  const closed = { ...session("agt_gone", [["z", []]]), closed: true };
  const built = buildCandidates([
    session("agt_a", [["x", ["gpt-4o"]], ["y", []]], 3),
    session("agt_unknown", [["x", []]]),
    closed,
  ], src);
  assert.deepEqual(built.map((c) => [c.agentId, c.channelId]), [["agt_a", "x"], ["agt_a", "y"]]);
  const [x, y] = built as [typeof built[0], typeof built[0]];
  assert.equal(x.tier, 0);
  assert.equal(x.grade, "S", "30 clean successes: the agent grades S");
  assert.equal(x.payoutRatio, "0.90");
  assert.equal(y.grade, "S", "the grade is the agent's, shared by its channels");
  assert.equal(x.stats.successes, 30);
  assert.equal(y.stats.successes, 0);
  assert.deepEqual([x.breaker, y.breaker], ["closed", "open"]);
  assert.deepEqual([x.remainingRpm, x.remainingTpm, y.remainingRpm], [7, 900, undefined]);
  assert.deepEqual([x.streamsOpen, x.models], [3, ["gpt-4o"]]);
  assert.equal(x.session.agentId, "agt_a");
  const fresh = buildCandidates([session("agt_n", [["m", []]])], sources(0));
  assert.deepEqual([fresh[0]!.grade, fresh[0]!.payoutRatio], ["B", "0.65"], "newcomers start at B");
});

Deno.test("auto prefers the fast healthy channel and moves away when its stats degrade", () => {
  const seed = 0xa070;
  console.log(`degrade seed ${seed}`);
  const stats = new StatsBoard(), breakers = new BreakerBoard();
  const rec = (agentId: string, outcome: OutcomeRecord["outcome"], atMs: number, ttftMs: number) =>
    recordRoutingOutcome(stats, breakers, {
      agentId,
      channelId: "main",
      outcome,
      ttftMs,
      outputTokens: 200,
      durationMs: ttftMs + (agentId === "agt_fast" ? 2_000 : 5_000),
      atMs,
    });
  for (let i = 0; i < 50; i++) {
    rec("agt_fast", "success", i * 1_000, 200);
    rec("agt_slow", "success", i * 1_000, 1_200);
  }
  const sessions = [session("agt_fast", [["main", []]]), session("agt_slow", [["main", []]])];
  const random = seededRandom(seed);
  const first = (nowMs: number) => {
    const built = buildCandidates(sessions, { stats, breakers, nowMs, tierOf: () => 2 });
    const ctx = { vendor: "openai", model: "gpt-4o", nowMs, random };
    return select(built, parsePolicy(null), ctx).map((c) => c.agentId);
  };
  assert.deepEqual(first(2 * MIN), ["agt_fast", "agt_slow"]);

  // Intermittent failures (never 3 in a row, so the breaker stays closed) and slower answers.
  const t0 = 5 * MIN;
  for (let i = 0; i < 20; i++) {
    rec("agt_fast", "success", t0 + i * 2_000, 3_000);
    rec("agt_fast", "upstream_failure", t0 + i * 2_000 + 500, 0);
    rec("agt_fast", "upstream_failure", t0 + i * 2_000 + 900, 0);
  }
  assert.equal(breakers.state(channelKey("agt_fast", "main"), t0 + MIN), "closed");
  assert.deepEqual(first(t0 + MIN), ["agt_slow", "agt_fast"], "degraded stats move traffic");

  // Three consecutive failures open the breaker: the channel drops out entirely.
  for (let i = 0; i < 3; i++) rec("agt_fast", "upstream_failure", t0 + MIN + i, 0);
  assert.deepEqual(first(t0 + MIN + 10), ["agt_slow"]);
  // After the cooldown it is half-open: back in the list until someone takes the probe.
  const half = t0 + MIN + 30_010;
  assert.deepEqual(first(half), ["agt_slow", "agt_fast"]);
  assert.equal(breakers.tryAcquireProbe(channelKey("agt_fast", "main"), half), true);
  assert.deepEqual(first(half + 1), ["agt_slow"], "probe in flight: no second request");
  rec("agt_fast", "success", half + 100, 200);
  assert.equal(breakers.state(channelKey("agt_fast", "main"), half + 100), "closed");

  // Once the bad minutes roll out of the window, clean traffic wins it back.
  // (Both keep serving: a channel with no stats in the window would count as untried.)
  for (let i = 0; i < 50; i++) {
    rec("agt_fast", "success", 25 * MIN + i * 1_000, 200);
    rec("agt_slow", "success", 25 * MIN + i * 1_000, 1_200);
  }
  assert.deepEqual(first(26 * MIN), ["agt_fast", "agt_slow"]);
});

Deno.test("recordRoutingOutcome feeds stats and breaker; client errors touch neither verdict", () => {
  const stats = new StatsBoard(), breakers = new BreakerBoard();
  const r = (outcome: OutcomeRecord["outcome"], atMs: number) =>
    recordRoutingOutcome(stats, breakers, { agentId: "a", channelId: "c", outcome, atMs });
  for (let i = 0; i < 5; i++) r("client_error", i);
  assert.equal(breakers.state("a/c", 10), "closed");
  assert.equal(stats.channelStats("a", "c", 10).availability, null);
  for (let i = 0; i < 3; i++) r("upstream_failure", 20 + i);
  assert.equal(breakers.state("a/c", 30), "open");
  assert.equal(stats.channelStats("a", "c", 30).upstreamFailures, 3);
});

Deno.test("the legacy selectCandidates/offeredModels exports still work", () => {
  const s1 = { ...session("agt_1", [["m", ["gpt-4o", "o3"]]], 4), generation: 1 };
  const s2 = { ...session("agt_2", [["n", []]], 1), generation: 2 };
  const s3 = { ...session("agt_3", [["k", ["gpt-4o-mini"]]]), generation: 3 };
  const registry = { sessions: () => [s1, s2, s3].values() } as unknown as SessionRegistry;
  const got = selectCandidates(registry, "openai", "gpt-4o");
  assert.deepEqual(got.map((c) => [c.session.agentId, c.channelId]), [["agt_2", "n"], [
    "agt_1",
    "m",
  ]]);
  assert.deepEqual(offeredModels(registry, "openai"), ["gpt-4o", "gpt-4o-mini", "o3"]);
  assert.deepEqual(offeredModels(registry, "anthropic"), []);
});

Deno.test("buildCandidates: a location keeps only channels declaring it; deployments route", () => {
  const s: SessionView = {
    agentId: "agt_v",
    closed: false,
    streamsOpen: 0,
    capabilities: {
      channels: [
        { id: "us", vendor: "vertex", models: [], rpm: 0, tpm: 0, locations: ["us-central1"] },
        { id: "eu", vendor: "vertex", models: [], rpm: 0, tpm: 0, locations: ["europe-west4"] },
        { id: "any", vendor: "vertex", models: [], rpm: 0, tpm: 0 },
        { id: "az", vendor: "azure", models: ["x"], rpm: 0, tpm: 0, deployments: { d: "gpt-4o" } },
      ],
    },
  };
  const ids = (location?: string) =>
    buildCandidates([s], sources(0, { location })).map((c) => c.channelId);
  assert.deepEqual(ids(), ["us", "eu", "any", "az"]);
  assert.deepEqual(ids("europe-west4"), ["eu"]);
  assert.deepEqual(ids("global"), []);
  const az = buildCandidates([s], sources(0)).find((c) => c.channelId === "az")!;
  assert.deepEqual(az.models, ["x", "d"]);
});
