/**
 * One realtime session on the agent: the hub's upgrade REQUEST (protocol/realtime_wire.ts)
 * becomes a WebSocket to the vendor's official `wss://` endpoint with the channel's real key, and
 * messages flow both ways as records inside the stream's body frames.
 *
 * - Open: RESPONSE_HEAD 101 once the upstream socket is open; an upstream that answers the
 *   upgrade with HTTP (401, 429, 5xx…) is relayed as that HTTP answer (the hub may fail over).
 * - Upstream → hub: records go out within the hub's credit; past a bound of queued bytes the
 *   upstream socket is paused (TCP backpressure to the vendor), so a slow client costs nothing here.
 * - Hub → upstream: request records are read only while the upstream socket's send buffer is
 *   small, so credit back to the hub stops when the vendor reads slowly.
 * - End: either side's close record/close event closes the other with the same code and reason;
 *   then a close record, FIN and RESPONSE_END with the usage summed from `response.done`.
 */
import { Buffer } from "node:buffer";
import WebSocket from "ws";
import { StreamClosedError } from "../../protocol/flow.ts";
import { BodyKind } from "../../protocol/frames.ts";
import { HOP_BY_HOP_HEADERS } from "../../protocol/http.ts";
import { LIMITS } from "../../protocol/limits.ts";
import { RealtimeMeter } from "../../protocol/metering/realtime.ts";
import {
  encodeRecord,
  REALTIME_MESSAGE_BYTES_MAX,
  type RealtimeRecord,
  RecordDecoder,
  sendableCloseCode,
} from "../../protocol/realtime_wire.ts";
import { errorMessage } from "../../runtime/log.ts";
import { limiterRefusal } from "../limits/vendor_429.ts";
import { TunnelStream } from "../tunnel/tunnel_stream.ts";
import { upstreamUrl } from "./whitelist.ts";

/** Upstream messages queued for the hub beyond this pause the upstream socket. */
const OUT_QUEUE_PAUSE_BYTES = 4 * 1024 * 1024;
/** Hub messages are read from the tunnel only while the upstream send buffer is below this. */
const UPSTREAM_BUFFER_BYTES_MAX = 1024 * 1024;
/** After we close the upstream socket, wait this long for its close frame before dropping it. */
const UPSTREAM_CLOSE_GRACE_MS = 5_000;
/** Bytes of an upstream HTTP refusal relayed to the hub. */
const REFUSAL_BODY_BYTES_MAX = 64 * 1024;

/** How long a new session waits for the vendor's first event before the 101 (key check). */
const FIRST_EVENT_WAIT_MS = 5_000;

interface Dialed {
  upstream: WebSocket;
  closed: Promise<{ code: number; reason: string }>;
  firstText: Promise<string | undefined>;
}

/**
 * The HTTP status a vendor's first realtime event stands for when it rejects the key (OpenAI
 * accepts the socket, then sends `error` with `invalid_api_key` or `insufficient_quota`).
 */
function keyRejection(text: string): number | undefined {
  if (!text.includes('"error"')) return undefined;
  try {
    const event = JSON.parse(text);
    const code = event?.type === "error" ? event.error?.code : undefined;
    if (code === "invalid_api_key") return 401;
    if (code === "insufficient_quota") return 429;
  } catch {
    // not JSON: not a rejection
  }
  return undefined;
}

const DROP_HEADERS = new Set([
  ...HOP_BY_HOP_HEADERS,
  "accept-encoding",
  "x-request-id",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-extensions",
  "sec-websocket-protocol",
]);

export class RealtimeAgentStream extends TunnelStream {
  readonly #meter = new RealtimeMeter();
  readonly #out: Uint8Array[] = [];
  #outBytes = 0;
  #outEnded = false;
  #wakeOut?: () => void;
  #upstream?: WebSocket;
  #closeTimer?: ReturnType<typeof setTimeout>;

  /** The hub aborted or the tunnel ended: drop the upstream socket at once. */
  protected stopUpstream(): void {
    this.#upstream?.terminate();
  }

