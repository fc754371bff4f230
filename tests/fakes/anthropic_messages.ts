/**
 * Request validation, prompt accounting, usage objects and the Messages SSE framing of the fake
 * Anthropic upstream (`anthropic.ts`). Content comes from the OpenAI fake's generator, so both
 * fakes speak the same deterministic words; only the wire shapes differ.
 */
import * as C from "./openai_content.ts";
import * as S from "./sse.ts";

export type Json = Record<string, unknown>;
export const isObj = (v: unknown): v is Json =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/** Anthropic's error `type` per status (docs "Errors"). */
export function errorType(status: number): string {
  const types: Record<number, string> = {
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
  };
  return types[status] ?? (status >= 500 ? "api_error" : "invalid_request_error");
}

export class AnthropicHttpError extends Error {
  constructor(readonly status: number, message: string, readonly type = errorType(status)) {
    super(message);
  }
}
const invalid = (message: string) => new AnthropicHttpError(400, message);

/** `[[status:N]]`: the error the real API would answer with that status. */
export function statusError(status: number): AnthropicHttpError {
  const messages: Record<number, string> = {
    401: "invalid x-api-key",
    403: "Your API key does not have permission to use the specified resource.",
    404: "The requested resource could not be found.",
    413: "Request exceeds the maximum allowed number of bytes.",
    429:
      "This request would exceed the rate limit for your organization of 50 requests per minute.",
    500: "Internal server error",
    529: "Overloaded",
  };
  return new AnthropicHttpError(status, messages[status] ?? `Injected error (${status}).`);
}

/** [id, display_name, created_at], newest first (as the API lists them). */
export const MODELS: readonly (readonly [string, string, string])[] = [
  ["claude-opus-5-5", "Claude Opus 5.5", "2026-09-23T00:00:00Z"],
  ["claude-sonnet-5-5", "Claude Sonnet 5.5", "2026-09-23T00:00:00Z"],
  ["claude-haiku-5-5", "Claude Haiku 5.5", "2026-10-07T00:00:00Z"],
  ["claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-15T00:00:00Z"],
  ["claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"],
];

export const modelInfo = ([id, name, created]: readonly [string, string, string]) => ({
  type: "model",
  id,
  display_name: name,
  created_at: created,
});

/** Listed models and any `claude-…` alias are served; anything else is a 404, as upstream. */
export function checkModel(model: string): void {
  if (!model.startsWith("claude-")) {
    throw new AnthropicHttpError(404, `model: ${model}`);
  }
}

/** Under version 2026-10-21 these sampling parameters are rejected (vendor-wire §3.1). */
const REMOVED_2026 = ["temperature", "top_p", "top_k"];

/** Validates a Messages (or, with `count`, a count_tokens) body like the real API does. */
export function validateBody(body: Json, version: string, count: boolean): string {
  if (typeof body.model !== "string" || body.model === "") throw invalid("model: Field required");
  if (!count) {
    if (body.max_tokens === undefined) throw invalid("max_tokens: Field required");
    if (!Number.isInteger(body.max_tokens)) {
      throw invalid("max_tokens: Input should be a valid integer");
    }
    if ((body.max_tokens as number) < 1) {
      throw invalid("max_tokens: Input should be greater than or equal to 1");
    }
    if (body.stream !== undefined && typeof body.stream !== "boolean") {
      throw invalid("stream: Input should be a valid boolean");
    }
  }
  if (!Array.isArray(body.messages)) throw invalid("messages: Field required");
  if (body.messages.length === 0) throw invalid("messages: at least one message is required");
  body.messages.forEach((m, i) => {
    if (!isObj(m)) throw invalid(`messages.${i}: Input should be a valid dictionary`);
    if (!["user", "assistant", "system"].includes(m.role as string)) {
      throw invalid(`messages.${i}.role: Input should be 'user' or 'assistant'`);
    }
    if (typeof m.content !== "string" && !Array.isArray(m.content)) {
      throw invalid(`messages.${i}.content: Field required`);
    }
  });
  if (version === "2026-10-21") {
    for (const p of REMOVED_2026) {
      if (body[p] !== undefined) {
        throw invalid(`${p}: is not supported with anthropic-version 2026-10-21`);
      }
    }
  }
  checkModel(body.model);
  return body.model;
}

