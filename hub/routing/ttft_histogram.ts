/**
 * The TTFT histogram `stats.ts` keeps per bucket instead of samples, so memory per channel is
 * fixed however busy it is. Bin 0 is [0, 1) ms, bin k ≥ 1 is [2^((k-1)/3), 2^(k/3)) ms, and the
 * last bin also takes everything slower (≈17 min). Three bins per octave bound a percentile's
 * error at about ±12%, plenty for ranking and grading.
 * @module
 */

const PER_OCTAVE = 3;

/** Bins per histogram. */
export const TTFT_BINS = 61;

/** The bin a TTFT of `ms` falls in. */
export function ttftBin(ms: number): number {
  return ms < 1 ? 0 : Math.min(TTFT_BINS - 1, 1 + Math.floor(Math.log2(ms) * PER_OCTAVE));
}

/** The value a bin stands for: its geometric midpoint (0.5 ms for bin 0). */
export function ttftBinValue(k: number): number {
  return k === 0 ? 0.5 : 2 ** ((k - 0.5) / PER_OCTAVE);
}

/** The p-quantile (0 < p ≤ 1) of a histogram, rounded to 0.1 ms; `null` when empty. */
export function ttftPercentile(hist: ArrayLike<number>, p: number): number | null {
  let total = 0;
  for (let k = 0; k < TTFT_BINS; k++) total += hist[k]!;
  if (total === 0) return null;
  const target = Math.max(1, Math.ceil(p * total));
  let seen = 0;
  for (let k = 0; k < TTFT_BINS; k++) {
    seen += hist[k]!;
    if (seen >= target) return Math.round(ttftBinValue(k) * 10) / 10;
  }
  return null; // unreachable: seen reaches total
}
