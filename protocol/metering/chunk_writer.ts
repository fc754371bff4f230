/**
 * Builds one output chunk from byte ranges, zero-copy when the output is a single contiguous
 * range of the current input chunk (the common case for a pass-through transform), otherwise
 * copied into a reused growable buffer and returned as one fresh array per `collect`.
 */
export class ChunkWriter {
  #chunk: Uint8Array | null = null; // the input chunk: never mutated, so views of it are safe
  #pending: Uint8Array | null = null; // a zero-copy piece [ps, pe) of `#chunk`
  #ps = 0;
  #pe = 0;
  #out = new Uint8Array(16384);
  #outLen = 0;

  /** Declares the input chunk that ranges may be taken from without copying. */
  begin(chunk: Uint8Array | null): void {
    this.#chunk = chunk;
  }

  /** Appends `b[s, e)`. Ranges of other arrays (which may change later) are copied at once. */
  emit(b: Uint8Array, s: number, e: number): void {
    if (s >= e) return;
    if (this.#pending !== null && b === this.#pending && s === this.#pe) {
      this.#pe = e; // contiguous with the pending piece
      return;
    }
    if (b === this.#chunk && this.#pending === null && this.#outLen === 0) {
      this.#pending = b;
      this.#ps = s;
      this.#pe = e;
      return;
    }
    this.#flushPending();
    this.#copy(b, s, e);
  }

  /** Everything emitted since the last `collect` (possibly a view of the input chunk). */
  collect(): Uint8Array {
    if (this.#pending !== null && this.#outLen === 0) {
      const out = this.#pending.subarray(this.#ps, this.#pe);
      this.#pending = null;
      return out;
    }
    this.#flushPending();
    const out = this.#out.slice(0, this.#outLen);
    this.#outLen = 0;
    return out;
  }

  #flushPending(): void {
    if (this.#pending === null) return;
    const p = this.#pending;
    this.#pending = null;
    this.#copy(p, this.#ps, this.#pe);
  }

  #copy(b: Uint8Array, s: number, e: number): void {
    const need = this.#outLen + e - s;
    if (need > this.#out.length) {
      const grown = new Uint8Array(Math.max(need, this.#out.length * 2));
      grown.set(this.#out.subarray(0, this.#outLen));
      this.#out = grown;
    }
    this.#out.set(b.subarray(s, e), this.#outLen);
    this.#outLen = need;
  }
}
