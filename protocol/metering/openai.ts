/**
 * Per-request incremental usage meter for OpenAI (and Azure OpenAI) responses, fed the response
 * bytes as they are forwarded; the mapping itself is in `openai_usage.ts` (re-exported here).
 * Never throws on vendor bytes; memory is bounded whatever the response size.
 */
import { type SseEvent, SseParser } from "./sse.ts";
import { JsonUsageTail, strings } from "./json_tail.ts";
import { keyEquals, parseJsonSlice, scanMembersBackward } from "./json_scan.ts";
import { type Obj, obj } from "./json_values.ts";
import { mapOpenAIUsage, type OpenAISurface, openAISurface } from "./openai_usage.ts";

export {
  mapOpenAIUsage,
  type MappedUsage,
  type OpenAISurface,
  openAISurface,
} from "./openai_usage.ts";

/** The meter contract lives with the vendor surface; these names are kept for the meters. */
export type { Meter as UsageMeter, MeterResult } from "../vendors/types.ts";
import type { Meter as UsageMeter, MeterResult } from "../vendors/types.ts";

/** What {@link createOpenAIMeter} needs to know about the request and response. */
export interface OpenAIMeterOptions {
  /** Request path (query allowed). */
  path: string;
  /** The request asked for a stream (`"stream": true`); used when `contentType` is null. */
  stream: boolean;
  /** Response `Content-Type`. */
  contentType: string | null;
  /** SSE event bound (default 1 MiB); larger terminal events are read from their tail. */
  maxEventBytes?: number;
}

/**
 * A meter for one OpenAI response: SSE (`text/event-stream`) → the chat usage chunk and
 * `[DONE]`, or the Responses/speech/transcription terminal event; JSON → {@link JsonUsageTail};
 * anything else (audio bytes, plain text) → no usage, complete.
 */
export function createOpenAIMeter(options: OpenAIMeterOptions): UsageMeter {
  const surface = openAISurface(options.path);
  const ct = options.contentType?.toLowerCase() ?? null;
  if (ct === null ? options.stream : ct.includes("text/event-stream")) {
    return new OpenAISseMeter(surface, options.maxEventBytes);
  }
  if (ct === null || ct.includes("json")) {
    const tail = new JsonUsageTail();
    return {
      push: (chunk) => tail.push(chunk),
      end: () => {
        const r = tail.end();
        return result(r.usage, surface, r.model, r.serviceTier, r.complete);
      },
    };
  }
  return { push: () => {}, end: () => ({ usage: null, promptTokens: 0, complete: true }) };
}

function result(
  raw: unknown,
  surface: OpenAISurface,
  model: string | undefined,
  serviceTier: string | undefined,
  complete: boolean,
): MeterResult {
  const mapped = surface === "other" ? null : mapOpenAIUsage(raw, surface);
  return {
    usage: mapped?.usage ?? null,
    promptTokens: mapped?.promptTokens ?? 0,
    ...strings(model, serviceTier),
    complete,
  };
}

const TERMINAL = new Set([
  "response.completed",
  "response.incomplete",
  "response.failed",
  "speech.audio.done",
  "transcript.text.done",
]);
const TAIL_BYTES = 64 << 10;
const encoder = new TextEncoder();

class OpenAISseMeter implements UsageMeter {
  readonly #parser: SseParser;
  readonly #surface: OpenAISurface;
  readonly #onEvent = (e: SseEvent) => this.#surface === "chat" ? this.#chat(e) : this.#typed(e);
  #raw: unknown = undefined;
  #model: string | undefined = undefined;
  #tier: string | undefined = undefined;
  #complete = false;

  constructor(surface: OpenAISurface, maxEventBytes?: number) {
    this.#surface = surface;
    this.#parser = new SseParser({ maxEventBytes, oversizedTailBytes: TAIL_BYTES });
  }

  push(chunk: Uint8Array): void {
    this.#parser.push(chunk, this.#onEvent);
  }

  end(): MeterResult {
    this.#parser.end(this.#onEvent);
    return result(this.#raw, this.#surface, this.#model, this.#tier, this.#complete);
  }

  /** Chat chunks: only the usage chunk (and one chunk for the model) is parsed. */
  #chat(e: SseEvent): void {
    const d = e.data;
    if (d === "[DONE]") this.#complete = true;
    else if (!e.truncated && (this.#model === undefined || hasNonNullUsage(d))) {
      this.#take(parseObject(d));
    }
  }

  /** Typed events (Responses, speech and transcription SSE): usage is in the terminal event. */
  #typed(e: SseEvent): void {
    const type = e.event ?? sniffType(e.data);
    if (type !== undefined && TERMINAL.has(type)) {
      this.#complete = true;
      if (e.truncated) this.#fromTail(encoder.encode(e.data));
      else {
        const o = parseObject(e.data);
        this.#take(obj(o?.response) ?? o);
      }
    } else if (this.#model === undefined && type === "response.created" && !e.truncated) {
      const o = obj(parseObject(e.data)?.response);
      this.#model = typeof o?.model === "string" ? o.model : undefined;
    }
  }

  #take(o: Obj | undefined): void {
    if (o === undefined) return;
    if (typeof o.model === "string" && o.model !== "") this.#model = o.model; // Azure's first is ""
    if (typeof o.service_tier === "string") this.#tier = o.service_tier;
    if (obj(o.usage) !== undefined) this.#raw = o.usage;
  }

  /** A terminal event too large to keep: read `response.usage` (depth 2) from its last bytes. */
  #fromTail(b: Uint8Array): void {
    scanMembersBackward(b, 0, b.length, 2, (_d, ks, ke, vs, ve) => {
      if (this.#raw === undefined && keyEquals(b, ks, ke, "usage")) {
        this.#raw = parseJsonSlice(b, vs, ve);
      } else if (keyEquals(b, ks, ke, "service_tier")) {
        const v = parseJsonSlice(b, vs, ve);
        if (typeof v === "string") this.#tier = v;
      }
      return false;
    });
  }
}

function parseObject(text: string): Obj | undefined {
  try {
    return obj(JSON.parse(text));
  } catch {
    return undefined;
  }
}

/**
 * Whether a `"usage"` key is followed by anything but `null`. A pre-filter only (a hit is then
 * parsed): a JSON string cannot contain a raw `"`, so the bytes `"usage"` followed by `:` are
 * a key.
 */
export function hasNonNullUsage(d: string): boolean {
  for (let i = d.indexOf('"usage"'); i !== -1; i = d.indexOf('"usage"', i + 7)) {
    let j = i + 7;
    while (d.charCodeAt(j) === 0x20) j++;
    if (d.charCodeAt(j) !== 0x3a) continue;
    j++;
    while (d.charCodeAt(j) === 0x20) j++;
    if (d.charCodeAt(j) !== 0x6e) return true; // not "null"
  }
  return false;
}

/** The `type` of a typed event from its data, when `type` comes first (OpenAI's order). */
function sniffType(data: string): string | undefined {
  const m = /^\{\s*"type"\s*:\s*"([^"\\]{1,100})"/.exec(data);
  return m?.[1];
}
