/**
 * A faithful, deterministic fake of DeepSeek's OpenAI-format API (`/chat/completions`, its `/v1`
 * alias, `/models`): Bearer auth, DeepSeek's error envelope and messages, usage with
 * `prompt_cache_hit_tokens`/`prompt_cache_miss_tokens` and `completion_tokens_details`,
 * `reasoning_content` for thinking models, streams with usage only under
 * `stream_options.include_usage` (`"usage":null` on every chunk, then a `choices:[]` chunk).
 * Same body (without `stream`/`stream_options`, either path spelling) → byte-identical bodies.
 * Controls in the last user message: the OpenAI fake's `[[words:N]]`, `[[bytes:N]]`,
 * `[[status:CODE]]`, `[[cut:N]]`, `[[eof:N]]`, `[[delay:MS]]`, plus `[[cache_hit:N]]`.
 */
import * as C from "./openai_content.ts";
import * as S from "./sse.ts";

export interface FakeDeepSeekOptions {
  keys: string[];
  /** Keys whose account is out of money (402 Insufficient Balance). */
  brokeKeys?: string[];
}

export interface FakeDeepSeekRequest {
  method: string;
  path: string;
  key: string | null;
  status?: number;
  model?: string;
  headers: Record<string, string>;
  /** `stream_options` as received (the agent adds `include_usage`). */
  streamOptions?: unknown;
  cancelledAt?: number;
}

export interface FakeDeepSeek {
  url: string;
  requests: FakeDeepSeekRequest[];
  close(): Promise<void>;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => v !== null && typeof v === "object" && !Array.isArray(v);

export const DEEPSEEK_MODELS = [
  "deepseek-chat",
  "deepseek-reasoner",
  "deepseek-flash",
  "deepseek-v4-pro",
];
const SSE = "text/event-stream; charset=utf-8";

class DeepSeekError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly code: string | null = "invalid_request_error",
  ) {
    super(message);
  }
}

function injected(status: number): DeepSeekError {
  if (status === 429) {
    return new DeepSeekError(429, "Rate Limit Reached", "rate_limit_reached_error");
  }
  if (status === 503) {
    return new DeepSeekError(503, "Server Overloaded", "server_overloaded_error", null);
  }
  if (status >= 500) return new DeepSeekError(status, "Server Error", "server_error", null);
  return new DeepSeekError(status, `Injected error (${status})`, "invalid_request_error");
}

/** Thinking models (`deepseek-reasoner`, `deepseek-v4-pro` or `thinking: {type: "enabled"}`). */
function thinks(model: string, body: Json): boolean {
  return model.includes("reasoner") || model.includes("pro") ||
    (isObj(body.thinking) && body.thinking.type === "enabled");
}

