/**
 * Orders candidates by (class ascending, score descending, random), where a class is a
 * strategy's primary key (e.g. the price rank for `cheapest`; all 0 otherwise).
 *
 * Why a counting sort: scores are quantised to SCORE_STEPS + 1 levels, so (class, score) takes
 * few distinct values and a counting sort orders n candidates in O(n + levels), where a
 * comparison sort of 10 000 objects costs about a millisecond. Runs of equal keys are then
 * shuffled with the injected random (Fisher–Yates), which is exactly a uniform random
 * tie-break; only the first `limit` positions are shuffled, since nobody looks further. Too
 * many classes for a levels table fall back to a comparator sort.
 * @module
 */
import { SCORE_STEPS } from "./score.ts";

const LEVELS_PER_CLASS = SCORE_STEPS + 1;
/** Above this many levels the counting table would outweigh the candidates themselves. */
const LEVELS_MAX = 1 << 16;

/** Inputs of one ranking: `steps[i]` is candidate i's quantised score (0..SCORE_STEPS). */
export interface RankInput {
  steps: ArrayLike<number>;
  /** Dense class ranks 0..classCount-1 (lower first), or `null` for a single class. */
  classes: ArrayLike<number> | null;
  classCount: number;
  random: () => number;
}

/** Candidate indices, best first; at most `limit` of them. `slow` forces the comparator path. */
export function rankOrder(input: RankInput, limit = Infinity, slow = false): Uint32Array {
  const { steps, classes, random } = input;
  const n = steps.length;
  const outLen = Math.max(0, Math.min(n, limit));
  const levels = input.classCount * LEVELS_PER_CLASS;
  if (slow || levels > Math.max(LEVELS_MAX, 4 * n)) return rankSlow(input, outLen);
  const key = new Uint32Array(n);
  const start = new Uint32Array(levels + 1);
  for (let i = 0; i < n; i++) {
    const k = (classes ? classes[i]! * LEVELS_PER_CLASS : 0) + (SCORE_STEPS - steps[i]!);
    key[i] = k;
    start[k + 1]!++;
  }
  for (let l = 0; l < levels; l++) start[l + 1]! += start[l]!;
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[start[key[i]!]!++] = i;
  // Shuffle each run of equal keys, as far as the output reaches.
  for (let j = 0; j < outLen;) {
    const k = key[order[j]!]!;
    let end = j + 1;
    while (end < n && key[order[end]!] === k) end++;
    for (let t = j; t < Math.min(end, outLen) && end - t > 1; t++) {
      const u = t + Math.min(end - t - 1, Math.floor(random() * (end - t)));
      const swap = order[t]!;
      order[t] = order[u]!;
      order[u] = swap;
    }
    j = end;
  }
  return order.subarray(0, outLen);
}

function rankSlow(input: RankInput, outLen: number): Uint32Array {
  const { steps, classes } = input;
  const n = steps.length;
  const tie = new Float64Array(n);
  for (let i = 0; i < n; i++) tie[i] = input.random();
  const order = Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) =>
    (classes ? classes[a]! - classes[b]! : 0) || steps[b]! - steps[a]! || tie[a]! - tie[b]! ||
    a - b
  );
  return Uint32Array.from(order.slice(0, outLen));
}

/**
 * Dense ranks of `values` (equal values share a rank; lower values rank first). Strategies have
 * few distinct primaries (one price per grade), so a linear scan of the distinct values beats
 * hashing doubles; a Map takes over past `SCAN_MAX` of them.
 */
export function denseRanks(values: ArrayLike<number>): { ranks: Uint32Array; count: number } {
  const SCAN_MAX = 16;
  const n = values.length;
  const distinct: number[] = [];
  const slot = new Uint32Array(n);
  let map: Map<number, number> | null = null;
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    let d = -1;
    if (map) d = map.get(v) ?? -1;
    else {
      for (let k = 0; k < distinct.length && d < 0; k++) if (distinct[k] === v) d = k;
    }
    if (d < 0) {
      d = distinct.push(v) - 1;
      if (map) map.set(v, d);
      else if (distinct.length > SCAN_MAX) map = new Map(distinct.map((x, k) => [x, k]));
    }
    slot[i] = d;
  }
  const bySlot = distinct.map((_, k) => k).sort((a, b) => distinct[a]! - distinct[b]!);
  const rankOfSlot = new Uint32Array(distinct.length);
  bySlot.forEach((k, r) => rankOfSlot[k] = r);
  for (let i = 0; i < n; i++) slot[i] = rankOfSlot[slot[i]!]!;
  return { ranks: slot, count: distinct.length };
}
