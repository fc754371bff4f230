/**
 * DeepSeek usage (reference/vendor-wire.md §7, §9): OpenAI's chat shape plus DeepSeek's own cache
 * fields. `prompt_tokens = prompt_cache_hit_tokens + prompt_cache_miss_tokens`; fresh input is
 * the miss count, cache reads the hit count; `completion_tokens` includes reasoning
 * (`completion_tokens_details.reasoning_tokens`). Streams carry usage only in the
 * `include_usage` chunk. Defensive: never throws on vendor bytes, memory bounded.
 */
import { emptyUsage } from "../usage.ts";
import { JsonUsageTail, strings } from "./json_tail.ts";
import { hasNonNullUsage, type MeterResult, type UsageMeter } from "./openai.ts";
import type { MappedUsage } from "./openai_usage.ts";
import { type SseEvent, SseParser } from "./sse.ts";
import { num, type Obj, obj } from "./json_values.ts";

/** Maps one DeepSeek `usage` object; null when `raw` is not an object. */
export function mapDeepSeekUsage(raw: unknown): MappedUsage | null {
  const u = obj(raw);
  if (u === undefined) return null;
  const out = emptyUsage();
  const prompt = num(u, "prompt_tokens");
  if ("prompt_cache_hit_tokens" in u || "prompt_cache_miss_tokens" in u) {
    out.cachedInputTokens = num(u, "prompt_cache_hit_tokens");
    out.inputTokens = num(u, "prompt_cache_miss_tokens");
  } else { // not documented, but OpenAI's field is the only other place a cache count could be
    out.cachedInputTokens = num(obj(u.prompt_tokens_details), "cached_tokens");
    out.inputTokens = Math.max(0, prompt - out.cachedInputTokens);
  }
  out.outputTokens = num(u, "completion_tokens");
  out.reasoningTokens = num(obj(u.completion_tokens_details), "reasoning_tokens");
  return { usage: out, promptTokens: prompt || out.inputTokens + out.cachedInputTokens };
}

/** A meter for one DeepSeek response: SSE chat chunks (usage chunk, `[DONE]`) or a JSON body. */
export function createDeepSeekMeter(options: { contentType: string | null }): UsageMeter {
  const ct = options.contentType?.toLowerCase() ?? "";
  if (ct.includes("text/event-stream")) return new DeepSeekSseMeter();
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
  return { push: () => {}, end: () => ({ usage: null, promptTokens: 0, complete: true }) };
}

function result(raw: unknown, model: string | undefined, complete: boolean): MeterResult {
  const mapped = mapDeepSeekUsage(raw);
  return {
    usage: mapped?.usage ?? null,
    promptTokens: mapped?.promptTokens ?? 0,
    ...strings(model, undefined),
    complete,
  };
}

class DeepSeekSseMeter implements UsageMeter {
  readonly #parser = new SseParser();
  #raw: unknown = undefined;
  #model: string | undefined = undefined;
  #complete = false;
  readonly #onEvent = (e: SseEvent) => {
    if (e.data === "[DONE]") this.#complete = true;
    else if (this.#model === undefined || hasNonNullUsage(e.data)) {
      let o: Obj | undefined;
      try {
        o = obj(JSON.parse(e.data));
      } catch {
        return;
      }
      if (typeof o?.model === "string" && o.model !== "") this.#model = o.model;
      if (obj(o?.usage) !== undefined) this.#raw = o!.usage;
    }
  };

  push(chunk: Uint8Array): void {
    this.#parser.push(chunk, this.#onEvent);
  }

  end(): MeterResult {
    this.#parser.end(this.#onEvent);
    return result(this.#raw, this.#model, this.#complete);
  }
}
