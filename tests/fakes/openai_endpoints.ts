/**
 * Endpoint handlers of the fake OpenAI upstream (text, embeddings, moderations, models) and the
 * types they share with the server core in `openai.ts`.
 */
import { Buffer } from "node:buffer";
import * as C from "./openai_content.ts";
import * as S from "./sse.ts";

export type Json = Record<string, unknown>;
export const isObj = (v: unknown): v is Json =>
  v !== null && typeof v === "object" && !Array.isArray(v);

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = "invalid_request_error",
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }
}
export const missing = (param: string) =>
  new HttpError(
    400,
    `Missing required parameter: '${param}'.`,
    undefined,
    param,
    "missing_required_parameter",
  );

export const MODELS = [
  ["gpt-4o", 1715367049],
  ["gpt-4o-mini", 1721172741],
  ["gpt-4.1", 1744316542],
  ["o4-mini", 1744225351],
  ["text-embedding-3-small", 1705948997],
  ["gpt-image-1", 1745517030],
  ["tts-1", 1681940951],
  ["whisper-1", 1677532384],
  ["gpt-4o-transcribe", 1742068463],
  ["omni-moderation-latest", 1731689265],
] as const;

export const SSE = "text/event-stream; charset=utf-8";
export interface Ctx {
  path: string;
  seed: string;
  body: Json;
  form?: FormData;
  model: string;
  created: number;
  /** Parses directives from the control text; `[[status:N]]` throws the matching error. */
  control(text: string): C.Directives;
  json(payload: unknown): Response;
  stream(source: Iterator<S.Frame>, contentType: string): Response;
  text(body: string, contentType: string): Response;
}

export type Handler = (ctx: Ctx) => Response | Promise<Response>;
export interface Route {
  method: "GET" | "POST";
  body: "json" | "multipart" | "none";
  defaultModel?: string;
  handler: Handler;
}

export function statusError(status: number, model = "gpt-4o"): HttpError {
  if (status === 429) {
    return new HttpError(
      429,
      `Rate limit reached for ${model} in organization org-fake on tokens per min (TPM): Limit 30000, Used 30000, Requested 100. Please try again in 200ms.`,
      "tokens",
      null,
      "rate_limit_exceeded",
    );
  }
  if (status === 503) {
    return new HttpError(
      503,
      "The engine is currently overloaded, please try again later.",
      "server_error",
    );
  }
  if (status >= 500) {
    return new HttpError(
      status,
      "The server had an error while processing your request. Sorry about that!",
      "server_error",
    );
  }
  return new HttpError(status, `Injected error (${status}).`);
}

const fingerprint = (model: string) => `fp_${C.hexId(C.sha256Hex(model), "fp", 10)}`;
const maxTokens = (...vs: unknown[]) => vs.find((v): v is number => typeof v === "number");
/** Reasoning counts against the output limit: OpenAI stops thinking at the limit too. */
const thinking = (tokens: number, limit: number | undefined) =>
  limit === undefined ? tokens : Math.min(tokens, limit);

export function chatLike(kind: "chat" | "completions"): Handler {
  return (ctx) => {
    const { body, seed, model } = ctx;
    if (kind === "chat") {
      if (!Array.isArray(body.messages)) throw missing("messages");
      if (body.messages.length === 0) {
        throw new HttpError(
          400,
          "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
          undefined,
          "messages",
          "empty_array",
        );
      }
    } else if (body.prompt === undefined) throw missing("prompt");
    const prompt = kind === "chat" ? C.chatPrompt(body) : C.completionsPrompt(body);
    const d = ctx.control(prompt.control);
    const limit = maxTokens(body.max_completion_tokens, body.max_tokens);
    const reasoning = kind === "chat" ? thinking(C.reasoningTokens(seed, model), limit) : 0;
    const content = C.limitContent(
      C.makeContent(seed, prompt.control, d),
      limit === undefined ? undefined : Math.max(0, limit - reasoning),
    );
    const finishReason = content.truncated ? "length" : "stop";
    const usage = kind === "chat" ? C.chatUsage(prompt.tokens, content.tokens, reasoning) : {
      prompt_tokens: prompt.tokens,
      completion_tokens: content.tokens,
      total_tokens: prompt.tokens + content.tokens,
    };
    const id = kind === "chat"
      ? `chatcmpl-${C.alnumId(seed, "id", 29)}`
      : `cmpl-${C.alnumId(seed, "id", 29)}`;
    if (body.stream === true) {
      const so = isObj(body.stream_options) ? body.stream_options : {};
      return ctx.stream(
        S.chatChunks({
          kind,
          id,
          created: ctx.created,
          model,
          fingerprint: fingerprint(model),
          includeUsage: so.include_usage === true,
          obfuscation: kind === "chat" && so.include_obfuscation !== false
            ? S.obfuscator(seed)
            : null,
          finishReason,
          usage,
        }, content),
        SSE,
      );
    }
    if (kind === "completions") {
      return ctx.json({
        id,
        object: "text_completion",
        created: ctx.created,
        model,
        choices: [{ text: content.text(), index: 0, logprobs: null, finish_reason: finishReason }],
        usage,
      });
    }
    return ctx.json({
      id,
      object: "chat.completion",
      created: ctx.created,
      model,
      choices: [{
        index: 0,
        message: { role: "assistant", content: content.text(), refusal: null, annotations: [] },
        logprobs: null,
        finish_reason: finishReason,
      }],
      usage,
      service_tier: "default",
      system_fingerprint: fingerprint(model),
    });
  };
}

