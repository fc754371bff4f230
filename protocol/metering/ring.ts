/**
 * A fixed-size byte ring that keeps the last `capacity` bytes written: the bounded tail of an
 * unbounded input (a huge JSON body, an oversized SSE event). Writes copy at most `capacity`
 * bytes whatever their length; nothing is allocated after construction except by `bytes()`.
 */
export class ByteRing {
  readonly #buf: Uint8Array;
  /** Bytes written since construction or the last `reset()` (may exceed the capacity). */
  total = 0;

  constructor(capacity: number) {
    this.#buf = new Uint8Array(Math.max(1, capacity));
  }

  /** Forgets everything written so far. */
  reset(): void {
    this.total = 0;
  }

  /** Appends `src[start, end)`; only the part that can still be retained is copied. */
  write(src: Uint8Array, start = 0, end = src.length): void {
    const buf = this.#buf, size = buf.length, len = end - start;
    if (len <= 0) return;
    const skipped = len > size ? len - size : 0;
    let at = (this.total + skipped) % size;
    let s = start + skipped;
    this.total += len;
    while (s < end) {
      const n = Math.min(end - s, size - at);
      buf.set(src.subarray(s, s + n), at);
      s += n;
      at = 0;
    }
  }

  /** The retained bytes, oldest first (a fresh copy of at most `capacity` bytes). */
  bytes(): Uint8Array {
    const buf = this.#buf, size = buf.length, t = this.total;
    if (t <= size) return buf.slice(0, t);
    const at = t % size;
    const out = new Uint8Array(size);
    out.set(buf.subarray(at));
    out.set(buf.subarray(0, at), size - at);
    return out;
  }
}
