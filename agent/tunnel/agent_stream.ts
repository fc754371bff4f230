/**
 * One request stream on the agent: the hub's REQUEST and body frames become a vendor call, and
 * the vendor's answer streams back as RESPONSE_HEAD / RESPONSE_BODY / RESPONSE_END, each chunk
 * sent the moment it arrives (within the hub's credit). ABORT cancels the vendor call at once.
 */
import { SendWindow, type SessionBudget, StreamClosedError } from "../../protocol/flow.ts";
import { BodyKind, type ControlFrame, type Frame } from "../../protocol/frames.ts";
import { InboundBody, pumpBody } from "../../protocol/stream_body.ts";
import type { MeterResult, VendorSurface } from "../../protocol/vendors/types.ts";
import { errorMessage, type Logger } from "../../runtime/log.ts";
import type { Channel } from "../config.ts";
import { callUpstream } from "../upstream/call.ts";
import type { DevUpstreams } from "../upstream/whitelist.ts";

export interface AgentStreamDeps {
  budget: SessionBudget;
  control(frame: ControlFrame): void;
  body(kind: BodyKind, stream: number, payload: Uint8Array, fin: boolean): void;
  done(id: number): void;
  resolveChannel(request: Frame<"request">): { vendor: VendorSurface; channel: Channel } | string;
  dev?: DevUpstreams;
  log: Logger;
  /** Streams from the upstream's first byte to its last are reported here (agent ledger later). */
  onMetered?: (request: Frame<"request">, result: MeterResult) => void;
}

/** Response headers that describe the hop, not the content. */
const HOP_HEADERS = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "content-length",
  "content-encoding",
]);

export class AgentStream {
  readonly #abort = new AbortController();
  readonly #window: SendWindow;
  readonly #requestBody: InboundBody;
  #finished = false;

  constructor(readonly request: Frame<"request">, readonly deps: AgentStreamDeps) {
    this.#window = new SendWindow(deps.budget);
    this.#requestBody = new InboundBody({
      credit: (bytes, window) =>
        deps.control({ type: "credit", stream: request.stream, bytes, window }),
      onCancel: () => {},
    });
  }

  onBody(payload: Uint8Array, fin: boolean): boolean {
    return this.#requestBody.push(payload, fin);
  }

  onCredit(frame: Frame<"credit">): boolean {
    return this.#window.credit(frame.bytes, frame.window);
  }

  /** The hub aborted (client went away) or the session ended. */
  abort(reason: string, tellHub = false): void {
    if (this.#finished) return;
    if (tellHub) this.deps.control({ type: "abort", stream: this.request.stream, reason });
    this.#abort.abort(new StreamClosedError(reason));
    this.#requestBody.fail(new StreamClosedError(reason));
    this.#finish();
  }

  async run(): Promise<void> {
    const { request, deps } = this;
    const log = deps.log.with({ requestId: request.requestId, stream: request.stream });
    const resolved = deps.resolveChannel(request);
    if (typeof resolved === "string") return this.abort(resolved, true);
    const { vendor, channel } = resolved;
    const hasBody = request.method !== "GET" && request.method !== "HEAD";
    let call;
    try {
      call = await callUpstream(request, hasBody ? this.#requestBody.stream : null, {
        vendor,
        channel,
        dev: deps.dev,
        signal: this.#abort.signal,
        log,
      });
    } catch (e) {
      if (!this.#finished) log.warn("upstream call failed", { error: errorMessage(e) });
      return this.abort(`upstream unavailable: ${errorMessage(e)}`, true);
    }
    const { response } = call;
    const headers: Record<string, string> = {};
    response.headers.forEach((value, name) => {
      if (!HOP_HEADERS.has(name)) headers[name] = value;
    });
    if (this.#finished) return void response.body?.cancel().catch(() => {});
    deps.control({
      type: "response_head",
      stream: request.stream,
      status: response.status,
      headers,
    });

    const contentType = response.headers.get("content-type");
    let body: ReadableStream<Uint8Array> | null = response.body;
    let result: () => MeterResult;
    if (call.restore && vendor.usageExactness && body) {
      const restorer = vendor.usageExactness.restoreResponse();
      body = body.pipeThrough(restorer.transform, { signal: this.#abort.signal });
      result = restorer.result;
    } else {
      const meter = vendor.createMeter({
        path: request.path,
        status: response.status,
        contentType,
      });
      const source = body;
      body = source &&
        source.pipeThrough(
          new TransformStream({ transform: (c, ctl) => (meter.push(c), ctl.enqueue(c)) }),
        );
      result = () => meter.end();
    }
    try {
      await pumpBody(body, {
        window: this.#window,
        send: (payload, fin) => deps.body(BodyKind.response, request.stream, payload, fin),
      });
    } catch (e) {
      if (!this.#finished) this.abort(`upstream body failed: ${errorMessage(e)}`, true);
      return;
    }
    const measured = result();
    deps.control({
      type: "response_end",
      stream: request.stream,
      upstreamRequestId: response.headers.get("x-request-id") ??
        response.headers.get("request-id") ?? undefined,
      complete: measured.complete,
      usage: measured.usage ?? undefined,
      promptTokens: measured.promptTokens,
      model: measured.model,
      serviceTier: measured.serviceTier,
      keyRotations: call.keyRotations || undefined,
    });
    deps.onMetered?.(request, measured);
    log.info("request served", {
      channel: channel.id,
      status: response.status,
      complete: measured.complete,
      keyRotations: call.keyRotations,
      inputTokens: measured.usage?.inputTokens,
      outputTokens: measured.usage?.outputTokens,
    });
    this.#finish();
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#window.close(new StreamClosedError(`stream ${this.request.stream} ended`));
    this.deps.done(this.request.stream);
  }
}
