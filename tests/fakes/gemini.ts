/**
 * A faithful, deterministic fake of the Gemini Developer API (reference/vendor-wire.md §4, §12):
 * `POST /{v1beta,v1}/models/{model}:{generateContent,streamGenerateContent,countTokens,
 * embedContent,batchEmbedContents}` and `GET /{v1beta,v1}/models[/{model}]`. Auth by the
 * `x-goog-api-key` header or the `?key=` query parameter; Google's error envelope
 * `{"error":{"code","message","status"}}`; `alt=sse` streams framed with CRLF (`\r\n\r\n`), each
 * chunk carrying the running `usageMetadata`, the last one `finishReason` and the final totals;
 * without `alt=sse` the stream is a JSON array. The same body always yields byte-identical
 * answers, streamed or not (ids and text come from a hash of the canonical body and model).
 * Controls in the last user text: `[[words:N]]`, `[[bytes:N]]`, `[[delay:MS]]`, `[[status:CODE]]`,
 * `[[cut:N]]`, `[[eof:N]]`, `[[cached:N]]`, `[[thoughts:N]]`, `[[tool_use:N]]`.
 */
import * as C from "./openai_content.ts";
import * as S from "./sse.ts";

export interface FakeGeminiOptions {
  keys: string[];
  port?: number;
  hostname?: string;
  chunkDelayMs?: number;
  /** Keys whose daily quota is gone (429 RESOURCE_EXHAUSTED, a PerDay quota violation). */
  quotaExhaustedKeys?: string[];
}

export interface FakeGeminiRequest {
  id: string;
  method: string;
  /** Path and query as received. */
  path: string;
  key: string | null;
  /** How the key came: the `x-goog-api-key` header or the `key` query parameter. */
  auth: "header" | "query" | null;
  startedAt: number;
  endedAt?: number;
  cancelledAt?: number;
  bodyBytes: number;
  status?: number;
  headers: Record<string, string>;
  model?: string;
  call?: string;
  stream?: boolean;
}

export interface FakeGemini {
  url: string;
  requests: FakeGeminiRequest[];
  setChunkDelayMs(ms: number): void;
  close(): Promise<void>;
}

export const MODELS: readonly string[] = [
  "gemini-3.5-flash",
  "gemini-3.5-flash-lite",
  "gemini-3.1-pro-preview",
  "gemini-embedding-001",
];
const EMBEDDING_DIMS = 16;
const SSE = "text/event-stream";
const JSON_TYPE = "application/json; charset=UTF-8";

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => v !== null && typeof v === "object" && !Array.isArray(v);

export class GeminiHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details?: unknown[],
  ) {
    super(message);
  }
  get statusName(): string {
    return STATUS_NAMES[this.status] ?? (this.status >= 500 ? "INTERNAL" : "INVALID_ARGUMENT");
  }
}

const STATUS_NAMES: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  429: "RESOURCE_EXHAUSTED",
  500: "INTERNAL",
  501: "UNIMPLEMENTED",
  503: "UNAVAILABLE",
  504: "DEADLINE_EXCEEDED",
};

const KEY_INVALID_DETAILS = [{
  "@type": "type.googleapis.com/google.rpc.ErrorInfo",
  reason: "API_KEY_INVALID",
  domain: "googleapis.com",
  metadata: { service: "generativelanguage.googleapis.com" },
}];

const QUOTA_DETAILS = [{
  "@type": "type.googleapis.com/google.rpc.QuotaFailure",
  violations: [{
    quotaMetric: "generativelanguage.googleapis.com/generate_content_free_tier_requests",
    quotaId: "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
  }],
}];

const METHODS = new Set([
  "generateContent",
  "streamGenerateContent",
  "countTokens",
  "embedContent",
  "batchEmbedContents",
]);

