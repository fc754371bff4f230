/**
 * Streaming for the fake upstreams: a paced, cancellable ReadableStream over a lazy source of
 * frames, plus the OpenAI SSE framings (chat/completions chunks, Responses typed events).
 */
import { type Content, Rng } from "./openai_content.ts";

export type Frame = string | Uint8Array;

export interface PacedOptions {
  /** Delay before every frame but the first; read per frame so it can change mid-stream. */
  delayMs: () => number;
  /** Also wait before the first frame (a non-stream body that takes time to "generate"). */
  delayFirst?: boolean;
  /** Drop the connection (abruptly) after this many frames. */
  cutAfter?: number;
  /** End the body cleanly but early (no terminator frames) after this many frames. */
  eofAfter?: number;
  /** Without delay, frames are coalesced up to this many bytes per write. */
  batchBytes?: number;
  onDone(): void;
  onCancel(): void;
}

export interface Paced {
  stream: ReadableStream<Uint8Array>;
  /** Ends the stream early and quietly (server closing): the client sees a truncated body. */
  abort(): void;
}

const encoder = new TextEncoder();

/**
 * Pulls one frame (or one batch) at a time from `source`: nothing is buffered beyond that, so a
 * 50 MB stream holds 64 KiB at most. Client cancellation clears the pending timer at once.
 */
export function pacedStream(source: Iterator<Frame>, opts: PacedOptions): Paced {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let wake: (() => void) | undefined;
  let finished = false;
  let first = !opts.delayFirst;
  let count = 0;
  let ctrl: ReadableStreamDefaultController<Uint8Array> | undefined;
  const batchBytes = opts.batchBytes ?? 65536;
  const stop = () => {
    finished = true;
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    wake?.();
    wake = undefined;
    source.return?.();
  };
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      wake = resolve;
      timer = setTimeout(() => {
        timer = undefined;
        wake = undefined;
        resolve();
      }, ms);
    });
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      ctrl = c;
    },
    async pull(c) {
      const delay = opts.delayMs();
      if (!first && delay > 0) await sleep(delay);
      first = false;
      if (finished) return;
      const parts: Uint8Array[] = [];
      let size = 0;
      while (true) {
        const cut = opts.cutAfter !== undefined && count >= opts.cutAfter;
        if (cut) {
          if (size) c.enqueue(concat(parts, size));
          stop();
          opts.onDone();
          // Deno prints errored response bodies; keep that to one explanatory line.
          const err = new Error("connection cut");
          err.stack =
            `Fake upstream: connection dropped on purpose after ${count} frames ([[cut:N]])`;
          c.error(err);
          return;
        }
        const eof = opts.eofAfter !== undefined && count >= opts.eofAfter;
        const next = eof ? { done: true as const, value: undefined } : source.next();
        if (next.done) {
          if (size) c.enqueue(concat(parts, size));
          stop();
          c.close();
          opts.onDone();
          return;
        }
        count++;
        const bytes = typeof next.value === "string" ? encoder.encode(next.value) : next.value;
        parts.push(bytes);
        size += bytes.length;
        if (delay > 0 || size >= batchBytes) break;
      }
      c.enqueue(concat(parts, size));
    },
    cancel() {
      if (finished) return;
      stop();
      opts.onCancel();
    },
  }, { highWaterMark: 0 });
  return {
    stream,
    abort() {
      if (finished) return;
      stop();
      opts.onCancel();
      try {
        ctrl?.close();
      } catch { /* already closed */ }
    },
  };
}

function concat(parts: Uint8Array[], size: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) out.set(p, at), at += p.length;
  return out;
}

export const sseData = (payload: unknown) => `data: ${JSON.stringify(payload)}\n\n`;
export const sseEvent = (type: string, payload: unknown) =>
  `event: ${type}\ndata: ${JSON.stringify(payload)}\n\n`;

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** OpenAI pads stream chunks with a random `obfuscation` string; here a seeded one. */
export function obfuscator(seedHex: string): () => string {
  const rng = new Rng(seedHex, "obfuscation");
  return () => {
    let s = "";
    for (let n = 1 + rng.int(15); n > 0; n--) s += ALNUM[rng.int(ALNUM.length)];
    return s;
  };
}

export interface ChatStreamCtx {
  /** chat.completion.chunk or text_completion (legacy completions). */
  kind: "chat" | "completions";
  id: string;
  created: number;
  model: string;
  fingerprint: string;
  includeUsage: boolean;
  obfuscation: (() => string) | null;
  finishReason: "stop" | "length";
  usage: unknown;
}

/**
 * `data: {chunk}` frames then `data: [DONE]`. `usage: null` on every chunk and a trailing
 * `choices: []` usage chunk only with `stream_options.include_usage`; otherwise no usage key.
 */