  async run(): Promise<void> {
    const { request, deps } = this;
    const log = deps.log.with({ requestId: request.requestId, stream: request.stream });
    const resolved = deps.resolveChannel(request);
    if (typeof resolved === "string") return this.abort(resolved, true);
    const { vendor, channel } = resolved;
    const limiter = deps.limiterFor?.(channel);
    const admitted = limiter?.acquire({ estimatedTokens: request.estimatedTokens ?? 1024 });
    if (admitted && !admitted.ok) {
      // The channel's own limiter answers for the vendor: a 429 in its envelope, before the upgrade.
      const refusal = limiterRefusal(admitted);
      const res = vendor.errorResponse({
        status: 429,
        type: "rate_limit_error",
        code: "rate_limit_exceeded",
        message: refusal.message,
      }, refusal.headers);
      const out: Record<string, string> = {};
      res.headers.forEach((v, k) => out[k] = v);
      const body = new Uint8Array(await res.arrayBuffer());
      return await this.#relayRefusal({ status: 429, headers: out, body });
    }
    const ticket = admitted?.ticket;
    let url: URL;
    try {
      url = upstreamUrl(vendor, request.path, deps.dev, channel);
    } catch (e) {
      if (ticket) limiter!.complete(ticket, { actualTokens: 0, status: 0 });
      return this.abort(errorMessage(e), true);
    }
    url.protocol = url.protocol === "http:" ? "ws:" : "wss:";
    const headers = new Headers();
    for (const [name, value] of Object.entries(request.headers)) {
      const lower = name.toLowerCase();
      if (!DROP_HEADERS.has(lower) && !vendor.credentialHeaders.includes(lower)) {
        headers.set(lower, value);
      }
    }
    headers.set("x-request-id", request.requestId);

    // Each key in turn while the vendor rejects it (HTTP 401/quota, or — as OpenAI does on an
    // accepted socket — an `invalid_api_key` / `insufficient_quota` error as the first event).
    let rotations = 0;
    let dialed: Dialed;
    let opened: Awaited<ReturnType<RealtimeAgentStream["awaitOpen"]>>;
    for (let index = 0;; index++) {
      const last = index === channel.keys.length - 1;
      vendor.applyCredential(headers, channel.keys[index]!);
      dialed = this.#dial(url, headers);
      opened = await this.awaitOpen(dialed.upstream);
      if (this.finished) return void dialed.upstream.terminate();
      let rejected: number | undefined;
      if (opened.kind === "http" && !last) {
        const text = new TextDecoder().decode(opened.body);
        if (vendor.shouldRotateKey(opened.status, text)) rejected = opened.status;
      } else if (opened.kind === "open" && !last) {
        const first = await dialed.firstText;
        const status = first === undefined ? undefined : keyRejection(first);
        if (status !== undefined && vendor.shouldRotateKey(status, first!)) rejected = status;
      }
      if (rejected === undefined) break;
      dialed.upstream.terminate();
      this.#out.length = 0;
      this.#outBytes = 0;
      rotations++;
      log.warn("vendor rejected a channel key; trying the next", {
        channel: channel.id,
        keyIndex: index,
        status: rejected,
      });
    }
    const { upstream, closed } = dialed;
    if (this.finished) return void upstream.terminate();
    if (opened.kind === "failed") {
      if (ticket) limiter!.complete(ticket, { actualTokens: 0, status: 0 });
      log.warn("upstream realtime socket failed", { error: opened.error });
      return this.abort(`upstream unavailable: ${opened.error}`, true);
    }
    if (opened.kind === "http") {
      if (ticket) limiter!.complete(ticket, { actualTokens: 0, status: opened.status });
      await this.#relayRefusal(opened);
      return;
    }
    deps.control({
      type: "response_head",
      stream: request.stream,
      status: 101,
      headers: opened.headers,
    });
    log.info("realtime session open", { channel: channel.id });

    const pumping = this.#pumpOut();
    this.#pumpIn(upstream).catch((e) => {
      if (!this.finished) {
        log.warn("realtime relay to upstream failed", { error: errorMessage(e) });
      }
      this.#closeUpstream(1011, "relay failed");
    });

    const end = await closed;
    this.#queueOut(encodeRecord({ kind: "close", code: end.code, reason: end.reason }));
    this.#outEnded = true;
    this.#wakeOut?.();
    const measured = this.#meter.end();
    if (ticket) {
      // The vendor served what it metered, whether or not the hub hears the end.
      const u = measured.usage;
      limiter!.complete(ticket, {
        actualTokens: u ? u.inputTokens + u.cachedInputTokens + u.outputTokens : 0,
        status: 200,
      });
    }
    try {
      await pumping;
    } catch (e) {
      if (!this.finished) this.abort(`realtime relay failed: ${errorMessage(e)}`, true);
      return;
    }
    if (this.finished) return;
    deps.control({
      type: "response_end",
      stream: request.stream,
      upstreamRequestId: opened.headers["x-request-id"],
      complete: measured.complete,
      usage: measured.usage ?? undefined,
      promptTokens: measured.promptTokens,
      model: measured.model,
      keyRotations: rotations || undefined,
    });
    deps.onMetered?.(request, measured);
    log.info("realtime session closed", {
      channel: channel.id,
      code: end.code,
      responses: this.#meter.responses,
      inputTokens: measured.usage?.inputTokens,
      outputTokens: measured.usage?.outputTokens,
    });
    this.requestBody.fail(new StreamClosedError("session over"));
    this.finish();
  }

  /**
   * Opens the vendor socket. Listeners attach before `open`: the vendor's first event may arrive
   * with the 101 and be emitted before an awaiting continuation could attach. Messages queue for
   * the hub (sent after RESPONSE_HEAD); `firstText` is the first text message, if one arrives in
   * time (the key check above).
   */
  #dial(url: URL, headers: Headers): Dialed {
    const upstream = new WebSocket(url.href, {
      headers: Object.fromEntries(headers),
      perMessageDeflate: false,
      followRedirects: false,
      maxPayload: REALTIME_MESSAGE_BYTES_MAX,
      handshakeTimeout: LIMITS.dialTimeoutMs,
    });
    this.#upstream = upstream;
    upstream.binaryType = "nodebuffer";
    const first = Promise.withResolvers<string | undefined>();
    const firstTimer = setTimeout(() => first.resolve(undefined), FIRST_EVENT_WAIT_MS);
    upstream.on("message", (data: Buffer, isBinary: boolean) => {
      if (upstream !== this.#upstream) return; // a socket whose key was rejected
      const record: RealtimeRecord = isBinary
        ? { kind: "binary", data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) }
        : { kind: "text", data: data.toString("utf8") };
      if (record.kind === "text") {
        this.#meter.onServerText(record.data);
        first.resolve(record.data);
      }
      this.#queueOut(encodeRecord(record));
    });
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      upstream.on("close", (code: number, reason: Buffer) => {
        clearTimeout(firstTimer);
        first.resolve(undefined);
        if (upstream === this.#upstream) clearTimeout(this.#closeTimer);
        resolve({ code, reason: reason.toString("utf8") });
      })
    );
    first.promise.then(() => clearTimeout(firstTimer));
    return { upstream, closed, firstText: first.promise };
  }

  /** Resolves once the upstream socket opened, answered HTTP, or failed. */
  awaitOpen(upstream: WebSocket): Promise<
    | { kind: "open"; headers: Record<string, string> }
    | { kind: "http"; status: number; headers: Record<string, string>; body: Uint8Array }
    | { kind: "failed"; error: string }
  > {
    return new Promise((resolve) => {
      let headers: Record<string, string> = {};
      upstream.once("upgrade", (res) => {
        const id = res.headers["x-request-id"];
        headers = typeof id === "string" ? { "x-request-id": id } : {};
      });
      upstream.once("open", () => resolve({ kind: "open", headers }));
      upstream.once("unexpected-response", (_req, res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          if (size < REFUSAL_BODY_BYTES_MAX) chunks.push(c);
          size += c.length;
        });
        res.on("end", () => {
          const out: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) {
            if (typeof v === "string" && !HOP_BY_HOP_HEADERS.has(k)) out[k] = v;
          }
          const body = new Uint8Array(Buffer.concat(chunks).subarray(0, REFUSAL_BODY_BYTES_MAX));
          resolve({ kind: "http", status: res.statusCode ?? 502, headers: out, body });
          upstream.terminate();
        });
        res.on("error", (e: Error) => resolve({ kind: "failed", error: e.message }));
      });
      upstream.on("error", (e: Error) => resolve({ kind: "failed", error: e.message }));
    });
  }

  /** The vendor refused the upgrade with an HTTP answer: relay it as one. */
  async #relayRefusal(
    refusal: { status: number; headers: Record<string, string>; body: Uint8Array },
  ): Promise<void> {
    const { request, deps } = this;
    this.requestBody.fail(new StreamClosedError("upstream refused the upgrade"));
    deps.control({
      type: "response_head",
      stream: request.stream,
      status: refusal.status,
      headers: refusal.headers,
    });
    this.#queueOut(refusal.body);
    this.#outEnded = true;
    try {
      await this.#pumpOut();
    } catch {
      return this.abort("hub stopped reading", true);
    }
    deps.control({ type: "response_end", stream: request.stream, complete: false });
    this.finish();
  }

  #queueOut(bytes: Uint8Array): void {
    if (this.finished) return;
    this.#out.push(bytes);
    this.#outBytes += bytes.length;
    if (this.#outBytes > OUT_QUEUE_PAUSE_BYTES) this.#upstream?.pause();
    this.#wakeOut?.();
  }

  /** Sends queued bytes as response body frames within the hub's credit; FIN when ended. */
  async #pumpOut(): Promise<void> {
    const { request, deps } = this;
    for (;;) {
      if (this.finished) throw new StreamClosedError("stream ended");
      const chunk = this.#out.shift();
      if (!chunk) {
        if (this.#outEnded) break;
        await new Promise<void>((resolve) => this.#wakeOut = resolve);
        this.#wakeOut = undefined;
        continue;
      }
      for (let offset = 0; offset < chunk.length;) {
        const n = await this.window.reserve(chunk.length - offset);
        deps.body(BodyKind.response, request.stream, chunk.subarray(offset, offset + n), false);
        offset += n;
      }
      this.#outBytes -= chunk.length;
      if (this.#outBytes <= OUT_QUEUE_PAUSE_BYTES / 2) this.#upstream?.resume();
    }
    deps.body(BodyKind.response, request.stream, new Uint8Array(0), true);
  }

  /** Hub → upstream: decode records and send them while the upstream keeps up. */
  async #pumpIn(upstream: WebSocket): Promise<void> {
    const decoder = new RecordDecoder();
    const reader = this.requestBody.stream.getReader();
    for (;;) {
      while (upstream.bufferedAmount > UPSTREAM_BUFFER_BYTES_MAX) {
        if (upstream.readyState !== WebSocket.OPEN) return;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      let next;
      try {
        next = await reader.read();
      } catch {
        return; // the stream ended (session over, or aborted)
      }
      if (next.done) return this.#closeUpstream(1000, "");
      for (const record of decoder.push(next.value)) {
        if (upstream.readyState !== WebSocket.OPEN) return;
        if (record.kind === "close") return this.#closeUpstream(record.code, record.reason);
        upstream.send(record.data, { binary: record.kind === "binary" });
      }
    }
  }

  #closeUpstream(code: number, reason: string): void {
    const upstream = this.#upstream;
    if (!upstream || upstream.readyState >= WebSocket.CLOSING) return;
    upstream.close(sendableCloseCode(code), reason);
    this.#closeTimer = setTimeout(() => upstream.terminate(), UPSTREAM_CLOSE_GRACE_MS);
  }

  protected override finish(): void {
    if (this.finished) return;
    clearTimeout(this.#closeTimer);
    super.finish();
    this.#wakeOut?.();
  }
}