export const responses: Handler = (ctx) => {
  const { body, seed, model } = ctx;
  const prompt = C.responsesPrompt(body);
  const d = ctx.control(prompt.control);
  const limit = maxTokens(body.max_output_tokens);
  const reasoning = thinking(C.reasoningTokens(seed, model), limit);
  const content = C.limitContent(
    C.makeContent(seed, prompt.control, d),
    limit === undefined ? undefined : Math.max(0, limit - reasoning),
  );
  const rctx: S.ResponsesCtx = {
    id: `resp_${C.hexId(seed, "resp", 50)}`,
    msgId: `msg_${C.hexId(seed, "msg", 50)}`,
    rsId: reasoning ? `rs_${C.hexId(seed, "rs", 50)}` : null,
    createdAt: ctx.created,
    model,
    body,
    usage: C.responsesUsage(prompt.tokens, content.tokens, reasoning),
    truncated: content.truncated,
  };
  if (body.stream === true) return ctx.stream(S.responsesEvents(rctx, content), SSE);
  const status = content.truncated ? "incomplete" : "completed";
  const message = S.messageItem(rctx, status, [S.textPart(content.text())]);
  const output = rctx.rsId ? [S.reasoningItem(rctx.rsId), message] : [message];
  return ctx.json(S.responseObject(rctx, status, output));
};

export const embeddings: Handler = (ctx) => {
  const { body, model } = ctx;
  const input = body.input;
  if (input === undefined) throw missing("input");
  const inputs: unknown[] = typeof input === "string"
    ? [input]
    : Array.isArray(input) && input.length > 0 && input.every((v) => typeof v === "number")
    ? [input]
    : Array.isArray(input)
    ? input
    : [];
  if (inputs.length === 0 || inputs.some((v) => typeof v !== "string" && !Array.isArray(v))) {
    throw new HttpError(
      400,
      "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
    );
  }
  ctx.control(typeof inputs.at(-1) === "string" ? inputs.at(-1) as string : "");
  const dims = typeof body.dimensions === "number"
    ? body.dimensions
    : model.includes("3-large")
    ? 3072
    : 1536;
  const base64 = body.encoding_format === "base64";
  let tokens = 0;
  const data = inputs.map((item, index) => {
    const text = typeof item === "string" ? item : JSON.stringify(item);
    tokens += typeof item === "string" ? C.countTokens(item) : (item as unknown[]).length;
    const v = C.embeddingVector(model, text, dims);
    const embedding = base64 ? Buffer.from(v.bytes).toString("base64") : v.json;
    return { object: "embedding", index, embedding };
  });
  return ctx.json({
    object: "list",
    data,
    model,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  });
};

const MOD_CATEGORIES = [
  "harassment",
  "harassment/threatening",
  "hate",
  "hate/threatening",
  "illicit",
  "illicit/violent",
  "self-harm",
  "self-harm/intent",
  "self-harm/instructions",
  "sexual",
  "sexual/minors",
  "violence",
  "violence/graphic",
];

/** Flags any input containing the word "forbidden" (as illicit), case-insensitively. */
export const moderations: Handler = (ctx) => {
  const { body, seed, model } = ctx;
  const input = body.input;
  if (input === undefined) throw missing("input");
  const texts = typeof input === "string"
    ? [input]
    : Array.isArray(input) && input.every((v) => typeof v === "string")
    ? input as string[]
    : [C.textOf(input).text];
  ctx.control(texts.at(-1) ?? "");
  const results = texts.map((text, i) => {
    const flagged = /\bforbidden\b/i.test(text);
    const rng = new C.Rng(seed, `mod${i}`);
    const scores: Record<string, number> = {};
    const categories: Record<string, boolean> = {};
    const applied: Record<string, string[]> = {};
    for (const c of MOD_CATEGORIES) {
      categories[c] = flagged && c === "illicit";
      scores[c] = categories[c] ? 0.9312 : Number((rng.next() * 1e-3).toPrecision(4));
      applied[c] = ["text"];
    }
    return { flagged, categories, category_scores: scores, category_applied_input_types: applied };
  });
  return ctx.json({ id: `modr-${C.hexId(seed, "modr", 32)}`, model, results });
};

const modelObject = ([id, created]: readonly [string, number]) => ({
  id,
  object: "model",
  created,
  owned_by: id.startsWith("gpt-4o") || id.startsWith("o") ? "system" : "openai",
});

export const models: Handler = (ctx) => ctx.json({ object: "list", data: MODELS.map(modelObject) });

export const MODEL_ROUTE: Route = {
  method: "GET",
  body: "none",
  handler: (ctx) => {
    const id = decodeURIComponent(ctx.path.slice("/v1/models/".length));
    const found = MODELS.find(([m]) => m === id);
    if (!found) {
      throw new HttpError(
        404,
        `The model '${id}' does not exist`,
        undefined,
        "model",
        "model_not_found",
      );
    }
    return ctx.json(modelObject(found));
  },
};
