/**
 * Reading Bedrock stream messages (ConverseStream / InvokeModelWithResponseStream) decoded by
 * `eventstream.ts`, and the usage they carry.
 * - ConverseStream: `:event-type` messageStart … messageStop, then `metadata` with
 *   `usage {inputTokens, outputTokens, totalTokens, cacheReadInputTokens?, cacheWriteInputTokens?}`.
 * - InvokeModelWithResponseStream: `:event-type: chunk`, payload `{"bytes":"<base64 JSON>"}`; the
 *   last decoded chunk carries `amazon-bedrock-invocationMetrics`.
 * Payloads may carry a padding field `"p":"abcdef…"`; it is ignored here.
 */
import { EventStreamError, type EventStreamMessage } from "./eventstream.ts";

export type BedrockStreamEvent =
  | { kind: "event"; eventType: string; body: unknown }
  | { kind: "exception"; exceptionType: string; message: string }
  | { kind: "error"; errorCode: string; message: string };

const dec = new TextDecoder("utf-8", { fatal: true });

function str(m: EventStreamMessage, name: string): string | undefined {
  const h = m.headers[name];
  return h?.type === "string" ? h.value : undefined;
}

function json(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(dec.decode(bytes));
  } catch {
    throw new EventStreamError("bad_header", "payload is not UTF-8 JSON");
  }
}

/** Classifies a message by `:message-type`; the payload is parsed as JSON when it is an event. */
export function readBedrockEvent(m: EventStreamMessage): BedrockStreamEvent {
  const type = str(m, ":message-type");
  if (type === "event") {
    const eventType = str(m, ":event-type");
    if (!eventType) throw new EventStreamError("bad_header", "event without :event-type");
    return { kind: "event", eventType, body: m.payload.length ? json(m.payload) : {} };
  }
  if (type === "exception") {
    const body = m.payload.length ? json(m.payload) as { message?: unknown } : {};
    return {
      kind: "exception",
      exceptionType: str(m, ":exception-type") ?? "unknown",
      message: typeof body?.message === "string" ? body.message : "",
    };
  }
  if (type === "error") {
    return {
      kind: "error",
      errorCode: str(m, ":error-code") ?? "unknown",
      message: str(m, ":error-message") ?? "",
    };
  }
  throw new EventStreamError("bad_header", `unknown :message-type ${type}`);
}

/** The model-native JSON inside an invoke-stream `chunk` event body `{"bytes": base64}`. */
export function decodeChunkBytes(body: unknown): unknown {
  const b64 = (body as { bytes?: unknown } | null)?.bytes;
  if (typeof b64 !== "string") throw new EventStreamError("bad_header", "chunk without bytes");
  let raw: string;
  try {
    raw = atob(b64);
  } catch {
    throw new EventStreamError("bad_header", "chunk bytes are not base64");
  }
  return json(Uint8Array.from(raw, (c) => c.charCodeAt(0)));
}

export interface BedrockUsage {
  inputTokens: number;
  outputTokens: number;
  cacheReadInputTokens: number;
  cacheWriteInputTokens: number;
}

const n = (v: unknown) => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0);

/** Usage from a Converse response body or a ConverseStream `metadata` event body. */
export function usageFromConverse(body: unknown): BedrockUsage | null {
  const u = (body as { usage?: Record<string, unknown> } | null)?.usage;
  if (!u || typeof u !== "object") return null;
  return {
    inputTokens: n(u.inputTokens),
    outputTokens: n(u.outputTokens),
    cacheReadInputTokens: n(u.cacheReadInputTokens),
    cacheWriteInputTokens: n(u.cacheWriteInputTokens),
  };
}

/** Usage from a decoded invoke-stream chunk carrying `amazon-bedrock-invocationMetrics`. */
export function usageFromInvocationMetrics(chunk: unknown): BedrockUsage | null {
  const m = (chunk as Record<string, Record<string, unknown>> | null)?.[
    "amazon-bedrock-invocationMetrics"
  ];
  if (!m || typeof m !== "object") return null;
  return {
    inputTokens: n(m.inputTokenCount),
    outputTokens: n(m.outputTokenCount),
    cacheReadInputTokens: n(m.cacheReadInputTokenCount),
    cacheWriteInputTokens: n(m.cacheWriteInputTokenCount),
  };
}