export function startFakeGemini(options: FakeGeminiOptions): Promise<FakeGemini> {
  const keys = new Set(options.keys);
  const exhausted = new Set(options.quotaExhaustedKeys ?? []);
  const hostname = options.hostname ?? "127.0.0.1";
  let chunkDelayMs = options.chunkDelayMs ?? 0;
  const requests: FakeGeminiRequest[] = [];
  const active = new Set<S.Paced>();
  let seq = 0;

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const header = req.headers.get("x-goog-api-key");
    const query = url.searchParams.get("key");
    const rec: FakeGeminiRequest = {
      id: `fake_${++seq}`,
      method: req.method,
      path: url.pathname + url.search,
      key: header ?? query,
      auth: header !== null ? "header" : query !== null ? "query" : null,
      startedAt: performance.now(),
      bodyBytes: 0,
      headers: Object.fromEntries(req.headers),
    };
    requests.push(rec);
    let directives: C.Directives = {};
    const delay = () => directives.delayMs ?? chunkDelayMs;

    const send = (status: number, body: BodyInit, contentType: string) => {
      rec.status = status;
      if (!(body instanceof ReadableStream)) rec.endedAt = performance.now();
      return new Response(body, {
        status,
        headers: {
          "content-type": contentType,
          "x-goog-request-id": `fake-${rec.id}`,
          "server-timing": "gfet4t7; dur=1",
          vary: "Origin, X-Origin, Referer",
        },
      });
    };
    const stream = (frames: Iterator<S.Frame>, contentType: string, nonStream = false) => {
      const paced: S.Paced = S.pacedStream(frames, {
        delayMs: delay,
        delayFirst: nonStream,
        cutAfter: nonStream ? undefined : directives.cutAfter,
        eofAfter: nonStream ? undefined : directives.eofAfter,
        onDone: () => (rec.endedAt = performance.now(), active.delete(paced)),
        onCancel: () => (rec.cancelledAt ??= performance.now(), active.delete(paced)),
      });
      active.add(paced);
      return send(200, paced.stream, contentType);
    };
    const json = (body: unknown) => {
      const text = JSON.stringify(body, null, 2) + "\n";
      return delay() > 0
        ? stream([text][Symbol.iterator](), JSON_TYPE, true)
        : send(200, text, JSON_TYPE);
    };

    try {
      const route = routeOf(req.method, url.pathname);
      if (!rec.key) {
        throw new GeminiHttpError(
          403,
          "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        );
      }
      if (!keys.has(rec.key)) {
        throw new GeminiHttpError(
          400,
          "API key not valid. Please pass a valid API key.",
          KEY_INVALID_DETAILS,
        );
      }
      if (exhausted.has(rec.key)) {
        throw new GeminiHttpError(
          429,
          "You exceeded your current quota, please check your plan and billing details.",
          QUOTA_DETAILS,
        );
      }
      if (route.kind === "list") return json(listModels(url.searchParams));
      if (route.kind === "get") return json(modelInfo(findModel(route.model)));

      rec.model = route.model;
      rec.call = route.call;
      findModel(route.model);
      const body = parseJson(await readBody(req, rec));
      const seed = C.sha256Hex(route.model, "\0", C.canonicalJson(body));

      if (route.call === "embedContent" || route.call === "batchEmbedContents") {
        if (!route.model.includes("embedding")) {
          throw new GeminiHttpError(
            404,
            `models/${route.model} is not found for API version ${route.version}, or is not supported for ${route.call}.`,
          );
        }
        const embed = (content: unknown) => {
          const text = contentText(content);
          return { values: C.embeddingVector(route.model, text, EMBEDDING_DIMS).json };
        };
        if (route.call === "embedContent") {
          if (!isObj(body.content)) throw new GeminiHttpError(400, "content is required.");
          return json({ embedding: embed(body.content) });
        }
        if (!Array.isArray(body.requests) || body.requests.length === 0) {
          throw new GeminiHttpError(400, "requests is required.");
        }
        const embeddings = body.requests.map((r, i) => {
          if (!isObj(r) || r.model !== `models/${route.model}`) {
            throw new GeminiHttpError(
              400,
              `Model in request ${i} does not match the model in the URL (models/${route.model}).`,
            );
          }
          return embed(r.content);
        });
        return json({ embeddings });
      }

      const request = route.call === "countTokens" && isObj(body.generateContentRequest)
        ? body.generateContentRequest
        : body;
      const prompt = promptOf(request);
      directives = C.parseDirectives(prompt.control).directives;
      if (directives.status !== undefined) throw statusError(directives.status);
      if (route.call === "countTokens") {
        return json({
          totalTokens: prompt.tokens,
          promptTokensDetails: [{ modality: "TEXT", tokenCount: prompt.tokens }],
        });
      }

      const generation = isObj(request.generationConfig) ? request.generationConfig : {};
      const cap = typeof generation.maxOutputTokens === "number"
        ? generation.maxOutputTokens
        : undefined;
      const content = C.limitContent(
        C.makeContent(seed, stripControls(prompt.control), directives),
        cap,
      );
      const ctx: GenCtx = {
        model: route.model,
        responseId: C.alnumId(seed, "response", 22),
        prompt: prompt.tokens,
        cached: Math.min(control(prompt.control, "cached"), prompt.tokens),
        thoughts: control(prompt.control, "thoughts"),
        toolUse: control(prompt.control, "tool_use"),
        content,
        finishReason: content.truncated ? "MAX_TOKENS" : "STOP",
      };
      if (route.call === "generateContent") return json(responseJson(ctx));
      rec.stream = true;
      if (url.searchParams.get("alt") === "sse") return stream(sseFrames(ctx), SSE);
      return stream(arrayFrames(ctx), JSON_TYPE);
    } catch (e) {
      const err = e instanceof GeminiHttpError ? e : new GeminiHttpError(500, "Internal error.");
      const inner: Json = { code: err.status, message: err.message, status: err.statusName };
      if (err.details) inner.details = err.details;
      return send(err.status, JSON.stringify({ error: inner }, null, 2) + "\n", JSON_TYPE);
    }
  }

  let closing: Promise<void> | undefined;
  const server = Deno.serve({ hostname, port: options.port ?? 0, onListen() {} }, handle);
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  return Promise.resolve({
    url: `http://${host}:${server.addr.port}`,
    requests,
    setChunkDelayMs(ms: number) {
      chunkDelayMs = ms;
    },
    close() {
      for (const paced of [...active]) paced.abort();
      active.clear();
      return closing ??= server.shutdown();
    },
  });
}

