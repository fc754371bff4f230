/**
 * The agent's last line of defence against overrunning a vendor account: one limiter per
 * channel, asked before every vendor call (`acquire`) and told the outcome after it
 * (`complete`). Pure logic; times are wall-clock milliseconds (`Clock.nowMs()`), passed in or
 * read from the injected clock.
 *
 * - Requests and tokens each go through a token bucket refilled at the effective per-minute
 *   rate. Tokens are estimated up front and corrected by actual − estimated afterwards (debt).
 * - **expert** (the owner declared both RPM and TPM): the rates never change, and besides the
 *   bucket a sliding 60 s log guarantees no 60 s window ever holds more than RPM requests.
 * - **smart** (RPM or TPM left at 0): an undeclared dimension starts from the account's
 *   advertised limits (rate-limit headers) or a conservative default and follows AIMD (see
 *   aimd.ts); a declared one stays fixed and hard-capped as in expert mode.
 * - Either mode: an optional UTC-day token budget, and a vendor 429 pauses the channel for the
 *   vendor's retry-after / reset hint (a 429 without a hint pauses nothing: in smart mode the
 *   multiplicative decrease is the answer to it).
 */
import { type Clock, systemClock } from "../../protocol/clock.ts";
import type { Channel } from "../config.ts";
import { DECREASE_HOLDOFF_MS, INCREASE_INTERVAL_MS } from "./aimd.ts";
import { Dimension } from "./dimension.ts";
import { type HeadersLike, type LimitReason, parseRateLimitHeaders } from "./vendor_429.ts";

export type { HeadersLike, LimitReason };

/** The UTC day the daily budget counts in. */
export const DAY_MS = 86_400_000;
/** No vendor hint parks a channel longer than a minute (the OpenAI SDK ignores longer ones). */
export const MAX_PAUSE_MS = 60_000;

/** How the channel's limits are set. */
export type LimitMode = "expert" | "smart";

/** A channel's limits as the owner declared them; 0 means "undeclared: adapt". */
export interface LimiterConfig {
  vendor: string;
  rpm: number;
  tpm: number;
  /** Tokens per UTC day; 0 or absent: no budget. */
  dailyTokens?: number;
}

/** The limiter config of a channel (a `dailyTokens` field on the channel is honoured). */
export function limiterConfigOf(channel: Channel & { dailyTokens?: number }): LimiterConfig {
  const { vendor, rpm, tpm, dailyTokens } = channel;
  return { vendor, rpm, tpm, dailyTokens };
}

/** Proof of an admitted request; hand it back to `complete`. */
export interface Ticket {
  readonly id: number;
  readonly estimatedTokens: number;
  readonly acquiredAtMs: number;
}

/** Answer of `acquire`. */
export type AcquireResult =
  | { ok: true; ticket: Ticket }
  | { ok: false; retryAfterMs: number; reason: LimitReason };

/** How a vendor call went. A call that never reached the vendor: status 0, actualTokens 0. */
export interface CallOutcome {
  /** Tokens the call really used (from the meter); replaces the estimate. */
  actualTokens: number;
  /** The vendor's HTTP status. */
  status: number;
  /** The vendor's response headers (rate-limit state, retry-after). */
  headers?: HeadersLike;
  /** A 429 meaning "quota/billing exhausted" (key rotation's business, not a rate problem). */
  quotaExhausted?: boolean;
  /** A wait the vendor gave outside the headers (e.g. Gemini's `RetryInfo.retryDelay`). */
  retryAfterMs?: number;
}

/** What heartbeats report to the hub. Rates are per minute; remaining = rate − last 60 s use. */
export interface LimiterSnapshot {
  mode: LimitMode;
  effectiveRpm: number;
  effectiveTpm: number;
  remainingRpm: number;
  remainingTpm: number;
  /** null: no daily budget. */
  remainingDailyTokens: number | null;
  /** Milliseconds the channel stays paused after a vendor 429 (0: not paused). */
  pausedMs: number;
}

