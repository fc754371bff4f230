/**
 * Body bytes of one tunnel stream, in both directions, shared by hub and agent.
 *
 * `InboundBody` turns arriving body frames into a pull-based `ReadableStream`: a chunk is handed
 * to the consumer the moment it is asked for (no re-buffering, no line splitting), and credit is
 * returned only for bytes the consumer actually took. `pumpBody` does the opposite: it reads a
 * stream and sends it as ≤ 64 KiB frames as fast as the peer's credit allows.
 */
import { ReceiveWindow, type SendWindow } from "./flow.ts";
import { LIMITS } from "./limits.ts";

export interface InboundBodyOptions {
  /** Send a CREDIT frame. */
  credit: (bytes: number, window?: number) => void;
  /** The consumer cancelled (e.g. the HTTP client went away). */
  onCancel: (reason: unknown) => void;
  /** Sees every chunk as it is handed over (metering on the side). */
  onChunk?: (chunk: Uint8Array) => void;
  /** Fails the body if no frame arrives for this long (0 = never). */
  idleTimeoutMs?: number;
}

export class InboundBody {
  readonly stream: ReadableStream<Uint8Array>;
  /** Settles once the consumer has taken every byte, or the body failed or was cancelled. */
  readonly drained: Promise<void>;
  #drained!: () => void;
  readonly #queue: Uint8Array[] = [];
  readonly #window = new ReceiveWindow();
  #fin = false;
  #error?: unknown;
  #wake?: () => void;
  #idleTimer?: ReturnType<typeof setTimeout>;

  constructor(readonly options: InboundBodyOptions) {
    this.drained = new Promise((resolve) => this.#drained = resolve);
    this.#armIdle();
    this.stream = new ReadableStream<Uint8Array>({
      pull: (controller) => this.#pull(controller),
      cancel: (reason) => {
        this.#stop();
        options.onCancel(reason);
      },
    }, { highWaterMark: 0 });
  }

  /**
   * Adds one frame's payload (kept as is: every WebSocket message has its own buffer).
   * Returns false if the peer overran the window.
   */
  push(payload: Uint8Array, fin: boolean): boolean {
    if (this.#fin || this.#error !== undefined) return true; // late frames after an abort
    if (!this.#window.receive(payload.length)) return false;
    if (payload.length) this.#queue.push(payload);
    this.#fin = fin;
    this.#armIdle();
    this.#wake?.();
    return true;
  }

  /** The peer sent its last body frame (the consumer may still be reading). */
  get finReceived(): boolean {
    return this.#fin;
  }

  /** Ends the body with an error (peer aborted, session died, idle timeout). */
  fail(error: unknown): void {
    if (this.#fin && this.#queue.length === 0) return;
    this.#error = error;
    this.#stop();
    this.#wake?.();
  }

  async #pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    while (this.#queue.length === 0 && !this.#fin && this.#error === undefined) {
      await new Promise<void>((resolve) => this.#wake = resolve);
      this.#wake = undefined;
    }
    if (this.#error !== undefined) return controller.error(this.#error);
    const chunk = this.#queue.shift();
    if (chunk) {
      this.options.onChunk?.(chunk);
      controller.enqueue(chunk);
      const credit = this.#window.consume(chunk.length, this.#queue.length === 0);
      if (credit && !this.#fin) this.options.credit(credit.bytes, credit.window);
    }
    if (this.#fin && this.#queue.length === 0) {
      this.#stop();
      controller.close();
    }
  }

  #armIdle(): void {
    const ms = this.options.idleTimeoutMs ?? 0;
    if (!ms) return;
    clearTimeout(this.#idleTimer);
    if (this.#fin) return;
    this.#idleTimer = setTimeout(
      () => this.fail(new StreamIdleTimeoutError(`no body bytes for ${ms} ms`)),
      ms,
    );
  }

  #stop(): void {
    clearTimeout(this.#idleTimer);
    this.#drained();
  }
}

export class StreamIdleTimeoutError extends Error {
  override name = "StreamIdleTimeoutError";
}

export interface PumpOptions {
  window: SendWindow;
  /** Send one body frame. */
  send: (payload: Uint8Array, fin: boolean) => void;
  /** Sees every chunk read from the source (metering on the side). */
  onChunk?: (chunk: Uint8Array) => void;
}

/**
 * Sends `source` as body frames, waiting for credit between frames, then a FIN frame.
 * A null source sends only FIN. Rejects if the window closes (stream aborted) or the source fails;
 * the caller aborts the stream then.
 */
export async function pumpBody(
  source: ReadableStream<Uint8Array> | null,
  options: PumpOptions,
): Promise<void> {
  if (!source) return options.send(new Uint8Array(0), true);
  const reader = source.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      options.onChunk?.(value);
      for (let offset = 0; offset < value.length;) {
        const n = await options.window.reserve(
          Math.min(value.length - offset, LIMITS.bodyFrameBytesMax),
        );
        options.send(value.subarray(offset, offset + n), false);
        offset += n;
      }
    }
    options.send(new Uint8Array(0), true);
  } catch (e) {
    await reader.cancel(e).catch(() => {});
    throw e;
  } finally {
    reader.releaseLock();
  }
}
