/**
 * Per-request incremental usage meter for Gemini Developer API responses (reference/vendor-wire.md
 * §4 and §9), fed the response bytes as they are forwarded. Never throws on vendor bytes; memory
 * is bounded whatever the response size.
 *
 * - `:generateContent` (JSON): the body's top-level `usageMetadata` and `modelVersion`.
 * - `:streamGenerateContent?alt=sse`: `data: {GenerateContentResponse}` frames (CRLF-separated on
 *   the real service); each chunk's `usageMetadata` is the RUNNING TOTAL for the request, so the
 *   last one wins. A candidate's `finishReason` marks the response complete.
 * - `:streamGenerateContent` without `alt=sse`: a JSON array of responses; the last element's.
 * - `:embedContent` / `:batchEmbedContents`: `usageMetadata` when present (often absent).
 * - `:countTokens` and everything else: not billed.
 */
import { emptyUsage, type Usage } from "../usage.ts";
import type { Meter, MeterResult } from "../vendors/types.ts";
import { isJsonWs, keyEquals, parseJsonSlice, scanMembersBackward } from "./json_scan.ts";
import { ByteRing } from "./ring.ts";
import type { SseEvent } from "./sse.ts";
import { SseUsageMeter } from "./sse_meter.ts";
import { obj } from "./json_values.ts";

type Obj = Record<string, unknown>;

export interface GeminiMeterOptions {
  /** Request path (query allowed), e.g. `/v1beta/models/gemini-2.5-flash:generateContent`. */
  path: string;
  /** Response `Content-Type`. */
  contentType: string | null;
  /** SSE event bound (default 1 MiB); larger events are read from their tail. */
  maxEventBytes?: number;
  /** JSON bodies up to this size are parsed whole (default 1 MiB); larger ones from their tail. */
  maxFullBytes?: number;
  /** Bytes kept from the end of larger JSON bodies (default 64 KiB). */
  tailBytes?: number;
}

export interface MappedGeminiUsage {
  usage: Usage;
  /** The prompt as priced (tiers): prompt (cached content included) + tool-use prompt. */
  promptTokens: number;
}

function num(o: Obj | undefined, key: string): number {
  const v = o?.[key];
  return typeof v === "number" && v > 0 && Number.isFinite(v) ? Math.floor(v) : 0;
}

/** The `:method` of a Gemini model path (query ignored, `%3A` too), e.g. `generateContent`. */
export function geminiMethodOf(path: string): string | null {
  const q = path.indexOf("?");
  const p = (q === -1 ? path : path.slice(0, q)).replace(/%3a/gi, ":");
  const slash = p.lastIndexOf("/");
  const colon = p.lastIndexOf(":");
  return colon > slash ? p.slice(colon + 1) : null;
}

/**
 * Maps one `usageMetadata` into {@link Usage}; null when `raw` is not an object.
 * `promptTokenCount` includes cached content; thoughts are billed as output but are not part of
 * `candidatesTokenCount`; the tool-use prompt is fresh input.
 */
export function mapGeminiUsage(raw: unknown): MappedGeminiUsage | null {
  const u = obj(raw);
  if (u === undefined) return null;
  const out = emptyUsage();
  const prompt = num(u, "promptTokenCount");
  const cached = Math.min(num(u, "cachedContentTokenCount"), prompt);
  const toolUse = num(u, "toolUsePromptTokenCount");
  const thoughts = num(u, "thoughtsTokenCount");
  out.inputTokens = prompt - cached + toolUse;
  out.cachedInputTokens = cached;
  out.outputTokens = num(u, "candidatesTokenCount") + thoughts;
  out.reasoningTokens = thoughts;
  return { usage: out, promptTokens: prompt + toolUse };
}

/** A meter for one Gemini response: SSE, JSON (object or stream array), or nothing to bill. */
export function createGeminiMeter(options: GeminiMeterOptions): Meter {
  const method = geminiMethodOf(options.path);
  const billed = method === "generateContent" || method === "streamGenerateContent" ||
    method === "embedContent" || method === "batchEmbedContents";
  const ct = options.contentType?.toLowerCase() ?? "";
  if (!billed) return unbilled();
  if (ct.includes("text/event-stream")) return new GeminiSseMeter(options.maxEventBytes);
  if (ct === "" || ct.includes("json")) {
    return new GeminiJsonMeter(options.maxFullBytes ?? 1 << 20, options.tailBytes ?? 64 << 10);
  }
  return unbilled();
}

function unbilled(): Meter {
  return { push: () => {}, end: () => ({ usage: null, promptTokens: 0, complete: true }) };
}

function result(raw: unknown, model: string | undefined, complete: boolean): MeterResult {
  const mapped = mapGeminiUsage(raw);
  const out: MeterResult = {
    usage: mapped?.usage ?? null,
    promptTokens: mapped?.promptTokens ?? 0,
    complete,
  };
  if (model !== undefined) out.model = model;
  return out;
}

/** What one parsed `GenerateContentResponse` tells the meter. */
interface Seen {
  usage?: Obj;
  model?: string;
  finished: boolean;
  error: boolean;
}

