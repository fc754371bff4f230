/**
 * One request stream from the hub's side: REQUEST + body frames out, RESPONSE_HEAD/BODY/END in.
 * The response body is handed to the caller as a stream the moment each frame arrives.
 */
import { SendWindow, type SessionBudget, StreamClosedError } from "../../protocol/flow.ts";
import { BodyKind, type ControlFrame, type Frame } from "../../protocol/frames.ts";
import { InboundBody, pumpBody } from "../../protocol/stream_body.ts";

export interface StreamRequest {
  vendor: string;
  channelId?: string;
  method: Frame<"request">["method"];
  /** Path and query as the vendor expects them, e.g. `/v1/chat/completions`. */
  path: string;
  /** Headers to forward (client auth already removed). */
  headers: Record<string, string>;
  requestId: string;
  /** Worst-case tokens, for the agent's channel limiter. */
  estimatedTokens?: number;
  body: ReadableStream<Uint8Array> | null;
  /** Aborts the stream (client went away, hub shutting down). */
  signal: AbortSignal;
  /** Max silence between response frames. */
  idleTimeoutMs: number;
  /** Sees every response chunk as it is handed to the client (metering). */
  onResponseChunk?: (chunk: Uint8Array) => void;
}

export interface StreamResponse {
  status: number;
  headers: Record<string, string>;
  body: ReadableStream<Uint8Array>;
  /** Settles when the stream is over: the agent's RESPONSE_END, or why it was cut. */
  end: Promise<StreamEnd>;
}

export type StreamEnd =
  | { kind: "complete"; frame: Frame<"response_end"> }
  | { kind: "aborted"; by: AbortedBy; reason: string };

/**
 * Who ended a stream early: the agent (ABORT), the client, the hub, or the tunnel session itself
 * dying (the agent is gone — says nothing about the vendor channel behind it).
 */
export type AbortedBy = "agent" | "client" | "hub" | "session";

/** The stream failed before any response byte: safe to answer with an error (or fail over). */
export class StreamFailedError extends Error {
  override name = "StreamFailedError";
  constructor(message: string, readonly by: AbortedBy) {
    super(message);
  }
}

interface Wire {
  control(frame: ControlFrame): void;
  body(kind: BodyKind, stream: number, payload: Uint8Array, fin: boolean): void;
  /** Called once when the stream is finished either way, to forget it. */
  done(id: number): void;
}

export class HubStream {
  readonly window: SendWindow;
  readonly head: Promise<StreamResponse>;
  #resolveHead!: (r: StreamResponse) => void;
  #rejectHead!: (e: Error) => void;
  #resolveEnd!: (e: StreamEnd) => void;
  readonly #end: Promise<StreamEnd>;
  #inbound?: InboundBody;
  #finished = false;

  constructor(
    readonly id: number,
    readonly request: StreamRequest,
    budget: SessionBudget,
    readonly wire: Wire,
  ) {
    this.window = new SendWindow(budget);
    this.head = new Promise((resolve, reject) => {
      this.#resolveHead = resolve;
      this.#rejectHead = reject;
    });
    this.#end = new Promise((resolve) => this.#resolveEnd = resolve);
    this.head.catch(() => {}); // the caller awaits it; this only keeps an early abort from counting as unhandled
  }

  /** Sends REQUEST and starts streaming the request body. */
  start(): void {
    const r = this.request;
    if (r.signal.aborted) return this.abort("client", "client went away before dispatch");
    r.signal.addEventListener("abort", this.#onClientAbort, { once: true });
    this.wire.control({
      type: "request",
      stream: this.id,
      vendor: r.vendor,
      channelId: r.channelId,
      method: r.method,
      path: r.path,
      headers: r.headers,
      requestId: r.requestId,
      estimatedTokens: r.estimatedTokens,
    });
    pumpBody(r.body, {
      window: this.window,
      send: (payload, fin) => this.wire.body(BodyKind.request, this.id, payload, fin),
    }).catch((e) => {
      if (!(e instanceof StreamClosedError)) {
        this.abort("client", `request body failed: ${(e as Error).message}`);
      }
    });
  }

  onHead(frame: Frame<"response_head">): void {
    if (this.#inbound || this.#finished) return;
    this.#inbound = new InboundBody({
      credit: (bytes, window) =>
        this.wire.control({ type: "credit", stream: this.id, bytes, window }),
      onCancel: () => this.abort("client", "client went away"),
      onChunk: this.request.onResponseChunk,
      idleTimeoutMs: this.request.idleTimeoutMs,
    });
    this.#resolveHead({
      status: frame.status,
      headers: frame.headers,
      body: this.#inbound.stream,
      end: this.#end,
    });
  }

  /** Returns false on a flow-control violation (the session then closes). */
  onBody(payload: Uint8Array, fin: boolean): boolean {
    if (!this.#inbound) return this.#finished; // body before head is a protocol error unless already aborted
    return this.#inbound.push(payload, fin);
  }

  onEnd(frame: Frame<"response_end">): void {
    if (!this.#inbound) return this.abort("agent", "RESPONSE_END before RESPONSE_HEAD");
    this.#inbound.push(new Uint8Array(0), true); // END implies the body is over
    // The stream is over for the tunnel now; for accounting, once the client has every byte.
    this.#finish({ kind: "complete", frame }, this.#inbound.drained);
  }

  onCredit(frame: Frame<"credit">): boolean {
    return this.window.credit(frame.bytes, frame.window);
  }

  /** The agent aborted, the session died, or we abort: fail whatever is pending. */
  abort(by: AbortedBy, reason: string): void {
    if (this.#finished) return;
    if (by === "client" || by === "hub") {
      this.wire.control({ type: "abort", stream: this.id, reason });
    }
    const error = new StreamFailedError(reason, by);
    this.#rejectHead(error);
    this.#inbound?.fail(error);
    this.#finish({ kind: "aborted", by, reason });
  }

  // Deno aborts a request's signal once its response has been sent; a body that already got its
  // last frame is complete, and the agent's RESPONSE_END is on its way.
  #onClientAbort = () => {
    if (!this.#inbound?.finReceived) this.abort("client", "client went away");
  };

  #finish(end: StreamEnd, delivered: Promise<void> = Promise.resolve()): void {
    if (this.#finished) return;
    this.#finished = true;
    this.request.signal.removeEventListener("abort", this.#onClientAbort);
    this.window.close(new StreamClosedError(`stream ${this.id} ended`));
    this.wire.done(this.id);
    delivered.then(() => this.#resolveEnd(end));
  }
}
