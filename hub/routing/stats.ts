/**
 * Rolling per-channel request statistics over a sliding window of time buckets (default: the
 * last 15 minutes in 1-minute buckets), with per-agent aggregates. Memory per channel is bounded
 * (a ring of buckets; TTFT as a log-scale histogram, not samples); `prune` drops idle channels.
 * Time is passed in (`atMs`/`nowMs` from the caller's `Clock`), so the board is pure.
 * Grades and the payout table live in `grades.ts` and are re-exported here.
 * @module
 */
export * from "./grades.ts";
import { TTFT_BINS as BINS, ttftBin, ttftPercentile } from "./ttft_histogram.ts";

/**
 * What became of one routed request. Client errors (4xx) never count against the channel;
 * `tunnel_failure` (the agent's session died mid-request) counts against the agent's record but
 * not toward the channel's circuit breaker.
 */
export type Outcome = "success" | "upstream_failure" | "tunnel_failure" | "client_error";

/** One request's outcome, as the gateway reports it. */
export interface OutcomeRecord {
  agentId: string;
  channelId: string;
  outcome: Outcome;
  /** Time to first token (or first body byte), ms. */
  ttftMs?: number;
  outputTokens?: number;
  /** Whole request duration, ms (throughput uses the part after the first token). */
  durationMs?: number;
  atMs: number;
}

/** A snapshot of a channel's (or an agent's) window. Rates are `null` when nothing counted. */
export interface ChannelStats {
  /** Every outcome, client errors included. */
  requests: number;
  successes: number;
  upstreamFailures: number;
  clientErrors: number;
  /** successes / (successes + upstreamFailures). */
  availability: number | null;
  /** upstreamFailures / (successes + upstreamFailures). */
  errorRate: number | null;
  /** Counts over the last `recentBuckets` only, so scoring reacts within a minute or two. */
  recentSuccesses: number;
  recentFailures: number;
  /** TTFT percentiles, ms, from a histogram with ~12% bin resolution. */
  ttftP50Ms: number | null;
  ttftP90Ms: number | null;
  /** Output tokens per second of generation (after the first token), token-weighted. */
  throughputTps: number | null;
}

/** Stats of a channel with no history. */
export const EMPTY_STATS: Readonly<ChannelStats> = Object.freeze({
  requests: 0,
  successes: 0,
  upstreamFailures: 0,
  clientErrors: 0,
  availability: null,
  errorRate: null,
  recentSuccesses: 0,
  recentFailures: 0,
  ttftP50Ms: null,
  ttftP90Ms: null,
  throughputTps: null,
});

/** Window shape of a `StatsBoard`. */
export interface StatsOptions {
  /** Bucket width, ms (default 60 000). */
  bucketMs?: number;
  /** Buckets in the window (default 15). */
  buckets?: number;
  /** Newest buckets that make up the "recent" counts (default 2). */
  recentBuckets?: number;
}

/** The key channels are known by across routing: `"agentId/channelId"` (as in pinned policies). */
export function channelKey(agentId: string, channelId: string): string {
  return `${agentId}/${channelId}`;
}

// Per-bucket counters, FIELDS numbers per bucket.
const REQ = 0, OK = 1, FAIL = 2, CLIENT = 3, TOKENS = 4, GEN_MS = 5, FIELDS = 6;

interface Cached {
  version: number;
  epoch: number;
  stats: ChannelStats;
}

class Series {
  readonly epochs: Float64Array;
  readonly counts: Float64Array;
  hist: Uint32Array | null = null; // allocated on the first TTFT: most idle channels never need it
  lastEpoch = -Infinity;
  version = 0;
  cache: Cached | null = null;
  constructor(readonly agentId: string, buckets: number) {
    this.epochs = new Float64Array(buckets).fill(-Infinity);
    this.counts = new Float64Array(buckets * FIELDS);
  }
}

interface AgentEntry {
  channels: Set<Series>;
  version: number;
  cache: Cached | null;
}

const OUTCOMES: ReadonlySet<string> = new Set([
  "success",
  "upstream_failure",
  "tunnel_failure",
  "client_error",
]);
const finite = (v: number | undefined): v is number =>
  typeof v === "number" && Number.isFinite(v) && v >= 0;

/** Rolling stats for every channel that reported an outcome in the window. */
export class StatsBoard {
  readonly bucketMs: number;
  readonly buckets: number;
  readonly recentBuckets: number;
  readonly #series = new Map<string, Series>();
  readonly #agents = new Map<string, AgentEntry>();
  readonly #scratch = new Uint32Array(BINS);

  constructor(options: StatsOptions = {}) {
    this.bucketMs = options.bucketMs ?? 60_000;
    this.buckets = options.buckets ?? 15;
    this.recentBuckets = Math.min(options.recentBuckets ?? 2, this.buckets);
    if (!(this.bucketMs > 0) || !Number.isInteger(this.buckets) || this.buckets < 1) {
      throw new RangeError("StatsBoard needs bucketMs > 0 and an integer buckets ≥ 1");
    }
  }

  /** Number of channels currently tracked. */
  get size(): number {
    return this.#series.size;
  }

