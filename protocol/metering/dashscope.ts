/**
 * DashScope (Alibaba Cloud Model Studio) usage (reference/vendor-wire.md §8, §9).
 * - Compatible mode (`/compatible-mode/v1/…`): OpenAI's shapes, metered by the OpenAI meter.
 * - Native (`/api/v1/services/…`): `usage {input_tokens, output_tokens, total_tokens,
 *   prompt_tokens_details?.cached_tokens, output_tokens_details?.reasoning_tokens}` at the top
 *   level of the JSON body, or of every SSE frame (`id:`/`event:result`/`:HTTP_STATUS/200`/`data:`)
 *   where it is cumulative: the last frame's counts. `finish_reason` is the string `"null"` until
 *   the last frame. Never throws on vendor bytes; memory bounded by one event.
 */
import { emptyUsage } from "../usage.ts";
import { JsonUsageTail } from "./json_tail.ts";
import { createOpenAIMeter, type MeterResult, type UsageMeter } from "./openai.ts";
import type { MappedUsage } from "./openai_usage.ts";
import { type SseEvent, SseParser } from "./sse.ts";
import { num, type Obj, obj } from "./json_values.ts";

/** Whether a request path is DashScope's OpenAI-compatible mode. */
export function isCompatibleMode(path: string): boolean {
  return path.startsWith("/compatible-mode/");
}

/** Maps one native `usage` object; null when `raw` is not an object. */
export function mapDashScopeUsage(raw: unknown): MappedUsage | null {
  const u = obj(raw);
  if (u === undefined) return null;
  const out = emptyUsage();
  const prompt = num(u, "input_tokens");
  out.cachedInputTokens = num(obj(u.prompt_tokens_details), "cached_tokens");
  out.inputTokens = Math.max(0, prompt - out.cachedInputTokens);
  out.outputTokens = num(u, "output_tokens");
  out.reasoningTokens = num(obj(u.output_tokens_details), "reasoning_tokens");
  return { usage: out, promptTokens: prompt };
}

/** The `finish_reason` of a native body: `output.finish_reason` or the first choice's. */
function finishReason(o: Obj | undefined): string | undefined {
  const output = obj(o?.output);
  const choice = Array.isArray(output?.choices) ? obj(output.choices[0]) : undefined;
  const r = choice?.finish_reason ?? output?.finish_reason;
  return typeof r === "string" ? r : undefined;
}

/** A meter for one DashScope response, compatible or native, by request path. */
export function createDashScopeMeter(
  options: { path: string; contentType: string | null },
): UsageMeter {
  const ct = options.contentType?.toLowerCase() ?? "";
  const stream = ct.includes("text/event-stream");
  if (isCompatibleMode(options.path)) {
    return createOpenAIMeter({ path: options.path, stream, contentType: options.contentType });
  }
  if (stream) return new NativeSseMeter();
  if (ct === "" || ct.includes("json")) {
    const tail = new JsonUsageTail();
    return {
      push: (chunk) => tail.push(chunk),
      end: () => {
        const r = tail.end();
        const mapped = mapDashScopeUsage(r.usage);
        return {
          usage: mapped?.usage ?? null,
          promptTokens: mapped?.promptTokens ?? 0,
          complete: r.complete,
        };
      },
    };
  }
  return { push: () => {}, end: () => ({ usage: null, promptTokens: 0, complete: true }) };
}

/** Native SSE: keeps only the last frame's data, parsed once at the end. */
class NativeSseMeter implements UsageMeter {
  readonly #parser = new SseParser();
  #last: string | undefined = undefined;
  readonly #onEvent = (e: SseEvent) => {
    if (e.data !== "") this.#last = e.data;
  };

  push(chunk: Uint8Array): void {
    this.#parser.push(chunk, this.#onEvent);
  }

  end(): MeterResult {
    this.#parser.end(this.#onEvent);
    let o: Obj | undefined;
    try {
      o = this.#last === undefined ? undefined : obj(JSON.parse(this.#last));
    } catch {
      o = undefined;
    }
    const mapped = mapDashScopeUsage(o?.usage);
    const reason = finishReason(o);
    return {
      usage: mapped?.usage ?? null,
      promptTokens: mapped?.promptTokens ?? 0,
      complete: reason !== undefined && reason !== "null",
    };
  }
}