type Route =
  | { kind: "list" }
  | { kind: "get"; model: string }
  | { kind: "call"; version: string; model: string; call: string };

function routeOf(method: string, path: string): Route {
  const m = /^\/(v1beta|v1)\/models(?:\/([^/]+))?$/.exec(path);
  if (!m) throw new GeminiHttpError(404, `Not found: ${path}`);
  const version = m[1]!;
  if (m[2] === undefined) {
    if (method !== "GET") throw new GeminiHttpError(404, `Not found: ${method} ${path}`);
    return { kind: "list" };
  }
  const segment = decodeURIComponent(m[2]);
  const colon = segment.lastIndexOf(":");
  if (colon === -1) {
    if (method !== "GET") throw new GeminiHttpError(404, `Not found: ${method} ${path}`);
    return { kind: "get", model: segment };
  }
  const call = segment.slice(colon + 1);
  if (!METHODS.has(call) || method !== "POST") {
    throw new GeminiHttpError(404, `Not found: ${method} ${path}`);
  }
  return { kind: "call", version, model: segment.slice(0, colon), call };
}

function findModel(id: string): string {
  const found = MODELS.find((m) => m === id);
  if (!found) {
    throw new GeminiHttpError(
      404,
      `models/${id} is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods.`,
    );
  }
  return found;
}

function modelInfo(id: string) {
  const embedding = id.includes("embedding");
  return {
    name: `models/${id}`,
    version: "001",
    displayName: id.replace(/-/g, " "),
    description: `Fake ${id}`,
    inputTokenLimit: embedding ? 2048 : 1048576,
    outputTokenLimit: embedding ? 1 : 65536,
    supportedGenerationMethods: embedding
      ? ["embedContent", "countTextTokens", "countTokens", "asyncBatchEmbedContent"]
      : ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"],
  };
}

/** `pageSize` (default 50) and `pageToken` (the index to start at). */
function listModels(q: URLSearchParams) {
  const size = Math.max(1, Math.min(1000, Number(q.get("pageSize") ?? 50) || 50));
  const start = Number(q.get("pageToken") ?? 0) || 0;
  const page = MODELS.slice(start, start + size);
  const out: Json = { models: page.map(modelInfo) };
  if (start + size < MODELS.length) out.nextPageToken = String(start + size);
  return out;
}

function statusError(status: number): GeminiHttpError {
  const messages: Record<number, string> = {
    400: "Request contains an invalid argument.",
    403: "The caller does not have permission",
    429: "Resource has been exhausted (e.g. check quota).",
    500:
      "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "The request timed out. Please try again.",
  };
  return new GeminiHttpError(status, messages[status] ?? "Error.");
}

const CONTROL = /\[\[(cached|thoughts|tool_use):(\d+)\]\]/g;

function control(text: string, name: string): number {
  let n = 0;
  for (const m of text.matchAll(CONTROL)) if (m[1] === name) n = Number(m[2]);
  return n;
}

