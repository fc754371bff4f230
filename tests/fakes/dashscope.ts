/**
 * A faithful, deterministic fake of DashScope (Alibaba Cloud Model Studio), both modes:
 * - compatible: `/compatible-mode/v1/chat/completions` (DashScope's key order, usage only with
 *   `include_usage`: `"usage":null` per chunk and a `choices:[]` chunk), `/embeddings` (float or
 *   base64), `/models`; OpenAI-style errors with a top-level `request_id`;
 * - native: `/api/v1/services/aigc/text-generation/generation`, JSON or, with
 *   `X-DashScope-SSE: enable`, `id:N`/`event:result`/`:HTTP_STATUS/200`/`data:` frames with
 *   cumulative `usage` and `"finish_reason":"null"` until the last; `result_format` `message` or
 *   `text`, `incremental_output`; errors `{request_id, code, message}`.
 * Same body → byte-identical bodies (ids from a hash of the body without `stream` and
 * `stream_options`). Controls in the last user message: `[[words:N]]`, `[[status:CODE]]`,
 * `[[cut:N]]`, `[[delay:MS]]`, `[[cache_hit:N]]` (native and compatible cached tokens).
 */
import { Buffer } from "node:buffer";
import * as C from "./openai_content.ts";
import * as S from "./sse.ts";

export interface FakeDashScopeOptions {
  keys: string[];
  /** Keys whose account is overdue (400 Arrearage). */
  overdueKeys?: string[];
}

export interface FakeDashScopeRequest {
  method: string;
  path: string;
  key: string | null;
  status?: number;
  model?: string;
  headers: Record<string, string>;
  streamOptions?: unknown;
}

