/**
 * Shared builders for the routing tests and bench: candidates with sensible defaults and
 * seeded random populations.
 * @module
 */
import { seededRandom } from "../../protocol/prng.ts";
import { DEFAULT_PAYOUT_RATIOS, type Grade, GRADES } from "./grades.ts";
import type { Candidate, SelectContext } from "./select.ts";
import { type ChannelStats, EMPTY_STATS } from "./stats.ts";

/** A healthy, historyless grade-B OpenAI candidate; override what the case is about. */
export function cand(over: Partial<Candidate> & { agentId: string }): Candidate {
  const grade = over.grade ?? "B";
  return {
    channelId: "c1",
    vendor: "openai",
    models: [],
    tier: 2,
    grade,
    payoutRatio: DEFAULT_PAYOUT_RATIOS[grade],
    stats: EMPTY_STATS,
    breaker: "closed",
    probeInFlight: false,
    streamsOpen: 0,
    ...over,
  };
}

/** Stats with `ok` successes and `fail` failures, all recent, and the given speeds. */
export function statsOf(
  ok: number,
  fail: number,
  ttftMs: number | null = null,
  tps: number | null = null,
): ChannelStats {
  const counted = ok + fail;
  return {
    ...EMPTY_STATS,
    requests: counted,
    successes: ok,
    upstreamFailures: fail,
    availability: counted ? ok / counted : null,
    errorRate: counted ? fail / counted : null,
    recentSuccesses: ok,
    recentFailures: fail,
    ttftP50Ms: ttftMs,
    ttftP90Ms: ttftMs === null ? null : ttftMs * 2,
    throughputTps: tps,
  };
}

/** A context for openai/gpt-4o at t=0 with a seeded random. */
export function ctx(seed: number, over: Partial<SelectContext> = {}): SelectContext {
  return { vendor: "openai", model: "gpt-4o", nowMs: 0, random: seededRandom(seed), ...over };
}

/**
 * `n` varied candidates: mixed vendors, model lists, grades, breaker states, loads and stats,
 * so every filter and score term is exercised.
 */
export function population(n: number, seed: number): Candidate[] {
  const r = seededRandom(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const out: Candidate[] = [];
  for (let i = 0; i < n; i++) {
    const grade: Grade = pick(GRADES);
    const ok = Math.floor(r() * 500), fail = Math.floor(r() * r() * 60);
    const hasSpeed = r() < 0.8;
    out.push(cand({
      agentId: `agt_${Math.floor(i / 4)}`,
      channelId: `c${i % 4}`,
      vendor: r() < 0.8 ? "openai" : "anthropic",
      models: pick([[], ["gpt-4o"], ["gpt-4o", "gpt-4o-mini"], ["o3"]]),
      tier: pick([0, 1, 2] as const),
      grade,
      payoutRatio: DEFAULT_PAYOUT_RATIOS[grade],
      stats: statsOf(ok, fail, hasSpeed ? 100 + r() * 4000 : null, hasSpeed ? 5 + r() * 150 : null),
      breaker: pick(["closed", "closed", "closed", "closed", "open", "half-open"] as const),
      probeInFlight: r() < 0.5,
      streamsOpen: Math.floor(r() * 20),
      remainingRpm: r() < 0.5 ? undefined : Math.floor(r() * 100),
      remainingTpm: r() < 0.5 ? undefined : Math.floor(r() * 100_000),
    }));
  }
  return out;
}
