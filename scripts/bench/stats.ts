/**
 * Small statistics and formatting helpers shared by the benchmarks. Percentiles use the
 * nearest-rank method on the full sample (no histogram buckets, no interpolation), so p99 of
 * 5,000 samples is the 4,950th smallest one.
 */

export interface Latency {
  p50Us: number;
  p99Us: number;
  meanUs: number;
}

/** Latency summary, in microseconds, of samples given in milliseconds. */
export function latencyOf(samplesMs: Float64Array): Latency {
  const sorted = samplesMs.slice().sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    p50Us: 1000 * percentile(sorted, 50),
    p99Us: 1000 * percentile(sorted, 99),
    meanUs: (1000 * sum) / sorted.length,
  };
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) throw new RangeError("percentile of no samples");
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** Median of a few numbers (the middle round; mean of the two middle ones for an even count). */
export function median(values: number[]): number {
  if (values.length === 0) throw new RangeError("median of no values");
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Field-wise median of records with the same numeric fields. */
export function medianOf<T extends object>(records: T[]): T {
  const out: Record<string, number> = {};
  for (const key of Object.keys(records[0] ?? {})) {
    out[key] = median(records.map((r) => (r as Record<string, number>)[key]!));
  }
  return out as T;
}

/** Rounds to `decimals` places, for display and for the JSON line. */
export function round(value: number, decimals = 1): number {
  const f = 10 ** decimals;
  return Math.round(value * f) / f;
}

/** A plain text table: first row is the header, numbers right-aligned. */
export function table(rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map((c) => typeof c === "number" ? fmt(c) : c));
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[], numeric: boolean[]) =>
    r.map((c, i) => numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)).join("  ")
      .trimEnd();
  const out = [line(cells[0]!, cells[0]!.map(() => false))];
  out.push(widths.map((w) => "-".repeat(w)).join("  "));
  for (let i = 1; i < rows.length; i++) {
    out.push(line(cells[i]!, rows[i]!.map((c) => typeof c === "number")));
  }
  return out.join("\n");
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString("en-US");
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

/** Positive integer flag value. */
export function intFlag(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new RangeError(`--${name} must be a positive integer`);
  }
  return n;
}