function inspect(value: unknown): Seen {
  const o = obj(value);
  const seen: Seen = { finished: false, error: false };
  if (o === undefined) return seen;
  if (o.error !== undefined) seen.error = true;
  const usage = obj(o.usageMetadata);
  if (usage !== undefined) seen.usage = usage;
  if (typeof o.modelVersion === "string") seen.model = o.modelVersion;
  const candidates = Array.isArray(o.candidates) ? o.candidates : [];
  seen.finished = candidates.some((c) => typeof obj(c)?.finishReason === "string");
  // A prompt blocked outright has no candidates, only `promptFeedback.blockReason`: also final.
  if (typeof obj(o.promptFeedback)?.blockReason === "string") seen.finished = true;
  return seen;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

class GeminiSseMeter extends SseUsageMeter {
  protected result = result;

  protected event(e: SseEvent): void {
    if (e.truncated) return this.#fromTail(e.data);
    let value: unknown;
    try {
      value = JSON.parse(e.data);
    } catch {
      return;
    }
    const seen = inspect(value);
    if (seen.usage !== undefined) this.usage = seen.usage; // running total: the last one wins
    if (seen.model !== undefined) this.model = seen.model;
    if (seen.finished) this.complete = true;
    if (seen.error) this.failed = true;
  }

  /** An event too large to keep: its `usageMetadata` and `finishReason` from its last bytes. */
  #fromTail(data: string): void {
    const b = encoder.encode(data);
    let end = b.length;
    while (end > 0 && isJsonWs(b[end - 1])) end--;
    scanMembersBackward(b, 0, end, 3, (depth, ks, ke, vs, ve) => {
      if (depth === 1 && keyEquals(b, ks, ke, "usageMetadata")) {
        const usage = obj(parseJsonSlice(b, vs, ve));
        if (usage !== undefined) this.usage = usage;
      } else if (depth === 1 && keyEquals(b, ks, ke, "modelVersion")) {
        const model = parseJsonSlice(b, vs, ve);
        if (typeof model === "string") this.model = model;
      } else if (depth >= 2 && keyEquals(b, ks, ke, "finishReason")) {
        this.complete = true;
      }
      return false;
    });
  }
}

/**
 * A JSON body (one response, or the array `streamGenerateContent` sends without `alt=sse`): kept
 * whole up to `maxFull` bytes, else only its last `tailBytes`, scanned backwards.
 */
class GeminiJsonMeter implements Meter {
  #full: Uint8Array[] | null = [];
  #size = 0;
  #ring: ByteRing | null = null;

  constructor(readonly maxFull: number, readonly tailBytes: number) {}

  push(chunk: Uint8Array): void {
    this.#size += chunk.length;
    if (this.#ring !== null) return this.#ring.write(chunk);
    if (this.#size <= this.maxFull) {
      this.#full!.push(chunk.slice());
      return;
    }
    this.#ring = new ByteRing(this.tailBytes);
    for (const c of this.#full!) this.#ring.write(c);
    this.#ring.write(chunk);
    this.#full = null;
  }

  end(): MeterResult {
    if (this.#full !== null) return this.#endFull();
    const tail = this.#ring!.bytes();
    let end = tail.length;
    while (end > 0 && isJsonWs(tail[end - 1])) end--;
    const closer = tail[end - 1];
    if (closer === 0x5d) { // `]`: the stream array; read its last element
      end--;
      while (end > 0 && isJsonWs(tail[end - 1])) end--;
    }
    const complete = closer === 0x7d || closer === 0x5d;
    let usage: unknown, model: string | undefined, finished = false;
    scanMembersBackward(tail, 0, end, 3, (depth, ks, ke, vs, ve) => {
      if (depth === 1 && usage === undefined && keyEquals(tail, ks, ke, "usageMetadata")) {
        usage = parseJsonSlice(tail, vs, ve);
      } else if (depth === 1 && model === undefined && keyEquals(tail, ks, ke, "modelVersion")) {
        const m = parseJsonSlice(tail, vs, ve);
        if (typeof m === "string") model = m;
      } else if (depth >= 2 && keyEquals(tail, ks, ke, "finishReason")) finished = true;
      return false;
    });
    return result(usage, model, complete && (finished || usage !== undefined));
  }

  #endFull(): MeterResult {
    const bytes = new Uint8Array(this.#size);
    let offset = 0;
    for (const c of this.#full!) bytes.set(c, offset), offset += c.length;
    let body: unknown;
    try {
      body = JSON.parse(decoder.decode(bytes));
    } catch {
      return result(undefined, undefined, false);
    }
    const items = Array.isArray(body) ? body : [body];
    let usage: Obj | undefined, model: string | undefined;
    let finished = false, failed = false;
    for (const item of items) {
      const seen = inspect(item);
      if (seen.usage !== undefined) usage = seen.usage;
      if (seen.model !== undefined) model = seen.model;
      finished ||= seen.finished;
      failed ||= seen.error;
    }
    // Embeddings have no finishReason: a parsed body without an error is complete.
    const complete = !failed && (finished || !Array.isArray(body));
    return result(usage, model, complete);
  }
}