/** Per-channel RPM + TPM (+ daily budget) limiter; see the module comment. */
export class ChannelLimiter {
  readonly mode: LimitMode;
  readonly #vendor: string;
  readonly #clock: Clock;
  readonly #rpm: Dimension;
  readonly #tpm: Dimension;
  readonly #dailyBudget: number;
  #day: number;
  #dailyUsed = 0;
  #pausedUntil = -Infinity;
  #pauseReason: LimitReason = "rpm";
  #lastDecreaseAt = -Infinity;
  #intervalStart: number;
  #successes = 0;
  #throttled = 0;
  #nextId = 1;
  readonly #settled = new WeakSet<Ticket>();

  constructor(config: LimiterConfig, clock: Clock = systemClock) {
    const now = clock.nowMs();
    this.#clock = clock;
    this.#vendor = config.vendor;
    this.#rpm = Dimension.requests(config.rpm, now);
    this.#tpm = Dimension.tokens(config.tpm, now);
    this.mode = this.#rpm.rate.adaptive || this.#tpm.rate.adaptive ? "smart" : "expert";
    this.#dailyBudget = config.dailyTokens && config.dailyTokens > 0 ? config.dailyTokens : 0;
    this.#day = Math.floor(now / DAY_MS);
    this.#intervalStart = now;
  }