/** Prompt tokens (before cache accounting) and the last user message's text (the control). */
export function promptOf(body: Json): C.Prompt {
  let tokens = 4 + C.textOf(body.system).images * 85 + C.countTokens(C.textOf(body.system).text);
  let control = "";
  for (const m of body.messages as Json[]) {
    const c = C.textOf(m.content);
    tokens += 3 + C.countTokens(c.text) + 85 * c.images;
    if (m.role === "user") control = c.text;
  }
  if (body.tools !== undefined) tokens += C.countTokens(JSON.stringify(body.tools));
  return { tokens, control };
}

const CACHE = /\[\[(cache_read|cache_write|cache_write_1h):(\d+)\]\]/g;

/** How the prompt splits into fresh input, cache reads and cache writes (5m and 1h). */
export interface PromptSplit {
  input: number;
  read: number;
  write5m: number;
  write1h: number;
}

/**
 * `[[cache_read:N]]`, `[[cache_write:N]]` (5-minute) and `[[cache_write_1h:N]]` carve that many
 * tokens out of the prompt (bounded by it); the rest is fresh input, which excludes the cache.
 */
export function splitPrompt(promptTokens: number, control: string): PromptSplit {
  const want = { cache_read: 0, cache_write: 0, cache_write_1h: 0 };
  for (const m of control.matchAll(CACHE)) want[m[1] as keyof typeof want] = Number(m[2]);
  let left = promptTokens;
  const take = (n: number) => {
    const t = Math.min(n, left);
    left -= t;
    return t;
  };
  const read = take(want.cache_read);
  const write5m = take(want.cache_write);
  const write1h = take(want.cache_write_1h);
  return { input: left, read, write5m, write1h };
}

export const stripCacheDirectives = (text: string) => text.replace(CACHE, " ");

/** The full `usage` of a message (non-stream body, and `message_start` with output 1). */
export function usageObject(p: PromptSplit, output: number) {
  return {
    input_tokens: p.input,
    cache_creation_input_tokens: p.write5m + p.write1h,
    cache_read_input_tokens: p.read,
    cache_creation: {
      ephemeral_5m_input_tokens: p.write5m,
      ephemeral_1h_input_tokens: p.write1h,
    },
    output_tokens: output,
    service_tier: "standard",
    inference_geo: "not_available",
  };
}

/** `message_delta.usage`: cumulative totals (no cache breakdown, as upstream sends it). */
export function deltaUsage(p: PromptSplit, output: number) {
  return {
    input_tokens: p.input,
    cache_creation_input_tokens: p.write5m + p.write1h,
    cache_read_input_tokens: p.read,
    output_tokens: output,
  };
}

export interface MessageCtx {
  id: string;
  model: string;
  split: PromptSplit;
  content: C.Content;
  stopReason: "end_turn" | "max_tokens";
}

function messageObject(ctx: MessageCtx, content: unknown[], done: boolean) {
  return {
    model: ctx.model,
    id: ctx.id,
    type: "message",
    role: "assistant",
    content,
    stop_reason: done ? ctx.stopReason : null,
    stop_sequence: null,
    stop_details: null,
    usage: usageObject(ctx.split, done ? ctx.content.tokens : 1),
  };
}

/** The non-stream answer: compact JSON, as the API sends it. */
export function messageJson(ctx: MessageCtx): string {
  return JSON.stringify(messageObject(ctx, [{ type: "text", text: ctx.content.text() }], true));
}

/**
 * Named events, no `[DONE]`: message_start, content_block_start, ping, content_block_delta per
 * piece, content_block_stop, message_delta (cumulative usage), message_stop.
 */
export function* messageEvents(ctx: MessageCtx): Generator<string> {
  const ev = (type: string, fields: Json = {}) => S.sseEvent(type, { type, ...fields });
  yield ev("message_start", { message: messageObject(ctx, [], false) });
  yield ev("content_block_start", { index: 0, content_block: { type: "text", text: "" } });
  yield ev("ping");
  for (const text of ctx.content.pieces()) {
    yield ev("content_block_delta", { index: 0, delta: { type: "text_delta", text } });
  }
  yield ev("content_block_stop", { index: 0 });
  yield ev("message_delta", {
    delta: { stop_reason: ctx.stopReason, stop_sequence: null, stop_details: null },
    usage: deltaUsage(ctx.split, ctx.content.tokens),
  });
  yield ev("message_stop");
}
