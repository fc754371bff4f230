/**
 * One request stream on the agent: the hub's REQUEST and body frames become a vendor call, and
 * the vendor's answer streams back as RESPONSE_HEAD / RESPONSE_BODY / RESPONSE_END, each chunk
 * sent the moment it arrives (within the hub's credit). ABORT cancels the vendor call at once.
 */
import { HOP_BY_HOP_HEADERS } from "../../protocol/http.ts";
import { type SessionBudget, StreamClosedError } from "../../protocol/flow.ts";
import { BodyKind, type ControlFrame, type Frame } from "../../protocol/frames.ts";
import { pumpBody } from "../../protocol/stream_body.ts";
import type { MeterResult, VendorSurface } from "../../protocol/vendors/types.ts";
import { errorMessage, type Logger } from "../../runtime/log.ts";
import type { Channel } from "../config.ts";
import { callUpstream } from "../upstream/call.ts";
import { TunnelStream } from "./tunnel_stream.ts";
import type { ChannelLimiter } from "../limits/channel_limiter.ts";
import { type LimiterRefusal, limiterRefusal } from "../limits/vendor_429.ts";
import type { DevUpstreams } from "../upstream/whitelist.ts";

export interface AgentStreamDeps {
  budget: SessionBudget;
  control(frame: ControlFrame): void;
  body(kind: BodyKind, stream: number, payload: Uint8Array, fin: boolean): void;
  done(id: number): void;
  resolveChannel(request: Frame<"request">): { vendor: VendorSurface; channel: Channel } | string;
  dev?: DevUpstreams;
  log: Logger;
  /** The channel's limiter (the last line of defence for the vendor account). */
  limiterFor?: (channel: Channel) => ChannelLimiter;
  /** Streams from the upstream's first byte to its last are reported here (agent ledger later). */
  onMetered?: (request: Frame<"request">, result: MeterResult) => void;
}

/** Response headers that describe the hop, not the content. */
const HOP_HEADERS = new Set([...HOP_BY_HOP_HEADERS, "content-encoding"]);

export class AgentStream extends TunnelStream {
  readonly #abort = new AbortController();

  protected stopUpstream(reason: string): void {
    this.#abort.abort(new StreamClosedError(reason));
  }

  async run(): Promise<void> {
    const { request, deps } = this;
    const log = deps.log.with({ requestId: request.requestId, stream: request.stream });
    const resolved = deps.resolveChannel(request);
    if (typeof resolved === "string") return this.abort(resolved, true);
    const { vendor, channel } = resolved;
    const limiter = deps.limiterFor?.(channel);
    const admitted = limiter?.acquire({ estimatedTokens: request.estimatedTokens ?? 1024 });
    if (admitted && !admitted.ok) return await this.#refuse(vendor, limiterRefusal(admitted));
    const ticket = admitted?.ticket;
    const hasBody = request.method !== "GET" && request.method !== "HEAD";
    let call;
    try {
      call = await callUpstream(request, hasBody ? this.requestBody.stream : null, {
        vendor,
        channel,
        dev: deps.dev,
        signal: this.#abort.signal,
        log,
      });
    } catch (e) {
      if (ticket) limiter!.complete(ticket, { actualTokens: 0, status: 0 });
      if (!this.finished) log.warn("upstream call failed", { error: errorMessage(e) });
      return this.abort(`upstream unavailable: ${errorMessage(e)}`, true);
    }
    const { response } = call;
    const headers: Record<string, string> = {};
    response.headers.forEach((value, name) => {
      if (!HOP_HEADERS.has(name)) headers[name] = value;
    });
    if (this.finished) return void response.body?.cancel().catch(() => {});
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
        headers: response.headers,
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
        window: this.window,
        send: (payload, fin) => deps.body(BodyKind.response, request.stream, payload, fin),
      });
    } catch (e) {
      if (!this.finished) this.abort(`upstream body failed: ${errorMessage(e)}`, true);
      return;
    }
    const measured = result();
    if (ticket) {
      const u = measured.usage;
      limiter!.complete(ticket, {
        actualTokens: u
          ? u.inputTokens + u.cachedInputTokens + u.cacheWrite5mTokens + u.cacheWrite1hTokens +
            u.outputTokens
          : 0,
        status: response.status,
        headers: response.headers,
        quotaExhausted: response.status === 429 && call.keyRotations > 0,
      });
    }
    // The agent's own count is made durable BEFORE the hub can see RESPONSE_END and settle
    // (agent/ledger/own_counts.ts): a crash in between never leaves a SETTLED it cannot check.
    deps.onMetered?.(request, measured);
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
    log.info("request served", {
      channel: channel.id,
      status: response.status,
      complete: measured.complete,
      keyRotations: call.keyRotations,
      inputTokens: measured.usage?.inputTokens,
      outputTokens: measured.usage?.outputTokens,
    });
    this.finish();
  }

  /** Answers for the vendor when this channel's own limiter says no: a 429 in the vendor's envelope. */
  async #refuse(vendor: VendorSurface, refusal: LimiterRefusal): Promise<void> {
    const { request, deps } = this;
    const res = vendor.errorResponse(
      {
        status: 429,
        type: "rate_limit_error",
        code: "rate_limit_exceeded",
        message: refusal.message,
      },
      refusal.headers,
    );
    const headers: Record<string, string> = {};
    res.headers.forEach((v, k) => headers[k] = v);
    this.requestBody.fail(new StreamClosedError("refused by the channel limiter"));
    deps.control({ type: "response_head", stream: request.stream, status: 429, headers });
    await pumpBody(res.body, {
      window: this.window,
      send: (payload, fin) => deps.body(BodyKind.response, request.stream, payload, fin),
    });
    deps.control({ type: "response_end", stream: request.stream, complete: false });
    this.finish();
  }
}