export function startFakeDeepSeek(options: FakeDeepSeekOptions): Promise<FakeDeepSeek> {
  const keys = new Set(options.keys);
  const broke = new Set(options.brokeKeys ?? []);
  const requests: FakeDeepSeekRequest[] = [];
  const active = new Set<S.Paced>();

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const key = req.headers.get("authorization")?.match(/^Bearer\s+(\S+)$/i)?.[1] ?? null;
    const rec: FakeDeepSeekRequest = {
      method: req.method,
      path: url.pathname + url.search,
      key,
      headers: Object.fromEntries(req.headers),
    };
    requests.push(rec);
    let seed = C.sha256Hex(req.method, url.pathname);
    const traceId = () => C.hexId(seed, "trace", 32);
    const send = (status: number, body: BodyInit, contentType: string) => {
      rec.status = status;
      return new Response(body, {
        status,
        headers: { "content-type": contentType, "x-ds-trace-id": traceId() },
      });
    };
    try {
      const path = url.pathname.replace(/^\/v1(?=\/)/, "");
      const known = path === "/chat/completions" || path === "/models";
      if (!known) throw new DeepSeekError(404, "Not Found", "invalid_request_error");
      if (req.method !== (path === "/models" ? "GET" : "POST")) {
        throw new DeepSeekError(405, "Method Not Allowed", "invalid_request_error");
      }
      if (!key || !keys.has(key)) {
        throw new DeepSeekError(
          401,
          `Authentication Fails, Your api key: ****${(key ?? "").slice(-4)} is invalid`,
          "authentication_error",
        );
      }
      if (broke.has(key)) throw new DeepSeekError(402, "Insufficient Balance", "unknown_error");
      if (path === "/models") {
        return send(
          200,
          JSON.stringify({
            object: "list",
            data: DEEPSEEK_MODELS.map((id) => ({ id, object: "model", owned_by: "deepseek" })),
          }),
          "application/json",
        );
      }
      let body: unknown;
      try {
        body = JSON.parse(await req.text());
      } catch {
        throw new DeepSeekError(
          422,
          "Failed to deserialize the JSON body into the target type",
          "invalid_request_error",
        );
      }
      if (!isObj(body)) throw new DeepSeekError(422, "Invalid body", "invalid_request_error");
      const { stream: _s, stream_options: streamOptions, ...rest } = body;
      rec.streamOptions = streamOptions;
      seed = C.sha256Hex("POST", "/chat/completions", C.canonicalJson(rest));
      const model = body.model;
      rec.model = typeof model === "string" ? model : undefined;
      if (typeof model !== "string" || !DEEPSEEK_MODELS.includes(model)) {
        throw new DeepSeekError(400, "Model Not Exist", "invalid_request_error");
      }
      if (!Array.isArray(body.messages) || body.messages.length === 0) {
        throw new DeepSeekError(
          400,
          "Failed to deserialize the JSON body into the target type: messages: invalid length 0",
          "invalid_request_error",
        );
      }
      const prompt = C.chatPrompt(body);
      const d = C.parseDirectives(prompt.control).directives;
      if (d.status !== undefined) throw injected(d.status);
      const hit = Math.min(
        prompt.tokens,
        Number(/\[\[cache_hit:(\d+)\]\]/.exec(prompt.control)?.[1] ?? 0),
      );
      const reasoning = thinks(model, body)
        ? C.makeContent(seed, "", { words: 6 + (parseInt(seed.slice(20, 22), 16) % 10) }, "Hmm,")
        : null;
      const max = typeof body.max_tokens === "number" ? body.max_tokens : undefined;
      const content = C.limitContent(C.makeContent(seed, prompt.control, d), max);
      const usage = {
        prompt_tokens: prompt.tokens,
        completion_tokens: content.tokens + (reasoning?.tokens ?? 0),
        total_tokens: prompt.tokens + content.tokens + (reasoning?.tokens ?? 0),
        prompt_tokens_details: { cached_tokens: hit },
        ...(reasoning ? { completion_tokens_details: { reasoning_tokens: reasoning.tokens } } : {}),
        prompt_cache_hit_tokens: hit,
        prompt_cache_miss_tokens: prompt.tokens - hit,
      };
      const id = `${C.hexId(seed, "id", 8)}-${C.hexId(seed, "id2", 4)}-${C.hexId(seed, "id3", 4)}-${
        C.hexId(seed, "id4", 4)
      }-${C.hexId(seed, "id5", 12)}`;
      const head = {
        id,
        created: C.createdAt(seed),
        model,
        system_fingerprint: `fp_${C.hexId(seed, "fp", 10)}_prod0820_fp8_kvcache`,
      };
      const finish = content.truncated ? "length" : "stop";
      if (body.stream !== true) {
        return send(
          200,
          JSON.stringify({
            ...head,
            object: "chat.completion",
            choices: [{
              index: 0,
              message: {
                role: "assistant",
                content: content.text(),
                ...(reasoning ? { reasoning_content: reasoning.text() } : {}),
              },
              logprobs: null,
              finish_reason: finish,
            }],
            usage,
          }),
          "application/json",
        );
      }
      const includeUsage = isObj(streamOptions) && streamOptions.include_usage === true;
      const frames = function* (): Generator<string> {
        const chunk = (
          delta: Json | null,
          finishReason: string | null = null,
          u: unknown = null,
        ) => {
          const c: Json = {
            ...head,
            object: "chat.completion.chunk",
            choices: delta
              ? [{ index: 0, delta, logprobs: null, finish_reason: finishReason }]
              : [],
          };
          if (includeUsage) c.usage = u;
          return S.sseData(c);
        };
        yield chunk({ role: "assistant", content: reasoning ? null : "" });
        if (reasoning) {
          for (const p of reasoning.pieces()) yield chunk({ content: null, reasoning_content: p });
        }
        for (const p of content.pieces()) {
          yield chunk(reasoning ? { content: p, reasoning_content: null } : { content: p });
        }
        yield chunk({ content: "" }, finish);
        if (includeUsage) yield chunk(null, null, usage);
        yield "data: [DONE]\n\n";
      };
      const paced: S.Paced = S.pacedStream(frames(), {
        delayMs: () => d.delayMs ?? 0,
        cutAfter: d.cutAfter,
        eofAfter: d.eofAfter,
        onDone: () => active.delete(paced),
        onCancel: () => (rec.cancelledAt ??= performance.now(), active.delete(paced)),
      });
      active.add(paced);
      return send(200, paced.stream, SSE);
    } catch (e) {
      const err = e instanceof DeepSeekError
        ? e
        : new DeepSeekError(500, `Server Error (${e})`, "server_error", null);
      return send(
        err.status,
        JSON.stringify({
          error: { message: err.message, type: err.type, param: null, code: err.code },
        }),
        "application/json",
      );
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
