/**
 * One governed rate (requests or tokens per minute): fixed by the owner ("expert"), or adapted
 * by AIMD ("smart") like TCP congestion control: additive increase while the channel is busy
 * and the vendor is happy, multiplicative decrease on each congestion event (an upstream 429).
 */

/** Multiplicative decrease on a 429: the effective rate becomes 70% of what it was. */
export const DECREASE_FACTOR = 0.7;

/**
 * Additive increase per successful busy interval: 5% of the reference rate, which is the
 * vendor's advertised limit when known, else the rate at which the last 429 happened. With
 * neither known yet, the rate grows by 5% of itself per interval (a slow-start style probe).
 * From 70% back to 95% of the reference takes 5 intervals (then see `PROBE_FRACTION`).
 */
export const INCREASE_FRACTION = 0.05;

/**
 * The gentler step (0.5% of the reference) used from 5% below to 5% above the rate of the last
 * 429: a hidden limit is approached slowly, so the channel spends longer just under it and
 * meets it less often (worth a few points of the hidden limit on average in the simulation).
 * Beyond 5% above it without a 429, the limit has moved: the probe is forgotten.
 */
export const PROBE_FRACTION = 0.005;

/**
 * The AIMD interval: increases happen at most once per second. One second matches how vendors
 * quantize per-minute limits (OpenAI documents enforcing e.g. 60 000 RPM as 1 000 per second),
 * so the effect of the previous step is visible before the next one.
 */
export const INCREASE_INTERVAL_MS = 1000;

/**
 * One decrease per congestion event: a 429 for a request admitted before, or less than this
 * long after, the last decrease was caused by the old rate (the vendor's window still holds it),
 * so it does not decrease again.
 */
export const DECREASE_HOLDOFF_MS = 1000;

/**
 * Smart-mode start until the vendor's headers (or its first 429) say otherwise: generous, because
 * an owner who declared nothing expects the account's own limits, not ours; a vendor 429 cuts it
 * (×0.7) and OpenAI/Anthropic headers replace it on the first response. A 1 s burst of this is 10
 * requests / 33 000 tokens.
 */
export const DEFAULT_SMART_RPM = 600;
/** See `DEFAULT_SMART_RPM`. */
export const DEFAULT_SMART_TPM = 2_000_000;

/** Decreases stop at 1 request per minute: the channel keeps probing, slowly. */
export const FLOOR_RPM = 1;
/** Decreases stop at 1 000 tokens per minute; larger requests still pass by going into debt. */
export const FLOOR_TPM = 1000;

/** A per-minute rate that is either fixed or adaptive. */
export class Rate {
  #value: number;
  /** The vendor's advertised limit (from headers); additive increase never exceeds it. */
  #observed: number | null = null;
  /** The rate at the last decrease: our estimate of a limit the vendor keeps hidden. */
  #probe: number | null = null;

  /**
   * @param initial per-minute rate to start from
   * @param adaptive false: the rate never changes ("expert")
   * @param floor lowest rate a decrease may reach
   */
  constructor(initial: number, readonly adaptive: boolean, readonly floor: number) {
    if (!(initial > 0)) throw new RangeError(`rate must be > 0, got ${initial}`);
    this.#value = initial;
  }

  /** Current effective rate per minute. */
  get value(): number {
    return this.#value;
  }

  /** The vendor told us its limit; returns whether the effective rate changed. */
  observe(limit: number | undefined): boolean {
    if (!this.adaptive || limit === undefined || !(limit > 0)) return false;
    const before = this.#value;
    // The first sighting starts from the account's real limit, unless a 429 already taught us
    // the account is busier than that (another client on the same key, say).
    if (this.#observed === null && this.#probe === null) this.#value = limit;
    this.#value = Math.max(this.floor, Math.min(this.#value, limit));
    this.#observed = limit;
    return this.#value !== before;
  }

  /** A congestion event: multiplicative decrease. Returns whether the rate changed. */
  decrease(): boolean {
    if (!this.adaptive) return false;
    const before = this.#value;
    this.#probe = before;
    this.#value = Math.max(this.floor, before * DECREASE_FACTOR);
    return this.#value !== before;
  }

  /** A busy interval without 429s: additive increase. Returns whether the rate changed. */
  increase(): boolean {
    if (!this.adaptive) return false;
    const before = this.#value;
    const probe = this.#probe;
    // Well past the old congestion point without a 429: the hidden limit moved, probe afresh.
    if (probe !== null && before >= probe * (1 + INCREASE_FRACTION)) this.#probe = null;
    const near = this.#probe !== null && before >= this.#probe * (1 - INCREASE_FRACTION);
    const step = (near ? PROBE_FRACTION : INCREASE_FRACTION) *
      (this.#observed ?? this.#probe ?? before);
    this.#value = Math.min(this.#observed ?? Infinity, before + step);
    return this.#value !== before;
  }
}
