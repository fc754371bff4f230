/**
 * Circuit breakers, one per channel (keyed by `channelKey(agentId, channelId)`).
 *
 * closed ──(N consecutive upstream failures)──▶ open ──(cooldown elapsed)──▶ half-open
 * half-open admits exactly one probe: success → closed (everything reset), failure → open again
 * with the cooldown doubled (capped). Client errors (4xx) never count: they are the caller's
 * fault, not the channel's. Time is passed in, so the board is pure.
 * @module
 */
import type { Outcome } from "./stats.ts";

/** Where a channel's breaker stands. */
export type BreakerState = "closed" | "open" | "half-open";

/** Thresholds and timings of a `BreakerBoard`. */
export interface BreakerOptions {
  /** Consecutive upstream failures that open the breaker (default 3). */
  failureThreshold?: number;
  /** First cooldown, ms (default 30 000). */
  cooldownMs?: number;
  /** Cooldown cap after repeated failed probes, ms (default 300 000). */
  maxCooldownMs?: number;
  /**
   * A probe held longer than this is presumed lost (its caller died or never reported), ms
   * (default 120 000); without it one lost probe would keep the channel half-open forever.
   */
  probeTimeoutMs?: number;
}

interface Entry {
  /** Consecutive upstream failures while closed. */
  failures: number;
  /** When the breaker last opened; `null` while closed. */
  openedAtMs: number | null;
  /** Cooldown of the current (or next) opening. */
  cooldownMs: number;
  /** When the half-open probe was handed out; `null` if none is in flight. */
  probeSinceMs: number | null;
}

/** All channels' breakers. Closed channels without failures hold no memory. */
export class BreakerBoard {
  readonly failureThreshold: number;
  readonly cooldownMs: number;
  readonly maxCooldownMs: number;
  readonly probeTimeoutMs: number;
  readonly #entries = new Map<string, Entry>();

  constructor(options: BreakerOptions = {}) {
    this.failureThreshold = options.failureThreshold ?? 3;
    this.cooldownMs = options.cooldownMs ?? 30_000;
    this.maxCooldownMs = Math.max(options.maxCooldownMs ?? 300_000, this.cooldownMs);
    this.probeTimeoutMs = options.probeTimeoutMs ?? 120_000;
    if (!(this.failureThreshold >= 1) || !(this.cooldownMs >= 0)) {
      throw new RangeError("BreakerBoard needs failureThreshold ≥ 1 and cooldownMs ≥ 0");
    }
  }

  /** Number of channels with a non-trivial breaker (failures counted, open or half-open). */
  get size(): number {
    return this.#entries.size;
  }

  /** The channel's state at `nowMs`; open turns into half-open once the cooldown has elapsed. */
  state(key: string, nowMs: number): BreakerState {
    const e = this.#entries.get(key);
    if (!e || e.openedAtMs === null) return "closed";
    return nowMs - e.openedAtMs < e.cooldownMs ? "open" : "half-open";
  }

  /** True while a half-open probe is out (and not yet presumed lost). */
  probeInFlight(key: string, nowMs: number): boolean {
    const e = this.#entries.get(key);
    return !!e && this.#probeHeld(e, nowMs);
  }

  /**
   * Admission check before sending to the channel: closed → true (nothing is held); open →
   * false; half-open → true for exactly one caller, who must then report the outcome (or call
   * `releaseProbe`); everyone else gets false until then.
   */
  tryAcquireProbe(key: string, nowMs: number): boolean {
    const state = this.state(key, nowMs);
    if (state !== "half-open") return state === "closed";
    const e = this.#entries.get(key)!;
    if (this.#probeHeld(e, nowMs)) return false;
    e.probeSinceMs = nowMs;
    return true;
  }

  /** Gives the probe back without a verdict (e.g. the request was cancelled before sending). */
  releaseProbe(key: string): void {
    const e = this.#entries.get(key);
    if (e) e.probeSinceMs = null;
  }

  /** An upstream success: closes a half-open breaker, resets a closed one's failure count. */
  onSuccess(key: string, nowMs: number): void {
    // A success during the open cooldown is a straggler sent before the breaker opened; the
    // probe after the cooldown, not old traffic, decides recovery.
    if (this.state(key, nowMs) === "open") return;
    this.#entries.delete(key);
  }

  /** An upstream failure: counts toward opening, or reopens a half-open breaker for longer. */
  onFailure(key: string, nowMs: number): void {
    const state = this.state(key, nowMs);
    if (state === "open") return; // a straggler; extending the cooldown for it would be unfair
    let e = this.#entries.get(key);
    if (!e) {
      e = { failures: 0, openedAtMs: null, cooldownMs: this.cooldownMs, probeSinceMs: null };
      this.#entries.set(key, e);
    }
    if (state === "half-open") {
      // Any failure after the cooldown (the probe's or a late one) says the channel is still bad.
      e.cooldownMs = Math.min(e.cooldownMs * 2, this.maxCooldownMs);
      e.openedAtMs = nowMs;
      e.probeSinceMs = null;
      return;
    }
    if (++e.failures >= this.failureThreshold) {
      e.openedAtMs = nowMs;
      e.cooldownMs = this.cooldownMs;
    }
  }

  /**
   * A client error (4xx) or a lost tunnel: never counts against the channel (a dead session
   * takes the agent out of routing anyway; its vendor account may be fine, and a reconnected
   * agent must not find its channels shut for a cooldown). A probe that got one proved nothing
   * either way, so it is released for the next request to try.
   */
  onClientError(key: string, _nowMs: number): void {
    this.releaseProbe(key);
  }

  /** Dispatches an `Outcome` to `onSuccess` / `onFailure` / `onClientError`. */
  record(key: string, outcome: Outcome, nowMs: number): void {
    if (outcome === "success") this.onSuccess(key, nowMs);
    else if (outcome === "upstream_failure") this.onFailure(key, nowMs);
    else this.onClientError(key, nowMs);
  }

  #probeHeld(e: Entry, nowMs: number): boolean {
    if (e.probeSinceMs === null) return false;
    if (nowMs - e.probeSinceMs < this.probeTimeoutMs) return true;
    e.probeSinceMs = null; // presumed lost: let the next request probe
    return false;
  }
}
