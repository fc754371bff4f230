/**
 * Usage meters for the Bedrock Runtime operations (reference/vendor-wire.md §6.5):
 * - Converse: the JSON body's `usage`;
 * - ConverseStream: the `metadata` event of the `application/vnd.amazon.eventstream` body;
 * - InvokeModel: the `x-amzn-bedrock-*-token-count` response headers (model-neutral);
 * - InvokeModelWithResponseStream: `amazon-bedrock-invocationMetrics` in a decoded `chunk`.
 * Bedrock's input count excludes cache reads and writes (Anthropic semantics), as `Usage` wants.
 * Event streams are decoded with their CRCs checked; a malformed stream meters as incomplete.
 */
import {
  type BedrockUsage,
  decodeChunkBytes,
  readBedrockEvent,
  usageFromConverse,
  usageFromInvocationMetrics,
} from "../aws/bedrock_events.ts";
import { crc32 } from "../aws/crc32.ts";
import {
  decodeMessage,
  EventStreamError,
  type EventStreamMessage,
  eventStreamMessageBytesMax,
} from "../aws/eventstream.ts";
import { concatBytes } from "../http.ts";
import { emptyUsage } from "../usage.ts";
import type { Meter, MeterResult } from "../vendors/types.ts";

export type BedrockOperation =
  | "invoke"
  | "invoke-with-response-stream"
  | "converse"
  | "converse-stream";

/** Converse bodies are small; a larger one is not parsed (metered as unknown). */
const CONVERSE_BODY_BYTES_MAX = 8 * 1024 * 1024;
const EMPTY = new Uint8Array(0);

export function mapBedrockUsage(
  u: BedrockUsage,
): { usage: MeterResult["usage"]; promptTokens: number } {
  const usage = emptyUsage();
  usage.inputTokens = u.inputTokens;
  usage.cachedInputTokens = u.cacheReadInputTokens;
  usage.cacheWrite5mTokens = u.cacheWriteInputTokens;
  usage.outputTokens = u.outputTokens;
  return {
    usage,
    promptTokens: u.inputTokens + u.cacheReadInputTokens + u.cacheWriteInputTokens,
  };
}

function resultOf(u: BedrockUsage | null, complete: boolean): MeterResult {
  if (!u) return { usage: null, promptTokens: 0, complete };
  return { ...mapBedrockUsage(u), complete };
}

/** The counts InvokeModel puts in its response headers; null when absent. */
export function usageFromInvokeHeaders(headers: Headers): BedrockUsage | null {
  const count = (name: string) => {
    const v = headers.get(`x-amzn-bedrock-${name}-token-count`);
    return v !== null && /^\d{1,12}$/.test(v.trim()) ? Number(v.trim()) : null;
  };
  const input = count("input"), output = count("output");
  if (input === null || output === null) return null;
  return {
    inputTokens: input,
    outputTokens: output,
    cacheReadInputTokens: count("cache-read-input") ?? 0,
    cacheWriteInputTokens: count("cache-write-input") ?? 0,
  };
}

/**
 * Follows a Bedrock event stream message by message: usage from `metadata` (converse-stream) or
 * from the invocation metrics of a `chunk` (invoke-stream). `push` returns the bytes of the
 * messages it fully validated (CRCs, headers, JSON), so a relay can forward only those; after a
 * malformed frame `failed` says why and nothing more is returned.
 */
export class BedrockStreamWatcher {
  #buf = new Uint8Array(0);
  usage: BedrockUsage | null = null;
  /** Why the stream cannot be trusted (malformed frame, exception message), or null. */
  failed: string | null = null;
  /** The upstream sent a malformed frame (as opposed to a well-formed exception message). */
  malformed = false;
  /** The stream carried its final event (converse-stream `metadata`, invoke-stream metrics). */
  completed = false;

  constructor(readonly messageBytesMax = eventStreamMessageBytesMax) {}

  push(chunk: Uint8Array): Uint8Array {
    if (this.malformed) return EMPTY;
    const buf = this.#buf.length
      ? concatBytes([this.#buf, chunk], this.#buf.length + chunk.length)
      : chunk;
    let at = 0;
    try {
      while (buf.length - at >= 12) {
        const view = new DataView(buf.buffer, buf.byteOffset + at, 12);
        if (crc32(buf, at, at + 8) !== view.getUint32(8)) {
          throw new EventStreamError("prelude_crc", "prelude CRC mismatch");
        }
        const total = view.getUint32(0);
        if (total < 16 || total > this.messageBytesMax) {
          throw new EventStreamError("bad_length", `message length ${total}`);
        }
        if (buf.length - at < total) break;
        this.#see(decodeMessage(buf.subarray(at, at + total), this.messageBytesMax));
        at += total;
      }
    } catch (e) {
      this.malformed = true;
      this.failed = (e as Error).message;
      this.#buf = EMPTY;
      return buf.slice(0, at);
    }
    this.#buf = buf.slice(at);
    return at === buf.length && buf === chunk ? chunk : buf.slice(0, at);
  }

  #see(message: EventStreamMessage): void {
    const event = readBedrockEvent(message);
    if (event.kind !== "event") {
      this.failed ??= event.kind === "exception"
        ? `${event.exceptionType}: ${event.message}`
        : `${event.errorCode}: ${event.message}`;
      return;
    }
    if (event.eventType === "metadata") {
      this.usage = usageFromConverse(event.body);
      this.completed = this.usage !== null;
    } else if (event.eventType === "chunk") {
      const found = usageFromInvocationMetrics(decodeChunkBytes(event.body));
      if (found) [this.usage, this.completed] = [found, true];
    }
  }

  /** At the end of the body: a half-received message makes the stream malformed. */
  end(): void {
    if (!this.malformed && this.#buf.length > 0) {
      this.malformed = true;
      this.failed = `Cannot decode event stream: ${this.#buf.length} bytes left at end`;
    }
  }
}

export function createBedrockMeter(
  operation: BedrockOperation | null,
  context: { status: number; contentType: string | null; headers?: Headers },
): Meter {
  const unbilled: Meter = {
    push: () => {},
    end: () => ({ usage: null, promptTokens: 0, complete: context.status < 400 }),
  };
  if (operation === null || context.status >= 400) return unbilled;
  if (operation === "invoke") {
    const usage = context.headers ? usageFromInvokeHeaders(context.headers) : null;
    return { push: () => {}, end: () => resultOf(usage, true) };
  }
  if (operation === "converse") {
    const chunks: Uint8Array[] = [];
    let size = 0;
    return {
      push(chunk) {
        size += chunk.length;
        if (size <= CONVERSE_BODY_BYTES_MAX) chunks.push(chunk);
      },
      end() {
        if (size > CONVERSE_BODY_BYTES_MAX) return resultOf(null, true);
        try {
          const body = JSON.parse(new TextDecoder().decode(concatBytes(chunks, size)));
          return resultOf(usageFromConverse(body), true);
        } catch {
          return resultOf(null, false);
        }
      },
    };
  }
  const watcher = new BedrockStreamWatcher();
  return {
    push: (chunk) => void watcher.push(chunk),
    end() {
      watcher.end();
      return resultOf(watcher.usage, watcher.completed && watcher.failed === null);
    },
  };
}
