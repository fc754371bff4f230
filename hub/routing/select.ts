/**
 * The one place that decides where a request goes: `select(candidates, policy, context)` returns
 * the channels able to serve it, best first (the gateway fails over down the list; empty means
 * no capacity). It is pure: stats, grades and breaker states arrive inside the candidates, time
 * and randomness inside the context.
 *
 * Every policy first filters by vendor, model (a channel with no model list serves any model)
 * and health (breaker open → out; half-open → in only while no probe is in flight, and the
 * gateway must win `BreakerBoard.tryAcquireProbe` before sending). Then the policy's strategy,
 * one small function in `STRATEGIES`, says which candidates qualify and what (if anything)
 * outranks the auto score. Adding a policy means one function here plus its case in
 * `parsePolicy`.
 *
 * Cost: O(n) filtering and scoring plus a counting sort over the 1 001 score levels, O(n + levels)
 * (see `rank.ts`); no comparison sort on the hot path.
 * @module
 */
import type { AgentTier } from "../store/mod.ts";
import type { BreakerState } from "./breaker.ts";
import { type Grade, meetsGrade, ratioRankValue } from "./grades.ts";
import type { PinnedPolicy, Policy, PolicyType } from "./policy.ts";
import { denseRanks, rankOrder } from "./rank.ts";
import { DEFAULT_WEIGHTS, scoreSteps, type ScoreWeights } from "./score.ts";
import type { ChannelStats } from "./stats.ts";

export { offeredModels, selectCandidates, type SessionChoice } from "./legacy.ts";
export { DEFAULT_WEIGHTS, SCORE_REFS, scoreCandidate, type ScoreWeights } from "./score.ts";

/** One agent channel that might serve the request, with everything routing needs to judge it. */
export interface Candidate {
  agentId: string;
  channelId: string;
  vendor: string;
  /** Models served; empty means any model of the vendor. */
  models: readonly string[];
  tier: AgentTier;
  grade: Grade;
  /** Decimal string from the grade → payout table (e.g. "0.80"). */
  payoutRatio: string;
  stats: ChannelStats;
  breaker: BreakerState;
  probeInFlight: boolean;
  /** Request streams the agent has open (load). */
  streamsOpen: number;
  /** From the agent's heartbeats; `undefined` = unknown. */
  remainingRpm?: number;
  remainingTpm?: number;
}

/** What a decision depends on besides the candidates and the policy. */
export interface SelectContext {
  vendor: string;
  model: string;
  /** Decision time; today's strategies read time only through the candidates' snapshots. */
  nowMs: number;
  /** Uniform in [0, 1); breaks score ties so load spreads (seeded in tests). */
  random: () => number;
  /** Score weights; `DEFAULT_WEIGHTS` unless given. */
  weights?: Readonly<ScoreWeights>;
  /** Return at most this many choices (the gateway rarely fails over more than a few times). */
  limit?: number;
}

/**
 * What a strategy decides: which healthy, matching candidates qualify (`accept`, default all)
 * and what outranks the auto score (`primary`, lower first; default nothing). Scoring and the
 * random tie-break are shared, so every policy spreads load the same way.
 */
export interface StrategyPlan {
  accept?: (c: Candidate) => boolean;
  primary?: (c: Candidate) => number;
}

/** A strategy: one small function from its policy to a plan. */
export type Strategy<P extends Policy = Policy> = (policy: P) => StrategyPlan;

// Pinned lookups are built once per parsed policy object, not on every request; channels are
// indexed agent → channel ids so matching needs no string concatenation per candidate.
const pinnedIndex = new WeakMap<
  object,
  { agents: Set<string>; channels: Map<string, Set<string>> }
>();

function pinnedLookup(policy: PinnedPolicy) {
  let index = pinnedIndex.get(policy);
  if (!index) {
    const channels = new Map<string, Set<string>>();
    for (const key of policy.channels) {
      const slash = key.indexOf("/");
      const agent = key.slice(0, slash);
      let set = channels.get(agent);
      if (!set) channels.set(agent, set = new Set());
      set.add(key.slice(slash + 1));
    }
    index = { agents: new Set(policy.agents), channels };
    pinnedIndex.set(policy, index);
  }
  return index;
}

/** The strategy behind each policy type. */
export const STRATEGIES: { readonly [K in PolicyType]: Strategy<Extract<Policy, { type: K }>> } = {
  auto: () => ({}),
  grade: ({ minGrade }) => ({ accept: (c) => meetsGrade(c.grade, minGrade) }),
  cheapest: ({ minGrade }) => ({
    accept: minGrade === null ? undefined : (c) => meetsGrade(c.grade, minGrade),
    primary: (c) => ratioRankValue(c.payoutRatio),
  }),
  pinned: (policy) => {
    const { agents, channels } = pinnedLookup(policy);
    return {
      accept: (c) => agents.has(c.agentId) || channels.get(c.agentId)?.has(c.channelId) === true,
    };
  },
};

/** True if `c` serves `vendor`/`model` and its breaker lets a request through. */
export function isEligible(c: Candidate, vendor: string, model: string): boolean {
  // Cheapest tests first; the model list (string compares) last.
  const b = c.breaker;
  if (b !== "closed" && (b !== "half-open" || c.probeInFlight)) return false;
  if (c.vendor !== vendor) return false;
  const models = c.models;
  return models.length === 0 || models.includes(model);
}

/**
 * The candidates able to serve this request under `policy`, best first. Returns elements of
 * `candidates` itself, so callers may pass richer objects (e.g. with the session attached).
 */
export function select<C extends Candidate>(
  candidates: readonly C[],
  policy: Policy,
  ctx: SelectContext,
): C[] {
  const { accept, primary } = (STRATEGIES[policy.type] as Strategy)(policy);
  const weights = ctx.weights ?? DEFAULT_WEIGHTS;
  const n = candidates.length;
  // One pass filters, scores and reads the primary key while each candidate is in cache: at
  // 10 000 candidates, separate passes cost more in memory stalls than in arithmetic.
  const picked: C[] = [];
  const steps = new Uint16Array(n);
  const values = primary ? new Float64Array(n) : null;
  for (let i = 0; i < n; i++) {
    const c = candidates[i]!;
    if (!isEligible(c, ctx.vendor, ctx.model) || (accept !== undefined && !accept(c))) continue;
    const k = picked.length;
    steps[k] = scoreSteps(c, weights);
    if (values) values[k] = primary!(c);
    picked.push(c);
  }
  const m = picked.length;
  let classes: Uint32Array | null = null, classCount = 1;
  if (values) ({ ranks: classes, count: classCount } = denseRanks(values.subarray(0, m)));
  const order = rankOrder(
    { steps: steps.subarray(0, m), classes, classCount, random: ctx.random },
    ctx.limit,
  );
  const out = new Array<C>(order.length);
  for (let j = 0; j < order.length; j++) out[j] = picked[order[j]!]!;
  return out;
}
