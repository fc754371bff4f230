/**
 * A faithful, deterministic fake of the Anthropic API (`/v1/messages`, `/v1/messages/count_tokens`,
 * `/v1/models`) for tests: `x-api-key` or `Authorization: Bearer` auth, a required
 * `anthropic-version`, body validation, the `{"type":"error",…}` envelope with Anthropic's
 * statuses, named SSE events with cumulative `message_delta` usage, a `request-id` header.
 * The same body always yields byte-identical response bodies, streamed or not (ids and text come
 * from a hash of the canonical body without `stream`). Controls in the last user message:
 * `[[words:N]]`, `[[bytes:N]]`, `[[delay:MS]]`, `[[status:CODE]]`, `[[cut:N]]`, `[[eof:N]]`,
 * `[[cache_read:N]]`, `[[cache_write:N]]`, `[[cache_write_1h:N]]`.
 */
import * as C from "./openai_content.ts";
import * as S from "./sse.ts";
import * as M from "./anthropic_messages.ts";

export interface FakeAnthropicOptions {
  keys: string[];
  port?: number;
  hostname?: string;
  chunkDelayMs?: number;
  /** Keys whose organisation is out of credit (400 "credit balance is too low"). */
  lowCreditKeys?: string[];
}

export interface FakeAnthropicRequest {
  id: string;
  method: string;
  path: string;
  key: string | null;
  /** How the key came: the `x-api-key` header or `Authorization: Bearer`. */
  auth: "x-api-key" | "bearer" | null;
  startedAt: number;
  endedAt?: number;
  cancelledAt?: number;
  bodyBytes: number;
  status?: number;
  headers: Record<string, string>;
  /** The `request-id` sent back. */
  requestId?: string;
  model?: string;
  stream?: boolean;
}

export interface FakeAnthropic {
  url: string;
  requests: FakeAnthropicRequest[];
  setChunkDelayMs(ms: number): void;
  close(): Promise<void>;
}

const VERSIONS = new Set(["2023-01-01", "2023-06-01", "2026-10-21"]);
export const LOW_CREDIT_MESSAGE =
  "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.";
const SSE = "text/event-stream; charset=utf-8";
const JSON_TYPE = "application/json";

