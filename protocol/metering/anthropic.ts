/**
 * Per-request incremental usage meter for Anthropic Messages responses (reference/vendor-wire.md
 * §3 and §9), fed the response bytes as they are forwarded. Never throws on vendor bytes; memory
 * is bounded whatever the response size (SSE events up to `maxEventBytes`, JSON bodies through
 * {@link JsonUsageTail}).
 *
 * - Non-stream `POST /v1/messages`: the body's top-level `usage`.
 * - Stream: `message_start` carries `message.usage` (input and cache fields, a placeholder
 *   `output_tokens`); each `message_delta.usage` is CUMULATIVE, so every non-null field it has
 *   overwrites the one held (never added); `message_stop` marks the response complete.
 * - `POST /v1/messages/count_tokens` and everything else: not billed.
 */
import { emptyUsage, type Usage } from "../usage.ts";
import type { Meter, MeterResult } from "../vendors/types.ts";
import { JsonUsageTail } from "./json_tail.ts";
import { keyEquals, parseJsonSlice, scanMembersBackward } from "./json_scan.ts";
import type { SseEvent } from "./sse.ts";
import { SseUsageMeter } from "./sse_meter.ts";
import { num, obj } from "./json_values.ts";

/** A plain JSON object. */
type Obj = Record<string, unknown>;

export interface AnthropicMeterOptions {
  /** Request path (query allowed), e.g. `/v1/messages?beta=true`. */
  path: string;
  /** Response `Content-Type`. */
  contentType: string | null;
  /** SSE event bound (default 1 MiB); larger usage events are read from their tail. */
  maxEventBytes?: number;
}

/** A mapped usage plus the prompt size as Anthropic prices it (input + cache reads + writes). */
export interface MappedAnthropicUsage {
  usage: Usage;
  promptTokens: number;
  /** `usage.service_tier`, with `,fast` appended (or just `fast`) for `speed: "fast"`. */
  serviceTier?: string;
}

/** Whether `path` is the billed Messages endpoint (`/v1/messages`, query ignored). */
export function isAnthropicMessagesPath(path: string): boolean {
  const q = path.indexOf("?");
  const p = (q === -1 ? path : path.slice(0, q)).replace(/\/+$/, "");
  return p.endsWith("/v1/messages");
}

/**
 * Maps one Anthropic `usage` object into {@link Usage}; null when `raw` is not an object.
 * `input_tokens` already excludes cache reads and writes. Cache writes split by
 * `cache_creation.ephemeral_{5m,1h}_input_tokens` when present; whatever of
 * `cache_creation_input_tokens` the 1h figure does not cover counts as 5m.
 */
export function mapAnthropicUsage(raw: unknown): MappedAnthropicUsage | null {
  const u = obj(raw);
  if (u === undefined) return null;
  const out = emptyUsage();
  const creation = obj(u.cache_creation);
  const total = typeof u.cache_creation_input_tokens === "number"
    ? num(u, "cache_creation_input_tokens")
    : num(creation, "ephemeral_5m_input_tokens") + num(creation, "ephemeral_1h_input_tokens");
  out.inputTokens = num(u, "input_tokens");
  out.cachedInputTokens = num(u, "cache_read_input_tokens");
  out.cacheWrite1hTokens = Math.min(num(creation, "ephemeral_1h_input_tokens"), total);
  out.cacheWrite5mTokens = total - out.cacheWrite1hTokens;
  out.outputTokens = num(u, "output_tokens");
  out.reasoningTokens = Math.min(
    num(obj(u.output_tokens_details), "thinking_tokens"),
    out.outputTokens,
  );
  const mapped: MappedAnthropicUsage = {
    usage: out,
    promptTokens: out.inputTokens + out.cachedInputTokens + total,
  };
  const tier = typeof u.service_tier === "string" ? u.service_tier : undefined;
  if (u.speed === "fast") {
    mapped.serviceTier = tier && tier !== "standard" ? `${tier},fast` : "fast";
  } else if (tier !== undefined) mapped.serviceTier = tier;
  return mapped;
}

/**
 * Applies a cumulative `message_delta.usage` to the usage held so far: every field the delta
 * carries with a non-null value replaces the held one (a `null` means "not reported").
 */
export function overwriteUsage(held: Obj | undefined, delta: Obj): Obj {
  const out: Obj = { ...held };
  for (const [k, v] of Object.entries(delta)) if (v !== null && v !== undefined) out[k] = v;
  return out;
}

/** A meter for one Anthropic response: SSE, JSON, or (anything else) nothing to bill. */
export function createAnthropicMeter(options: AnthropicMeterOptions): Meter {
  const ct = options.contentType?.toLowerCase() ?? "";
  if (!isAnthropicMessagesPath(options.path)) return unbilled();
  if (ct.includes("text/event-stream")) return new AnthropicSseMeter(options.maxEventBytes);
  if (ct === "" || ct.includes("json")) {
    const tail = new JsonUsageTail();
    return {
      push: (chunk) => tail.push(chunk),
      end: () => {
        const r = tail.end();
        return result(r.usage, r.model, r.complete);
      },
    };
  }
  return unbilled();
}

function unbilled(): Meter {
  return { push: () => {}, end: () => ({ usage: null, promptTokens: 0, complete: true }) };
}

function result(raw: unknown, model: string | undefined, complete: boolean): MeterResult {
  const mapped = mapAnthropicUsage(raw);
  const out: MeterResult = {
    usage: mapped?.usage ?? null,
    promptTokens: mapped?.promptTokens ?? 0,
    complete,
  };
  if (model !== undefined) out.model = model;
  if (mapped?.serviceTier !== undefined) out.serviceTier = mapped.serviceTier;
  return out;
}

const encoder = new TextEncoder();

class AnthropicSseMeter extends SseUsageMeter {
  protected result = result;

  /** Only the three events that matter are parsed; deltas and pings are skipped unread. */
  protected event(e: SseEvent): void {
    const type = e.event ?? sniffType(e.data);
    if (type === "message_start") {
      if (e.truncated) return this.#fromTail(e.data, 2);
      const message = obj(parseObject(e.data)?.message);
      if (typeof message?.model === "string") this.model = message.model;
      const usage = obj(message?.usage);
      if (usage !== undefined) this.usage = overwriteUsage(this.usage, usage);
    } else if (type === "message_delta") {
      if (e.truncated) return this.#fromTail(e.data, 1);
      const usage = obj(parseObject(e.data)?.usage);
      if (usage !== undefined) this.usage = overwriteUsage(this.usage, usage);
    } else if (type === "message_stop") {
      this.complete = true;
    } else if (type === "error") {
      this.failed = true;
    }
  }

  /** An event too large to keep: its `usage` member (at `depth`) is read from its last bytes. */
  #fromTail(data: string, depth: number): void {
    const b = encoder.encode(data);
    scanMembersBackward(b, 0, b.length, depth, (d, ks, ke, vs, ve) => {
      if (d !== depth || !keyEquals(b, ks, ke, "usage")) return false;
      const usage = obj(parseJsonSlice(b, vs, ve));
      if (usage !== undefined) this.usage = overwriteUsage(this.usage, usage);
      return true;
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

/** The `type` of an event that came without an `event:` line, when `type` comes first. */
function sniffType(data: string): string | undefined {
  return /^\{\s*"type"\s*:\s*"([^"\\]{1,100})"/.exec(data)?.[1];
}