  /** Adds one outcome. Outcomes older than the window, or than a bucket's reuse, are dropped. */
  recordOutcome(r: OutcomeRecord): void {
    if (!OUTCOMES.has(r.outcome)) throw new TypeError(`Unknown outcome "${String(r.outcome)}"`);
    if (!Number.isFinite(r.atMs)) throw new TypeError("recordOutcome needs a finite atMs");
    const key = channelKey(r.agentId, r.channelId);
    let s = this.#series.get(key);
    if (!s) {
      s = new Series(r.agentId, this.buckets);
      this.#series.set(key, s);
      let agent = this.#agents.get(r.agentId);
      if (!agent) {
        this.#agents.set(r.agentId, agent = { channels: new Set(), version: 0, cache: null });
      }
      agent.channels.add(s);
    }
    const epoch = Math.floor(r.atMs / this.bucketMs);
    if (epoch <= s.lastEpoch - this.buckets) return; // already outside the window
    const slot = ((epoch % this.buckets) + this.buckets) % this.buckets; // epochs < 0 in tests
    if (s.epochs[slot]! > epoch) return; // the slot already holds a newer minute
    if (s.epochs[slot]! < epoch) {
      s.epochs[slot] = epoch;
      s.counts.fill(0, slot * FIELDS, slot * FIELDS + FIELDS);
      s.hist?.fill(0, slot * BINS, slot * BINS + BINS);
    }
    if (epoch > s.lastEpoch) s.lastEpoch = epoch;
    const c = slot * FIELDS;
    s.counts[c + REQ]!++;
    if (r.outcome === "client_error") s.counts[c + CLIENT]!++;
    else if (r.outcome !== "success") s.counts[c + FAIL]!++; // vendor or tunnel: failed either way
    else {
      s.counts[c + OK]!++;
      // Latency and speed only from successes: a failure's timing says nothing about either.
      if (finite(r.ttftMs)) {
        (s.hist ??= new Uint32Array(this.buckets * BINS))[slot * BINS + ttftBin(r.ttftMs)]!++;
      }
      if (finite(r.outputTokens) && r.outputTokens > 0 && finite(r.durationMs)) {
        const genMs = r.durationMs - (finite(r.ttftMs) ? r.ttftMs : 0);
        if (genMs > 0) {
          s.counts[c + TOKENS]! += r.outputTokens;
          s.counts[c + GEN_MS]! += genMs;
        }
      }
    }
    s.version++;
    this.#agents.get(r.agentId)!.version++;
  }

  /** Snapshot of one channel's window at `nowMs` (cached until it changes or a bucket rolls). */
  channelStats(agentId: string, channelId: string, nowMs: number): ChannelStats {
    const s = this.#series.get(channelKey(agentId, channelId));
    if (!s) return EMPTY_STATS;
    const epoch = Math.floor(nowMs / this.bucketMs);
    if (s.cache?.version === s.version && s.cache.epoch === epoch) return s.cache.stats;
    const stats = this.#summarize([s], epoch);
    s.cache = { version: s.version, epoch, stats };
    return stats;
  }

  /** Snapshot of all of an agent's channels together (e.g. for the agent's grade). */
  agentStats(agentId: string, nowMs: number): ChannelStats {
    const a = this.#agents.get(agentId);
    if (!a) return EMPTY_STATS;
    const epoch = Math.floor(nowMs / this.bucketMs);
    if (a.cache?.version === a.version && a.cache.epoch === epoch) return a.cache.stats;
    const stats = this.#summarize(a.channels, epoch);
    a.cache = { version: a.version, epoch, stats };
    return stats;
  }

  /** Forgets channels with nothing in the window at `nowMs`; returns how many it dropped. */
  prune(nowMs: number): number {
    const epoch = Math.floor(nowMs / this.bucketMs);
    let dropped = 0;
    for (const [key, s] of this.#series) {
      if (s.lastEpoch > epoch - this.buckets) continue;
      this.#series.delete(key);
      const agent = this.#agents.get(s.agentId)!;
      agent.channels.delete(s);
      agent.version++;
      if (agent.channels.size === 0) this.#agents.delete(s.agentId);
      dropped++;
    }
    return dropped;
  }

  #summarize(series: Iterable<Series>, epoch: number): ChannelStats {
    const sum = new Float64Array(FIELDS);
    let recentOk = 0, recentFail = 0;
    const hist = this.#scratch.fill(0);
    for (const s of series) {
      for (let slot = 0; slot < this.buckets; slot++) {
        const e = s.epochs[slot]!;
        if (e <= epoch - this.buckets || e > epoch) continue; // rolled off (or clock went back)
        const c = slot * FIELDS;
        for (let f = 0; f < FIELDS; f++) sum[f]! += s.counts[c + f]!;
        if (e > epoch - this.recentBuckets) {
          recentOk += s.counts[c + OK]!;
          recentFail += s.counts[c + FAIL]!;
        }
        if (s.hist) { for (let k = 0; k < BINS; k++) hist[k]! += s.hist[slot * BINS + k]!; }
      }
    }
    const counted = sum[OK]! + sum[FAIL]!;
    return {
      requests: sum[REQ]!,
      successes: sum[OK]!,
      upstreamFailures: sum[FAIL]!,
      clientErrors: sum[CLIENT]!,
      availability: counted > 0 ? sum[OK]! / counted : null,
      errorRate: counted > 0 ? sum[FAIL]! / counted : null,
      recentSuccesses: recentOk,
      recentFailures: recentFail,
      ttftP50Ms: ttftPercentile(hist, 0.5),
      ttftP90Ms: ttftPercentile(hist, 0.9),
      throughputTps: sum[GEN_MS]! > 0 ? sum[TOKENS]! / (sum[GEN_MS]! / 1000) : null,
    };
  }
}
