/**
 * The auto score: how good a channel looks right now, in [0, 1] (higher is better).
 *
 *   score = Σ wᵢ·termᵢ / Σ wᵢ, rounded to 0.001
 *
 * | term          | weight | value (each in [0, 1])                                           |
 * |---------------|--------|------------------------------------------------------------------|
 * | availability  | 0.30   | (ok + 10·0.98) / (ok + fail + 10) over the window                 |
 * | recentErrors  | 0.15   | 1 − (recentFail + 5·0.02) / (recentOk + recentFail + 5)           |
 * | ttft          | 0.20   | 1000 / (1000 + ttftP50Ms)            (unknown → 1)                |
 * | throughput    | 0.10   | tps / (tps + 50)                     (unknown → 1)                |
 * | price         | 0.10   | 1 − payoutRatio                      (unparseable → 0)            |
 * | load          | 0.15   | 1/(1 + streamsOpen/4) · h(remainingRpm, 5) · h(remainingTpm, 5000)|
 *
 * with h(x, half) = x/(x + half), h(undefined) = 1, h(≤0) = 0.
 *
 * Why: availability dominates (a failed request costs a retry and the user's patience); the
 * recent term reacts within a bucket or two where the 15-minute window would dilute a fresh
 * problem; priors (10 and 5 pseudo-samples at 98%) keep one early failure from sinking a new
 * channel and one early success from crowning it. TTFT outweighs throughput because it is what
 * users feel first. Price and load are tie-breakers between similar channels that still spread
 * traffic. Rounding to 0.001 makes near-equal channels exactly tied, so the random tie-break
 * shares load between them instead of one always winning by a hair. Unmeasured speed counts as
 * the best possible (optimism under uncertainty): a middling prior let a slow channel that
 * happened to be measured first keep an untried faster one from ever being tried; with the
 * optimistic prior every channel gets measured, and the load term spreads the first burst. The agent's tier is not a
 * term: trust is a policy decision (e.g. pinning), not something to trade against latency.
 * @module
 */
import { RATIO_ONE_UNITS, ratioRankValue } from "./grades.ts";
import type { Candidate } from "./select.ts";

/** Relative weight of each score term (they need not sum to 1; the score divides by the sum). */
export interface ScoreWeights {
  availability: number;
  recentErrors: number;
  ttft: number;
  throughput: number;
  price: number;
  load: number;
}

/** The default weights (see the module docs for why). */
export const DEFAULT_WEIGHTS: Readonly<ScoreWeights> = Object.freeze({
  availability: 0.30,
  recentErrors: 0.15,
  ttft: 0.20,
  throughput: 0.10,
  price: 0.10,
  load: 0.15,
});

/** Reference points of the score terms (see the module docs). */
export const SCORE_REFS = Object.freeze({
  priorAvailability: 0.98,
  priorSamples: 10,
  recentPriorSamples: 5,
  ttftRefMs: 1_000,
  throughputRefTps: 50,
  loadRefStreams: 4,
  rpmHalf: 5,
  tpmHalf: 5_000,
});

/** Scores are multiples of this; equal scores are broken by the injected random. */
export const SCORE_QUANTUM = 0.001;

/** Largest quantised score (`score / SCORE_QUANTUM`). */
export const SCORE_STEPS = 1000;

const {
  priorAvailability: PRIOR,
  priorSamples: PRIOR_N,
  recentPriorSamples: RECENT_N,
  ttftRefMs: TTFT_REF,
  throughputRefTps: TPS_REF,
  loadRefStreams: LOAD_REF,
  rpmHalf: RPM_HALF,
  tpmHalf: TPM_HALF,
} = SCORE_REFS;

/** The score in quantised steps, 0..`SCORE_STEPS` (what ranking uses). */
export function scoreSteps(c: Candidate, w: Readonly<ScoreWeights> = DEFAULT_WEIGHTS): number {
  const s = c.stats;
  const availability = (s.successes + PRIOR_N * PRIOR) /
    (s.successes + s.upstreamFailures + PRIOR_N);
  const recentErrors = 1 - (s.recentFailures + RECENT_N * (1 - PRIOR)) /
      (s.recentSuccesses + s.recentFailures + RECENT_N);
  const p50 = s.ttftP50Ms, tps = s.throughputTps;
  const ttft = p50 === null ? 1 : TTFT_REF / (TTFT_REF + p50);
  const throughput = tps === null ? 1 : tps / (tps + TPS_REF);
  const ratio = ratioRankValue(c.payoutRatio) / RATIO_ONE_UNITS;
  const price = ratio < 1 ? 1 - ratio : 0;
  const rpm = c.remainingRpm, tpm = c.remainingTpm;
  const load = LOAD_REF / (LOAD_REF + c.streamsOpen) *
    (rpm === undefined ? 1 : rpm > 0 ? rpm / (rpm + RPM_HALF) : 0) *
    (tpm === undefined ? 1 : tpm > 0 ? tpm / (tpm + TPM_HALF) : 0);
  const total = w.availability + w.recentErrors + w.ttft + w.throughput + w.price + w.load;
  const score = (w.availability * availability + w.recentErrors * recentErrors + w.ttft * ttft +
    w.throughput * throughput + w.price * price + w.load * load) / total;
  // Clamp: bad inputs (negative counts, NaN, zero weights) must stay inside the ranking table.
  const steps = Math.round(score * SCORE_STEPS);
  return steps >= 0 ? (steps <= SCORE_STEPS ? steps : SCORE_STEPS) : 0;
}

/** The auto score of one candidate, in [0, 1], a multiple of `SCORE_QUANTUM`. */
export function scoreCandidate(c: Candidate, w: Readonly<ScoreWeights> = DEFAULT_WEIGHTS): number {
  return scoreSteps(c, w) / SCORE_STEPS;
}