export function startFakeAnthropic(options: FakeAnthropicOptions): Promise<FakeAnthropic> {
  const keys = new Set(options.keys);
  const lowCredit = new Set(options.lowCreditKeys ?? []);
  const hostname = options.hostname ?? "127.0.0.1";
  let chunkDelayMs = options.chunkDelayMs ?? 0;
  const requests: FakeAnthropicRequest[] = [];
  const active = new Set<S.Paced>();
  let seq = 0;

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const apiKey = req.headers.get("x-api-key");
    const bearer = req.headers.get("authorization")?.match(/^Bearer\s+(\S+)$/i)?.[1] ?? null;
    const rec: FakeAnthropicRequest = {
      id: `fake_${++seq}`,
      method: req.method,
      path: url.pathname + url.search,
      key: apiKey ?? bearer,
      auth: apiKey !== null ? "x-api-key" : bearer !== null ? "bearer" : null,
      startedAt: performance.now(),
      bodyBytes: 0,
      headers: Object.fromEntries(req.headers),
    };
    requests.push(rec);
    let seed = C.sha256Hex(req.method, url.pathname);
    let directives: C.Directives = {};
    const delay = () => directives.delayMs ?? chunkDelayMs;
    rec.requestId = `req_011C${C.alnumId(seed, `request-${seq}`, 20)}`;

    const send = (status: number, body: BodyInit, contentType: string) => {
      rec.status = status;
      if (!(body instanceof ReadableStream)) rec.endedAt = performance.now();
      const headers: Record<string, string> = {
        "content-type": contentType,
        "request-id": rec.requestId!,
        "anthropic-organization-id": "00000000-0000-4000-8000-00000000fa4e",
      };
      if (status < 400) {
        headers["anthropic-ratelimit-requests-limit"] = "4000";
        headers["anthropic-ratelimit-requests-remaining"] = "3999";
      } else {
        headers["x-should-retry"] = String(status === 429 || status >= 500);
        if (status === 429) headers["retry-after"] = "1";
      }
      return new Response(body, { status, headers });
    };
    const stream = (source: Iterator<S.Frame>, contentType: string, nonStream = false) => {
      const paced: S.Paced = S.pacedStream(source, {
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
    const json = (body: string) =>
      delay() > 0 ? stream([body][Symbol.iterator](), JSON_TYPE, true) : send(200, body, JSON_TYPE);

    try {
      const route = routeOf(req.method, url.pathname);
      if (!rec.key) throw new M.AnthropicHttpError(401, "x-api-key header is required");
      if (!keys.has(rec.key)) {
        throw new M.AnthropicHttpError(
          401,
          rec.auth === "bearer" ? "Invalid bearer token" : "invalid x-api-key",
        );
      }
      const version = req.headers.get("anthropic-version");
      if (version === null) {
        throw new M.AnthropicHttpError(400, "anthropic-version: header is required");
      }
      if (!VERSIONS.has(version)) {
        throw new M.AnthropicHttpError(
          400,
          `anthropic-version: "${version}" is not a valid version`,
        );
      }
      if (lowCredit.has(rec.key)) throw new M.AnthropicHttpError(400, LOW_CREDIT_MESSAGE);

      if (route.kind === "models") return json(JSON.stringify(listModels(url.searchParams)));
      if (route.kind === "model") {
        const found = M.MODELS.find((m) => m[0] === route.id);
        if (!found) throw new M.AnthropicHttpError(404, `model: ${route.id}`);
        return json(JSON.stringify(M.modelInfo(found)));
      }
      const body = parseJson(await readBody(req, rec));
      const count = route.kind === "count_tokens";
      rec.model = M.validateBody(body, version, count);
      rec.stream = body.stream === true;
      const { stream: _s, ...rest } = body;
      seed = C.sha256Hex(req.method, url.pathname, C.canonicalJson(rest));
      const prompt = M.promptOf(body);
      directives = C.parseDirectives(prompt.control).directives;
      if (directives.status !== undefined) throw M.statusError(directives.status);
      if (count) return json(JSON.stringify({ input_tokens: prompt.tokens }));

      const split = M.splitPrompt(prompt.tokens, prompt.control);
      const content = C.limitContent(
        C.makeContent(seed, M.stripCacheDirectives(prompt.control), directives),
        body.max_tokens as number,
      );
      const ctx: M.MessageCtx = {
        id: `msg_01${C.alnumId(seed, "id", 22)}`,
        model: rec.model,
        split,
        content,
        stopReason: content.truncated ? "max_tokens" : "end_turn",
      };
      return rec.stream ? stream(M.messageEvents(ctx), SSE) : json(M.messageJson(ctx));
    } catch (e) {
      const err = e instanceof M.AnthropicHttpError
        ? e
        : new M.AnthropicHttpError(500, "Internal server error");
      const envelope = {
        type: "error",
        error: { type: err.type, message: err.message },
        request_id: rec.requestId,
      };
      return send(err.status, JSON.stringify(envelope), JSON_TYPE);
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
  | { kind: "messages" | "count_tokens" | "models" }
  | { kind: "model"; id: string };

function routeOf(method: string, path: string): Route {
  const route: Route | undefined = path === "/v1/messages"
    ? { kind: "messages" }
    : path === "/v1/messages/count_tokens"
    ? { kind: "count_tokens" }
    : path === "/v1/models"
    ? { kind: "models" }
    : /^\/v1\/models\/[^/]+$/.test(path)
    ? { kind: "model", id: decodeURIComponent(path.slice(11)) }
    : undefined;
  if (!route) throw new M.AnthropicHttpError(404, "Not Found");
  const want = route.kind === "models" || route.kind === "model" ? "GET" : "POST";
  if (method !== want) throw new M.AnthropicHttpError(405, "Method Not Allowed");
  return route;
}

/** `limit` (1–1000, default 20), `after_id` / `before_id` cursors; newest first. */
function listModels(q: URLSearchParams) {
  const limit = Math.min(1000, Math.max(1, Number(q.get("limit") ?? 20) || 20));
  let list = M.MODELS.map(M.modelInfo);
  const after = q.get("after_id"), before = q.get("before_id");
  if (after) list = list.slice(list.findIndex((m) => m.id === after) + 1);
  if (before) list = list.slice(0, Math.max(0, list.findIndex((m) => m.id === before)));
  const page = before ? list.slice(-limit) : list.slice(0, limit);
  return {
    data: page,
    has_more: page.length < list.length,
    first_id: page[0]?.id ?? null,
    last_id: page.at(-1)?.id ?? null,
  };
}

async function readBody(req: Request, rec: FakeAnthropicRequest): Promise<Uint8Array> {
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
    throw new M.AnthropicHttpError(400, "The request body was not fully received.");
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) out.set(p, at), at += p.length;
  return out;
}

function parseJson(raw: Uint8Array): M.Json {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(raw));
  } catch {
    throw new M.AnthropicHttpError(400, "There was an error parsing the body of your request.");
  }
  if (!M.isObj(value)) throw new M.AnthropicHttpError(400, "Input should be a valid dictionary");
  return value;
}
