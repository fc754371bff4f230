/**
 * One limited dimension of a channel (requests or tokens per minute): its rate (fixed or AIMD),
 * the token bucket that enforces it, and the last minute's use for heartbeats.
 */
import { DEFAULT_SMART_RPM, DEFAULT_SMART_TPM, FLOOR_RPM, FLOOR_TPM, Rate } from "./aimd.ts";
import { SlidingWindowSum } from "./sliding_window.ts";
import { TokenBucket } from "./token_bucket.ts";

/** Length of the "per minute" window. */
export const MINUTE_MS = 60_000;

/**
 * Request burst: at most one second's worth back to back (at least 1 request), matching
 * vendors that enforce per-minute limits per second.
 */
export const REQUEST_BURST_MS = 1000;

/**
 * Token burst: six seconds' worth (a tenth of the minute). Prompts are lumpy and estimates
 * rough; a single request larger than the burst still passes once the bucket is full, leaving
 * it in debt.
 */
export const TOKEN_BURST_MS = 6000;

/** A rate, its bucket and its recent use. */
export class Dimension {
  readonly bucket: TokenBucket;
  /** Units admitted (and corrected) during the last 60 s. */
  readonly used = new SlidingWindowSum(MINUTE_MS);
  /** Bucket refusals in the current AIMD interval: demand exceeded this rate. */
  refused = 0;
  /** When this bucket last refused a request: the binding limit is the latest to refuse. */
  lastRefusedAt = -Infinity;

  /** Requests per minute: `declared` > 0 is fixed, 0 adapts from `DEFAULT_SMART_RPM`. */
  static requests(declared: number, nowMs: number): Dimension {
    return new Dimension(rate(declared, DEFAULT_SMART_RPM, FLOOR_RPM), REQUEST_BURST_MS, nowMs);
  }

  /** Tokens per minute: `declared` > 0 is fixed, 0 adapts from `DEFAULT_SMART_TPM`. */
  static tokens(declared: number, nowMs: number): Dimension {
    return new Dimension(rate(declared, DEFAULT_SMART_TPM, FLOOR_TPM), TOKEN_BURST_MS, nowMs);
  }

  constructor(readonly rate: Rate, readonly burstMs: number, nowMs: number) {
    this.bucket = new TokenBucket(this.#capacity(), rate.value / MINUTE_MS, nowMs);
  }

  /** The most units any 60 s window may hold (expert requests), at least 1. */
  get hardCap(): number {
    return Math.max(1, Math.floor(this.rate.value));
  }

  /** Re-fits the bucket after the rate changed (`changed` false: nothing to do). */
  retune(changed: boolean, nowMs: number): void {
    if (changed) this.bucket.setRate(this.#capacity(), this.rate.value / MINUTE_MS, nowMs);
  }

  #capacity(): number {
    return Math.max(1, (this.rate.value * this.burstMs) / MINUTE_MS);
  }
}

const rate = (declared: number, fallback: number, floor: number) =>
  declared > 0 ? new Rate(declared, false, floor) : new Rate(fallback, true, floor);