const stripControls = (text: string) => text.replace(CONTROL, " ");

function contentText(content: unknown): string {
  if (!isObj(content) || !Array.isArray(content.parts)) return "";
  return content.parts.map((p) => isObj(p) && typeof p.text === "string" ? p.text : "").join("");
}

/** Prompt tokens (system, every turn, tools) and the last user turn's text (echo, controls). */
function promptOf(body: Json): { tokens: number; control: string } {
  if (!Array.isArray(body.contents)) throw new GeminiHttpError(400, "contents is not specified");
  let tokens = 0;
  let controlText = "";
  const system = body.systemInstruction ?? body.system_instruction;
  if (system !== undefined) tokens += 2 + C.countTokens(contentText(system));
  for (const c of body.contents) {
    if (!isObj(c)) throw new GeminiHttpError(400, "Invalid value at 'contents'");
    const text = contentText(c);
    tokens += 2 + C.countTokens(text);
    if (c.role === undefined || c.role === "user") controlText = text;
  }
  if (body.tools !== undefined) tokens += C.countTokens(JSON.stringify(body.tools));
  return { tokens: Math.max(1, tokens), control: controlText };
}

interface GenCtx {
  model: string;
  responseId: string;
  prompt: number;
  cached: number;
  thoughts: number;
  toolUse: number;
  content: C.Content;
  finishReason: string;
}

function usageMetadata(ctx: GenCtx, candidates: number) {
  const u: Json = {
    promptTokenCount: ctx.prompt,
    candidatesTokenCount: candidates,
    totalTokenCount: ctx.prompt + candidates + ctx.thoughts + ctx.toolUse,
  };
  if (ctx.cached) u.cachedContentTokenCount = ctx.cached;
  u.promptTokensDetails = [{ modality: "TEXT", tokenCount: ctx.prompt }];
  if (ctx.cached) u.cacheTokensDetails = [{ modality: "TEXT", tokenCount: ctx.cached }];
  if (ctx.toolUse) u.toolUsePromptTokenCount = ctx.toolUse;
  if (ctx.thoughts) u.thoughtsTokenCount = ctx.thoughts;
  return u;
}

function responseJson(ctx: GenCtx) {
  return {
    candidates: [{
      content: { parts: [{ text: ctx.content.text() }], role: "model" },
      finishReason: ctx.finishReason,
      index: 0,
    }],
    usageMetadata: usageMetadata(ctx, ctx.content.tokens),
    modelVersion: ctx.model,
    responseId: ctx.responseId,
  };
}

/** Stream chunks: a few pieces each, running usage on every one, the last one finished. */
function* chunks(ctx: GenCtx): Generator<Json> {
  const pieces = [...ctx.content.pieces()];
  const per = 4;
  let tokens = 0;
  for (let i = 0; i < pieces.length || i === 0; i += per) {
    const text = pieces.slice(i, i + per).join("");
    tokens += C.countTokens(text);
    const last = i + per >= pieces.length;
    const candidate: Json = { content: { parts: [{ text }], role: "model" } };
    if (last) candidate.finishReason = ctx.finishReason;
    candidate.index = 0;
    yield {
      candidates: [candidate],
      usageMetadata: last ? usageMetadata(ctx, ctx.content.tokens) : usageMetadata(ctx, tokens),
      modelVersion: ctx.model,
      responseId: ctx.responseId,
    };
  }
}

function* sseFrames(ctx: GenCtx): Generator<string> {
  for (const chunk of chunks(ctx)) yield `data: ${JSON.stringify(chunk)}\r\n\r\n`;
}

function* arrayFrames(ctx: GenCtx): Generator<string> {
  let first = true;
  for (const chunk of chunks(ctx)) {
    yield (first ? "[" : ",\r\n") + JSON.stringify(chunk, null, 2);
    first = false;
  }
  yield "]";
}

async function readBody(req: Request, rec: FakeGeminiRequest): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of req.body ?? []) {
      parts.push(chunk);
      size += chunk.length;
      rec.bodyBytes = size;
    }
  } catch {
    rec.cancelledAt = performance.now();
    throw new GeminiHttpError(400, "The request body was not fully received.");
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) out.set(p, at), at += p.length;
  return out;
}

function parseJson(bytes: Uint8Array): Json {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new GeminiHttpError(400, "Invalid JSON payload received.");
  }
  if (!isObj(value)) throw new GeminiHttpError(400, "Invalid JSON payload received.");
  return value;
}