export interface FakeDashScope {
  url: string;
  requests: FakeDashScopeRequest[];
  close(): Promise<void>;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => v !== null && typeof v === "object" && !Array.isArray(v);

export const DASHSCOPE_MODELS = ["qwen-plus", "qwen-max", "qwen-flash", "text-embedding-v4"];
export const NATIVE_PATH = "/api/v1/services/aigc/text-generation/generation";

class DashScopeError extends Error {
  constructor(
    readonly status: number,
    /** Native `code`, e.g. `InvalidApiKey`. */
    readonly code: string,
    message: string,
    /** Compatible mode's `error.type` and `error.code`. */
    readonly compatType = "invalid_request_error",
    readonly compatCode: string | null = null,
  ) {
    super(message);
  }
}

function injected(status: number): DashScopeError {
  if (status === 429) {
    return new DashScopeError(
      429,
      "Throttling.RateQuota",
      "Requests rate limit exceeded, please try again later.",
      "limit_requests",
      "limit_requests",
    );
  }
  if (status >= 500) {
    return new DashScopeError(
      status,
      "InternalError",
      "An internal error has occured, please try again later or contact service support.",
      "internal_error",
      "internal_error",
    );
  }
  return new DashScopeError(status, "InvalidParameter", `Injected error (${status})`);
}

const uuid = (seed: string, label: string) => {
  const h = C.hexId(seed, label, 32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};

export function startFakeDashScope(options: FakeDashScopeOptions): Promise<FakeDashScope> {
  const keys = new Set(options.keys);
  const overdue = new Set(options.overdueKeys ?? []);
  const requests: FakeDashScopeRequest[] = [];
  const active = new Set<S.Paced>();

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname;
    const native = path.startsWith("/api/");
    const key = req.headers.get("authorization")?.match(/^Bearer\s+(\S+)$/i)?.[1] ?? null;
    const rec: FakeDashScopeRequest = {
      method: req.method,
      path: path + url.search,
      key,
      headers: Object.fromEntries(req.headers),
    };
    requests.push(rec);
    let seed = C.sha256Hex(req.method, path);
    const send = (status: number, body: BodyInit, contentType: string) => {
      rec.status = status;
      return new Response(body, {
        status,
        headers: {
          "content-type": contentType,
          "x-request-id": uuid(seed, "request"),
          "x-dashscope-call-gateway": "true",
        },
      });
    };
    const json = (payload: unknown) => send(200, JSON.stringify(payload), "application/json");
    try {
      const routes: Record<string, string> = {
        "/compatible-mode/v1/chat/completions": "POST",
        "/compatible-mode/v1/embeddings": "POST",
        "/compatible-mode/v1/models": "GET",
        [NATIVE_PATH]: "POST",
      };
      if (!routes[path]) {
        throw new DashScopeError(
          404,
          "NotFound",
          "Not Found",
          "invalid_request_error",
          "not_found",
        );
      }
      if (routes[path] !== req.method) {
        throw new DashScopeError(405, "MethodNotAllowed", "Method Not Allowed");
      }
      if (!key || !keys.has(key)) {
        throw native
          ? new DashScopeError(401, "InvalidApiKey", "Invalid API-key provided.")
          : new DashScopeError(
            401,
            "InvalidApiKey",
            "Incorrect API key provided. ",
            "invalid_request_error",
            "invalid_api_key",
          );
      }
      if (overdue.has(key)) {
        throw new DashScopeError(
          400,
          "Arrearage",
          "Access denied, please make sure your account is in good standing.",
          "Arrearage",
          "Arrearage",
        );
      }
      if (path === "/compatible-mode/v1/models") {
        return json({
          object: "list",
          data: DASHSCOPE_MODELS.map((id) => ({
            id,
            object: "model",
            created: 1700000000,
            owned_by: "system",
          })),
        });
      }
      let body: unknown;
      try {
        body = JSON.parse(await req.text());
      } catch {
        throw new DashScopeError(400, "InvalidParameter", "Request body is not valid JSON.");
      }
      if (!isObj(body)) throw new DashScopeError(400, "InvalidParameter", "Invalid body.");
      const { stream: _s, stream_options: streamOptions, ...rest } = body;
      rec.streamOptions = streamOptions;
      seed = C.sha256Hex("POST", path, C.canonicalJson(rest));
      const model = body.model;
      rec.model = typeof model === "string" ? model : undefined;
      if (typeof model !== "string" || !DASHSCOPE_MODELS.includes(model)) {
        throw new DashScopeError(
          404,
          "ModelNotFound",
          "Model not exist.",
          "invalid_request_error",
          "model_not_found",
        );
      }
      if (path.endsWith("/embeddings")) return embeddings(body, model, seed, json);
      const input = isObj(body.input) ? body.input : {};
      const messages = native
        ? Array.isArray(input.messages)
          ? input.messages
          : typeof input.prompt === "string"
          ? [{ role: "user", content: input.prompt }]
          : []
        : Array.isArray(body.messages)
        ? body.messages
        : [];
      if (messages.length === 0) {
        throw new DashScopeError(
          400,
          "InvalidParameter",
          native ? "Input should be a valid dictionary or instance of Input" : "Missing messages.",
        );
      }
      const prompt = C.chatPrompt({ messages });
      const d = C.parseDirectives(prompt.control).directives;
      if (d.status !== undefined) throw injected(d.status);
      const hit = Math.min(
        prompt.tokens,
        Number(/\[\[cache_hit:(\d+)\]\]/.exec(prompt.control)?.[1] ?? 0),
      );
      const content = C.makeContent(seed, prompt.control, d);
      const pieces = [...content.pieces()];
      const stream = (frames: Generator<string>, contentType: string) => {
        const paced: S.Paced = S.pacedStream(frames, {
          delayMs: () => d.delayMs ?? 0,
          cutAfter: d.cutAfter,
          eofAfter: d.eofAfter,
          onDone: () => active.delete(paced),
          onCancel: () => active.delete(paced),
        });
        active.add(paced);
        return send(200, paced.stream, contentType);
      };

      if (native) {
        const params = isObj(body.parameters) ? body.parameters : {};
        const messageFormat = params.result_format === "message";
        const incremental = params.incremental_output === true;
        const requestId = uuid(seed, "request");
        const cached = hit ? { prompt_tokens_details: { cached_tokens: hit } } : {};
        const usageAt = (out: number) => ({
          input_tokens: prompt.tokens,
          output_tokens: out,
          total_tokens: prompt.tokens + out,
          ...cached,
        });
        const output = (text: string, finish: string) =>
          messageFormat
            ? {
              choices: [{ message: { role: "assistant", content: text }, finish_reason: finish }],
            }
            : { text, finish_reason: finish };
        if (req.headers.get("x-dashscope-sse")?.toLowerCase() !== "enable") {
          return json({
            output: output(content.text(), "stop"),
            usage: usageAt(content.tokens),
            request_id: requestId,
          });
        }
        return stream(
          (function* () {
            let so = 0, soFar = "";
            for (let i = 0; i < pieces.length; i++) {
              so += C.countTokens(pieces[i]!);
              soFar += pieces[i]!;
              const last = i === pieces.length - 1;
              const data = {
                output: output(incremental ? pieces[i]! : soFar, last ? "stop" : "null"),
                usage: usageAt(so),
                request_id: requestId,
              };
              yield `id:${i + 1}\nevent:result\n:HTTP_STATUS/200\ndata:${JSON.stringify(data)}\n\n`;
            }
          })(),
          "text/event-stream;charset=UTF-8",
        );
      }

      const usage = {
        prompt_tokens: prompt.tokens,
        completion_tokens: content.tokens,
        total_tokens: prompt.tokens + content.tokens,
        prompt_tokens_details: { cached_tokens: hit },
      };
      const id = `chatcmpl-${uuid(seed, "id")}`;
      const created = C.createdAt(seed);
      if (body.stream !== true) {
        return json({
          choices: [{
            message: { role: "assistant", content: content.text() },
            finish_reason: "stop",
            index: 0,
            logprobs: null,
          }],
          object: "chat.completion",
          usage,
          created,
          system_fingerprint: null,
          model,
          id,
        });
      }
      const includeUsage = isObj(streamOptions) && streamOptions.include_usage === true;
      return stream(
        (function* () {
          const chunk = (choices: unknown[], u: unknown = null) => {
            const c: Json = { choices, object: "chat.completion.chunk" };
            if (includeUsage) c.usage = u;
            Object.assign(c, { created, system_fingerprint: null, model, id });
            return S.sseData(c);
          };
          const choice = (delta: Json, finish: string | null) => ({
            delta,
            finish_reason: finish,
            index: 0,
            logprobs: null,
          });
          yield chunk([choice({ content: "", role: "assistant" }, null)]);
          for (const p of pieces) yield chunk([choice({ content: p }, null)]);
          yield chunk([choice({ content: "" }, "stop")]);
          if (includeUsage) yield chunk([], usage);
          yield "data: [DONE]\n\n";
        })(),
        "text/event-stream;charset=UTF-8",
      );
    } catch (e) {
      const err = e instanceof DashScopeError ? e : new DashScopeError(
        500,
        "InternalError",
        `An internal error has occured (${e})`,
        "internal_error",
      );
      const requestId = uuid(seed, "request");
      const body = native ? { request_id: requestId, code: err.code, message: err.message } : {
        error: { message: err.message, type: err.compatType, param: null, code: err.compatCode },
        request_id: requestId,
      };
      return send(err.status, JSON.stringify(body), "application/json");
    }
  }

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handle);
  let closing: Promise<void> | undefined;
  return Promise.resolve({
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    close() {
      for (const paced of [...active]) paced.abort();
      active.clear();
      return closing ??= server.shutdown();
    },
  });
}

function embeddings(
  body: Json,
  model: string,
  seed: string,
  json: (payload: unknown) => Response,
): Response {
  const inputs = typeof body.input === "string"
    ? [body.input]
    : Array.isArray(body.input) && body.input.every((v) => typeof v === "string")
    ? body.input as string[]
    : [];
  if (inputs.length === 0) {
    throw new DashScopeError(
      400,
      "InvalidParameter",
      "Value error, contents is neither str nor list of str.",
    );
  }
  const dims = typeof body.dimensions === "number" ? body.dimensions : 1024;
  let tokens = 0;
  const data = inputs.map((text, index) => {
    tokens += C.countTokens(text);
    const v = C.embeddingVector(model, text, dims);
    return {
      embedding: body.encoding_format === "base64"
        ? Buffer.from(v.bytes).toString("base64")
        : v.json,
      index,
      object: "embedding",
    };
  });
  return json({
    data,
    model,
    object: "list",
    usage: { prompt_tokens: tokens, total_tokens: tokens },
    id: uuid(seed, "id"),
  });
}
