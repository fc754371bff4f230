/**
 * Grades (S best … C worst) derived from a channel's or agent's rolling stats, and the
 * grade → payout ratio table billing uses. Ratios are decimal strings: money is never a float.
 * Re-exported by `stats.ts`.
 * @module
 */
import type { ChannelStats } from "./stats.ts";

/** Quality grade, best first. */
export type Grade = "S" | "A" | "B" | "C";

/** Every grade, best first. */
export const GRADES: readonly Grade[] = ["S", "A", "B", "C"];

const RANK: Readonly<Record<Grade, number>> = { S: 0, A: 1, B: 2, C: 3 };

/** True if `grade` is `min` or better. */
export function meetsGrade(grade: Grade, min: Grade): boolean {
  return RANK[grade] <= RANK[min];
}

/**
 * Grade of a channel (or agent) with too little history to judge. B rather than C so newcomers
 * pass `grade`/`cheapest` policies up to B and get the traffic that builds their history; not S
 * or A, so an unproven channel never counts as premium.
 */
export const DEFAULT_GRADE: Grade = "B";

/** What a grade requires: availability at least, TTFT p90 at most (ms; `null` = no limit). */
export interface GradeBar {
  availability: number;
  ttftP90Ms: number | null;
}

/** Thresholds `gradeOf` applies; anything failing the B bar is C. */
export interface GradeThresholds {
  /** Successes + upstream failures needed before stats are trusted over `DEFAULT_GRADE`. */
  minSamples: number;
  S: GradeBar;
  A: GradeBar;
  B: GradeBar;
}

/**
 * Default thresholds. TTFT p90 rather than p50 because the tail is what users notice; throughput
 * is left out because it depends on the model far more than on the channel.
 */
export const GRADE_THRESHOLDS: Readonly<GradeThresholds> = {
  minSamples: 20,
  S: { availability: 0.995, ttftP90Ms: 2_000 },
  A: { availability: 0.98, ttftP90Ms: 4_000 },
  B: { availability: 0.95, ttftP90Ms: 8_000 },
};

/** Inputs to grading beyond the rolling stats. */
export interface GradeInputs {
  /**
   * Reserved: share of honeypot requests answered correctly (0..1), once the hub sends them.
   * Ignored today; it is a named slot so callers and tests can be wired before it counts.
   */
  honeypotAccuracy?: number | null;
}

/** The best grade whose bar `stats` clears, or `DEFAULT_GRADE` while history is thin. */
export function gradeOf(
  stats: ChannelStats,
  _inputs: GradeInputs = {},
  thresholds: GradeThresholds = GRADE_THRESHOLDS,
): Grade {
  const counted = stats.successes + stats.upstreamFailures;
  if (counted < thresholds.minSamples || stats.availability === null) return DEFAULT_GRADE;
  for (const grade of ["S", "A", "B"] as const) {
    const bar = thresholds[grade];
    const fastEnough = bar.ttftP90Ms === null || stats.ttftP90Ms === null ||
      stats.ttftP90Ms <= bar.ttftP90Ms;
    if (stats.availability >= bar.availability && fastEnough) return grade;
  }
  return "C";
}

/** Grade → payout ratio (share of the official price paid to the agent), as decimal strings. */
export type PayoutTable = Readonly<Record<Grade, string>>;

/** Default payout ratios; billing imports this (or a configured table) to settle agents. */
export const DEFAULT_PAYOUT_RATIOS: PayoutTable = Object.freeze({
  S: "0.90",
  A: "0.80",
  B: "0.65",
  C: "0.50",
});

/** Fractional digits a ratio may carry, matching the store's USD scale. */
export const RATIO_SCALE = 12;
const RATIO_ONE = 10n ** BigInt(RATIO_SCALE);
const RATIO_TEXT = /^(\d+)(?:\.(\d{1,12}))?$/;

/**
 * Parses a payout ratio ("0.9", "0.65", "1") into exact units of 1e-12 (so "0.90" →
 * 900_000_000_000n). Throws `TypeError` unless it is a plain decimal string in [0, 1].
 */
export function parsePayoutRatio(text: unknown): bigint {
  if (typeof text !== "string") {
    throw new TypeError(
      `A payout ratio must be a decimal string such as "0.80", not ${typeof text}`,
    );
  }
  const m = RATIO_TEXT.exec(text);
  if (!m) {
    throw new TypeError(
      `Invalid payout ratio "${text.slice(0, 40)}": expected a decimal string such as "0.80" ` +
        `with at most ${RATIO_SCALE} fractional digits`,
    );
  }
  const units = BigInt(m[1]!) * RATIO_ONE + BigInt((m[2] ?? "").padEnd(RATIO_SCALE, "0"));
  if (units > RATIO_ONE) throw new TypeError(`Invalid payout ratio "${text}": must be at most 1`);
  return units;
}

/**
 * Validates a configured grade → ratio table (e.g. from the hub config). Missing grades fall back
 * to `DEFAULT_PAYOUT_RATIOS`; a better grade may not pay less than a worse one, since that would
 * reward getting worse.
 */
export function parsePayoutTable(value: unknown): PayoutTable {
  if (value === null || value === undefined) return DEFAULT_PAYOUT_RATIOS;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError('A payout table must be an object such as {"S":"0.90","A":"0.80"}');
  }
  const input = value as Record<string, unknown>;
  for (const key of Object.keys(input)) {
    if (!(GRADES as readonly string[]).includes(key)) {
      throw new TypeError(`Unknown grade "${key}" in payout table: grades are S, A, B, C`);
    }
  }
  const table = {} as Record<Grade, string>;
  let previous: bigint | null = null;
  for (const grade of GRADES) {
    const text = input[grade] ?? DEFAULT_PAYOUT_RATIOS[grade];
    let units: bigint;
    try {
      units = parsePayoutRatio(text);
    } catch (e) {
      throw new TypeError(`Payout ratio for grade ${grade}: ${(e as Error).message}`);
    }
    if (previous !== null && units > previous) {
      throw new TypeError(`Payout ratio for grade ${grade} (${text}) exceeds the better grade's`);
    }
    previous = units;
    table[grade] = text as string;
  }
  return Object.freeze(table);
}

const ratioCache = new Map<string, number>();
// The last few ratios seen, checked before the Map: a handful of strings (one per grade) cover
// nearly every candidate, and comparing them is cheaper than hashing on every call.
const recentText: string[] = [], recentValue: number[] = [];

/**
 * A ratio as a plain number for ranking only (never for money): exact units of 1e-12, which fit
 * a double exactly since ratios are ≤ 1. Unparseable ratios rank as `Infinity` (most expensive)
 * rather than throwing, so one bad candidate cannot fail every routing decision.
 */
export function ratioRankValue(ratio: string): number {
  for (let i = 0; i < recentText.length; i++) if (recentText[i] === ratio) return recentValue[i]!;
  let v = ratioCache.get(ratio);
  if (v === undefined) {
    try {
      v = Number(parsePayoutRatio(ratio));
    } catch {
      v = Infinity;
    }
    if (ratioCache.size >= 1024) ratioCache.clear(); // only misuse gets here; stay bounded
    ratioCache.set(ratio, v);
  }
  if (recentText.length >= 8) recentText.length = recentValue.length = 0;
  recentText.push(ratio);
  recentValue.push(v);
  return v;
}

/** Units of 1e-12 in a ratio of 1, as a number (for `ratioRankValue`). */
export const RATIO_ONE_UNITS = Number(RATIO_ONE);