export function* chatChunks(ctx: ChatStreamCtx, content: Content): Generator<string> {
  const frame = (choice: Record<string, unknown> | null, usage: unknown = null) => {
    const chunk: Record<string, unknown> = ctx.kind === "chat"
      ? {
        id: ctx.id,
        object: "chat.completion.chunk",
        created: ctx.created,
        model: ctx.model,
        service_tier: "default",
        system_fingerprint: ctx.fingerprint,
        choices: choice ? [choice] : [],
      }
      : {
        id: ctx.id,
        object: "text_completion",
        created: ctx.created,
        choices: choice ? [choice] : [],
        model: ctx.model,
        system_fingerprint: ctx.fingerprint,
      };
    if (ctx.includeUsage) chunk.usage = usage;
    if (ctx.obfuscation) chunk.obfuscation = ctx.obfuscation();
    return sseData(chunk);
  };
  const choice = (delta: Record<string, unknown> | string, finish: string | null) =>
    typeof delta === "string"
      ? { text: delta, index: 0, logprobs: null, finish_reason: finish }
      : { index: 0, delta, logprobs: null, finish_reason: finish };
  if (ctx.kind === "chat") {
    yield frame(choice({ role: "assistant", content: "", refusal: null }, null));
    for (const piece of content.pieces()) yield frame(choice({ content: piece }, null));
    yield frame(choice({}, ctx.finishReason));
  } else {
    for (const piece of content.pieces()) yield frame(choice(piece, null));
    yield frame(choice("", ctx.finishReason));
  }
  if (ctx.includeUsage) yield frame(null, ctx.usage);
  yield "data: [DONE]\n\n";
}

export interface ResponsesCtx {
  id: string;
  msgId: string;
  /** Reasoning item id, for reasoning models only. */
  rsId: string | null;
  createdAt: number;
  model: string;
  body: Record<string, unknown>;
  usage: unknown;
  truncated: boolean;
}

/** The `response` object, as in a non-stream reply and inside created/completed events. */
export function responseObject(
  ctx: ResponsesCtx,
  status: "in_progress" | "completed" | "incomplete",
  output: unknown[],
) {
  const b = ctx.body;
  const done = status !== "in_progress";
  return {
    id: ctx.id,
    object: "response",
    created_at: ctx.createdAt,
    status,
    background: false,
    error: null,
    incomplete_details: status === "incomplete" ? { reason: "max_output_tokens" } : null,
    instructions: b.instructions ?? null,
    max_output_tokens: b.max_output_tokens ?? null,
    max_tool_calls: null,
    model: ctx.model,
    output,
    parallel_tool_calls: true,
    previous_response_id: b.previous_response_id ?? null,
    prompt_cache_key: null,
    reasoning: { effort: ctx.rsId ? "medium" : null, summary: null },
    safety_identifier: null,
    service_tier: done ? "default" : "auto",
    store: b.store ?? true,
    temperature: b.temperature ?? 1.0,
    text: { format: { type: "text" }, verbosity: "medium" },
    tool_choice: b.tool_choice ?? "auto",
    tools: b.tools ?? [],
    top_logprobs: 0,
    top_p: b.top_p ?? 1.0,
    truncation: "disabled",
    usage: done ? ctx.usage : null,
    user: null,
    metadata: b.metadata ?? {},
  };
}

export const textPart = (text: string) => ({
  type: "output_text",
  annotations: [],
  logprobs: [],
  text,
});
export const reasoningItem = (id: string) => ({ id, type: "reasoning", summary: [] });
export const messageItem = (ctx: ResponsesCtx, status: string, content: unknown[]) => ({
  id: ctx.msgId,
  type: "message",
  status,
  content,
  role: "assistant",
});

/** Typed `event:`/`data:` frames with increasing sequence_number; no `[DONE]`. */
export function* responsesEvents(ctx: ResponsesCtx, content: Content): Generator<string> {
  let seq = 0;
  const ev = (type: string, fields: Record<string, unknown>) =>
    sseEvent(type, { type, sequence_number: seq++, ...fields });
  const status = ctx.truncated ? "incomplete" : "completed";
  const output: unknown[] = [];
  yield ev("response.created", { response: responseObject(ctx, "in_progress", []) });
  yield ev("response.in_progress", { response: responseObject(ctx, "in_progress", []) });
  if (ctx.rsId) {
    const item = reasoningItem(ctx.rsId);
    yield ev("response.output_item.added", { output_index: 0, item });
    yield ev("response.output_item.done", { output_index: 0, item });
    output.push(item);
  }
  const at = { item_id: ctx.msgId, output_index: output.length, content_index: 0 };
  yield ev("response.output_item.added", {
    output_index: at.output_index,
    item: messageItem(ctx, "in_progress", []),
  });
  yield ev("response.content_part.added", { ...at, part: textPart("") });
  const obfuscation = obfuscator(ctx.id);
  let text = "";
  for (const delta of content.pieces()) {
    text += delta;
    yield ev("response.output_text.delta", {
      ...at,
      delta,
      logprobs: [],
      obfuscation: obfuscation(),
    });
  }
  yield ev("response.output_text.done", { ...at, text, logprobs: [] });
  yield ev("response.content_part.done", { ...at, part: textPart(text) });
  const item = messageItem(ctx, status, [textPart(text)]);
  yield ev("response.output_item.done", { output_index: at.output_index, item });
  output.push(item);
  yield ev(`response.${status}`, { response: responseObject(ctx, status, output) });
}
