/**
 * Credit-based flow control for request streams, used by both ends of the tunnel.
 *
 * The receiver acknowledges bytes as its consumer takes them (CREDIT `bytes`) and may grow the
 * window (CREDIT `window`). The sender keeps at most `window − (sent − acked)` bytes of a stream
 * in flight, and at most `sessionWindowBytesMax` across all streams of a session, so neither a
 * slow client nor a big upload can make either side buffer without bound. Deno's server
 * WebSocket has no inbound backpressure, so these credits are the only brake.
 */
import { LIMITS } from "./limits.ts";

/** Bytes in flight across all streams of one session (sender side). */
export class SessionBudget {
  inFlightBytes = 0;
  readonly #waiters = new Set<() => void>();

  constructor(readonly maxBytes: number = LIMITS.sessionWindowBytesMax) {}

  get availableBytes(): number {
    return this.maxBytes - this.inFlightBytes;
  }

  release(bytes: number): void {
    this.inFlightBytes -= bytes;
    this.wake();
  }

  /** Calls `fn` once the next time credit or state changes. */
  onChange(fn: () => void): () => void {
    this.#waiters.add(fn);
    return () => this.#waiters.delete(fn);
  }

  wake(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
  }
}

/** Raised to a sender waiting for credit when its stream ends first. */
export class StreamClosedError extends Error {
  override name = "StreamClosedError";
}

/** Sender side of one stream's window. */
export class SendWindow {
  #sent = 0;
  #acked = 0;
  #window: number = LIMITS.streamWindowBytesInitial;
  #closed?: Error;

  constructor(readonly session: SessionBudget) {}

  get availableBytes(): number {
    return Math.min(this.#window - (this.#sent - this.#acked), this.session.availableBytes);
  }

  /** Applies a CREDIT frame. Returns false if it acknowledges more than was sent (protocol error). */
  credit(bytes: number, window?: number): boolean {
    if (this.#acked + bytes > this.#sent) return false;
    this.#acked += bytes;
    if (window !== undefined && window > this.#window) {
      this.#window = Math.min(window, LIMITS.streamWindowBytesMax);
    }
    this.session.release(bytes);
    return true;
  }

  /**
   * Waits until at least one byte may be sent, then reserves up to `wanted` bytes (≤ one frame)
   * and returns how many. Rejects with the close reason if the stream ends while waiting.
   */
  async reserve(wanted: number): Promise<number> {
    for (;;) {
      if (this.#closed) throw this.#closed;
      const n = Math.min(wanted, this.availableBytes, LIMITS.bodyFrameBytesMax);
      if (n > 0) {
        this.#sent += n;
        this.session.inFlightBytes += n;
        return n;
      }
      await new Promise<void>((resolve) => this.session.onChange(resolve));
    }
  }

  /** Ends the window: waiters fail, and unacknowledged bytes go back to the session. */
  close(reason: Error): void {
    if (this.#closed) return;
    this.#closed = reason;
    this.session.release(this.#sent - this.#acked);
    this.#acked = this.#sent;
  }
}

/** Receiver side of one stream's window: decides when to acknowledge and when to grow. */
export class ReceiveWindow {
  #window: number = LIMITS.streamWindowBytesInitial;
  #received = 0;
  #consumed = 0;
  #reported = 0;

  /** Counts arriving bytes; false if the peer overran the window (protocol error). */
  receive(bytes: number): boolean {
    this.#received += bytes;
    return this.#received - this.#consumed <= this.#window;
  }

  /**
   * Counts bytes the consumer took. Returns the CREDIT to send, if one is due: once a quarter of
   * the window is consumed; the window doubles (up to the max) while the consumer keeps up.
   */
  consume(bytes: number, consumerWaiting: boolean): { bytes: number; window?: number } | undefined {
    this.#consumed += bytes;
    const due = this.#consumed - this.#reported;
    if (due < this.#window / 4) return undefined;
    this.#reported = this.#consumed;
    if (consumerWaiting && this.#window < LIMITS.streamWindowBytesMax) {
      this.#window = Math.min(this.#window * 2, LIMITS.streamWindowBytesMax);
      return { bytes: due, window: this.#window };
    }
    return { bytes: due };
  }
}
