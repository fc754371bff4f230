import { LIMITS } from "../../protocol/limits.ts";

/**
 * Remembers agent nonces for as long as their HELLO could still pass the skew check, so a
 * captured HELLO cannot be replayed. Bounded: when full, the oldest entries go first (they are
 * the closest to expiring anyway).
 */
export class NonceCache {
  readonly #expiresAtMs = new Map<string, number>();

  constructor(
    readonly ttlMs: number = 2 * LIMITS.handshakeClockSkewMs,
    readonly entriesMax: number = LIMITS.nonceCacheEntriesMax,
  ) {}

  /** True if the nonce is fresh (and remembers it); false if it was seen before. */
  claim(nonce: string, nowMs: number): boolean {
    this.#evict(nowMs);
    if (this.#expiresAtMs.has(nonce)) return false;
    this.#expiresAtMs.set(nonce, nowMs + this.ttlMs);
    return true;
  }

  get size(): number {
    return this.#expiresAtMs.size;
  }

  #evict(nowMs: number): void {
    // Map keeps insertion order and every entry has the same ttl, so expiry order = key order.
    for (const [nonce, expires] of this.#expiresAtMs) {
      if (expires > nowMs && this.#expiresAtMs.size < this.entriesMax) break;
      this.#expiresAtMs.delete(nonce);
    }
  }
}