  /** Admits a request now, or says which limit refused it and for how long. */
  acquire(request: { estimatedTokens: number }, nowMs = this.#clock.nowMs()): AcquireResult {
    const tokens = request.estimatedTokens;
    if (!(tokens >= 0)) throw new RangeError(`estimatedTokens must be >= 0, got ${tokens}`);
    this.#tick(nowMs);
    const waits: [number, LimitReason][] = [[this.#pausedUntil - nowMs, this.#pauseReason]];
    if (this.#dailyBudget && this.#dailyUsed + tokens > this.#dailyBudget) {
      waits.push([(this.#day + 1) * DAY_MS - nowMs, "daily"]);
    }
    if (!this.#rpm.rate.adaptive && this.#rpm.used.count(nowMs) >= this.#rpm.hardCap) {
      waits.push([this.#rpm.used.nextExpiryMs(nowMs), "rpm"]); // expert: hard 60 s cap
    }
    for (
      const [dim, units, reason] of [[this.#rpm, 1, "rpm"], [this.#tpm, tokens, "tpm"]] as const
    ) {
      const wait = dim.bucket.waitMs(units, nowMs);
      if (wait > 0 && nowMs >= this.#pausedUntil) {
        [dim.refused, dim.lastRefusedAt] = [dim.refused + 1, nowMs];
      }
      waits.push([wait, reason]);
    }
    const [retryAfterMs, reason] = waits.reduce((a, b) => (b[0] > a[0] ? b : a));
    if (retryAfterMs > 0) return { ok: false, retryAfterMs: Math.ceil(retryAfterMs), reason };

    this.#rpm.bucket.take(1, nowMs);
    this.#tpm.bucket.take(tokens, nowMs);
    this.#rpm.used.add(1, nowMs);
    this.#tpm.used.add(tokens, nowMs);
    this.#dailyUsed += tokens;
    return {
      ok: true,
      ticket: { id: this.#nextId++, estimatedTokens: tokens, acquiredAtMs: nowMs },
    };
  }

  /** Settles a ticket: corrects the token count and learns from the vendor's answer. */
  complete(ticket: Ticket, outcome: CallOutcome, nowMs = this.#clock.nowMs()): void {
    if (this.#settled.has(ticket)) return;
    this.#settled.add(ticket);
    this.#tick(nowMs);
    const delta = Math.max(0, outcome.actualTokens) - ticket.estimatedTokens;
    this.#tpm.bucket.adjust(delta, nowMs);
    this.#tpm.used.add(delta, nowMs);
    this.#dailyUsed = Math.max(0, this.#dailyUsed + delta);

    const seen = parseRateLimitHeaders(this.#vendor, outcome.headers, nowMs);
    this.#rpm.retune(this.#rpm.rate.observe(seen.requestLimit), nowMs);
    this.#tpm.retune(this.#tpm.rate.observe(seen.tokenLimit), nowMs);

    if (outcome.status >= 200 && outcome.status < 300) this.#successes++;
    if (outcome.status !== 429 || outcome.quotaExhausted) return;
    this.#throttled++;
    const requestsOut = seen.requestRemaining !== undefined && seen.requestRemaining <= 0;
    const tokensOut = seen.tokenRemaining !== undefined && seen.tokenRemaining <= 0;
    const hint = outcome.retryAfterMs ?? seen.retryAfterMs ??
      Math.max(requestsOut ? seen.requestResetMs ?? 0 : 0, tokensOut ? seen.tokenResetMs ?? 0 : 0);
    const reason = tokensOut && !requestsOut ? "tpm" : "rpm";
    if (hint > 0) this.#pause(nowMs + Math.min(MAX_PAUSE_MS, hint), reason, nowMs);

    if (ticket.acquiredAtMs < this.#lastDecreaseAt + DECREASE_HOLDOFF_MS) return; // same event
    const dims = [this.#rpm, this.#tpm];
    let hit = dims.filter((_, i) => (i === 0 ? requestsOut : tokensOut));
    if (!hit.length) {
      // Unknown cause: slow down the adaptive limit that is binding (the last one to refuse).
      hit = dims.filter((d) => d.rate.adaptive).sort((a, b) => b.lastRefusedAt - a.lastRefusedAt)
        .slice(0, 1);
    }
    let changed = false;
    for (const d of hit) {
      const c = d.rate.decrease();
      d.retune(c, nowMs);
      changed ||= c;
    }
    if (changed) this.#lastDecreaseAt = nowMs;
  }

  /** Current limits and headroom, as heartbeats report them. */
  snapshot(nowMs = this.#clock.nowMs()): LimiterSnapshot {
    this.#tick(nowMs);
    const pausedMs = Math.max(0, Math.ceil(this.#pausedUntil - nowMs));
    const left = (d: Dimension) =>
      pausedMs ? 0 : Math.max(0, Math.floor(d.rate.value - d.used.total(nowMs)));
    return {
      mode: this.mode,
      effectiveRpm: Math.floor(this.#rpm.rate.value),
      effectiveTpm: Math.floor(this.#tpm.rate.value),
      remainingRpm: left(this.#rpm),
      remainingTpm: left(this.#tpm),
      remainingDailyTokens: this.#dailyBudget
        ? Math.max(0, this.#dailyBudget - this.#dailyUsed)
        : null,
      pausedMs,
    };
  }

  #pause(untilMs: number, reason: LimitReason, nowMs: number): void {
    if (untilMs <= this.#pausedUntil) return;
    this.#pausedUntil = untilMs;
    this.#pauseReason = reason;
    // Empty the bucket and restart its refill when the pause ends, so no burst follows it.
    (reason === "tpm" ? this.#tpm : this.#rpm).bucket.hold(untilMs, nowMs);
  }

  /** Rolls the UTC day and the AIMD interval forward. */
  #tick(nowMs: number): void {
    const day = Math.floor(nowMs / DAY_MS);
    if (day > this.#day) [this.#day, this.#dailyUsed] = [day, 0];
    if (nowMs - this.#intervalStart < INCREASE_INTERVAL_MS) return;
    if (this.#throttled === 0 && this.#successes > 0) {
      for (const d of [this.#rpm, this.#tpm]) if (d.refused > 0) d.retune(d.rate.increase(), nowMs);
    }
    this.#intervalStart = nowMs;
    this.#successes = this.#throttled = 0;
    for (const d of [this.#rpm, this.#tpm]) d.refused = 0;
  }
}
