/**
 * A faithful, deterministic fake of the OpenAI API (`/v1/...`) for tests and the demo: real
 * auth/quota/error envelopes, SSE framings, usage objects, binary audio, multipart uploads.
 * The same request body always yields byte-identical response bodies (ids, `created` and text are
 * derived from a hash of the canonical body). Control via the last user message / prompt / input:
 * `[[words:N]]`, `[[bytes:N]]`, `[[delay:MS]]`, `[[status:CODE]]`, `[[cut:N]]` (drop the
 * connection after N stream frames), `[[eof:N]]` (end the stream cleanly after N frames).
 */
import * as C from "./openai_content.ts";
import * as S from "./sse.ts";
import {
  chatLike,
  embeddings,
  HttpError,
  isObj,
  type Json,
  MODEL_ROUTE,
  models,
  moderations,
  responses,
  type Route,
  statusError,
} from "./openai_endpoints.ts";
import { images, speech, transcriptions } from "./openai_media.ts";

export interface FakeOpenAIOptions {
  keys: string[];
  port?: number;
  hostname?: string;
  chunkDelayMs?: number;
  quotaExhaustedKeys?: string[];
}

export interface FakeRequestRecord {
  id: string;
  method: string;
  path: string;
  key: string | null;
  startedAt: number;
  endedAt?: number;
  cancelledAt?: number;
  bodyBytes: number;
  status?: number;
  headers: Record<string, string>;
  /** The `x-request-id` sent back. */
  requestId?: string;
  /** The model named in the body or multipart form. */
  model?: string;
}

export interface FakeOpenAI {
  url: string;
  requests: FakeRequestRecord[];
  setChunkDelayMs(ms: number): void;
  /** Answer every request with this error status from now on (null: back to normal). */
  setFailStatus(status: number | null): void;
  close(): Promise<void>;
}

export function startFakeOpenAI(options: FakeOpenAIOptions): Promise<FakeOpenAI> {
  const keys = new Set(options.keys);
  const exhausted = new Set(options.quotaExhaustedKeys ?? []);
  const hostname = options.hostname ?? "127.0.0.1";
  let chunkDelayMs = options.chunkDelayMs ?? 0;
  let failStatus: number | undefined;
  const requests: FakeRequestRecord[] = [];
  const active = new Set<S.Paced>();
  let seq = 0;

  async function handle(req: Request): Promise<Response> {
    const t0 = performance.now();
    const url = new URL(req.url);
    const auth = req.headers.get("authorization");
    const key = auth?.match(/^Bearer\s+(\S+)$/i)?.[1] ?? null;
    const rec: FakeRequestRecord = {
      id: `fake_${++seq}`,
      method: req.method,
      path: url.pathname + url.search,
      key,
      startedAt: t0,
      bodyBytes: 0,
      headers: Object.fromEntries(req.headers),
    };
    requests.push(rec);
    let seed = C.sha256Hex(req.method, url.pathname);
    let directives: C.Directives = {};
    const delay = () => directives.delayMs ?? chunkDelayMs;

    const send = (status: number, body: BodyInit, contentType: string) => {
      rec.status = status;
      rec.requestId = `req_${C.hexId(seed, "request", 32)}`;
      if (!(body instanceof ReadableStream)) rec.endedAt = performance.now();
      return new Response(body, {
        status,
        headers: {
          "content-type": contentType,
          "x-request-id": rec.requestId,
          "openai-processing-ms": String(Math.max(1, Math.round(performance.now() - t0))),
          "openai-version": "2020-10-01",
          ...(status < 400
            ? {
              "x-ratelimit-limit-requests": "10000",
              "x-ratelimit-remaining-requests": "9999",
              "x-ratelimit-reset-requests": "6ms",
            }
            : {}),
        },
      });
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
    const text = (body: string, contentType: string) =>
      delay() > 0
        ? stream([body][Symbol.iterator](), contentType, true)
        : send(200, body, contentType);

    try {
      const route = ROUTES[url.pathname] ??
        (url.pathname.startsWith("/v1/models/") ? MODEL_ROUTE : undefined);
      if (!route) throw new HttpError(404, `Invalid URL (${req.method} ${url.pathname})`);
      if (route.method !== req.method) {
        throw new HttpError(405, `Invalid method for URL (${req.method} ${url.pathname})`);
      }
      if (!auth) {
        throw new HttpError(
          401,
          "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.",
        );
      }
      if (!key || !keys.has(key)) {
        const shown = key ? `${key.slice(0, 5)}***${key.slice(-2)}` : "";
        throw new HttpError(
          401,
          `Incorrect API key provided: ${shown}. You can find your API key at https://platform.openai.com/account/api-keys.`,
          "invalid_request_error",
          null,
          "invalid_api_key",
        );
      }
      if (exhausted.has(key)) {
        throw new HttpError(
          429,
          "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
          "insufficient_quota",
          null,
          "insufficient_quota",
        );
      }
      let body: Json = {};
      let form: FormData | undefined;
      if (route.body !== "none") {
        const raw = await readBody(req, rec);
        if (route.body === "json") {
          body = parseJson(raw);
          const { stream: _s, stream_options: _o, ...rest } = body;
          seed = C.sha256Hex(req.method, url.pathname, C.canonicalJson(rest));
        } else {
          form = await parseForm(req, raw);
          seed = C.sha256Hex(req.method, url.pathname, await formDigest(form));
          for (const [k, v] of form) if (typeof v === "string") body[k] = v;
        }
      }
      const model = body.model ?? route.defaultModel;
      if (route.body !== "none" && (typeof model !== "string" || !model)) {
        throw new HttpError(400, "you must provide a model parameter");
      }
      rec.model = model as string | undefined;
      return await route.handler({
        path: url.pathname,
        seed,
        body,
        form,
        model: (model as string | undefined) ?? "",
        created: C.createdAt(seed),
        control(controlText) {
          directives = C.parseDirectives(controlText).directives;
          const status = failStatus ?? directives.status;
          if (status !== undefined) throw statusError(status, rec.model);
          return directives;
        },
        json: (payload) => text(JSON.stringify(payload, null, 2), "application/json"),
        stream: (source, contentType) => stream(source, contentType),
        text,
      });
    } catch (e) {
      const err = e instanceof HttpError ? e : new HttpError(
        500,
        `The server had an error while processing your request. Sorry about that! (${e})`,
        "server_error",
      );
      const envelope = {
        error: { message: err.message, type: err.type, param: err.param, code: err.code },
      };
      return send(err.status, JSON.stringify(envelope, null, 4), "application/json; charset=utf-8");
    }
  }

  let closing: Promise<void> | undefined;
  const server = Deno.serve({ hostname, port: options.port ?? 0, onListen() {} }, handle);
  const host = hostname === "0.0.0.0"
    ? "127.0.0.1"
    : hostname.includes(":")
    ? `[${hostname}]`
    : hostname;
  return Promise.resolve({
    url: `http://${host}:${server.addr.port}`,
    requests,
    setChunkDelayMs(ms: number) {
      chunkDelayMs = ms;
    },
    setFailStatus(status: number | null) {
      failStatus = status ?? undefined;
    },
    close() {
      for (const paced of [...active]) paced.abort();
      active.clear();
      return closing ??= server.shutdown();
    },
  });
}

/** Reads the whole body, counting bytes as they arrive (no size limit). */
async function readBody(req: Request, rec: FakeRequestRecord): Promise<Uint8Array<ArrayBuffer>> {
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
    throw new HttpError(400, "The request body was not fully received.");
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) out.set(p, at), at += p.length;
  return out;
}

function parseJson(raw: Uint8Array): Json {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(raw));
  } catch {
    throw new HttpError(
      400,
      "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)",
    );
  }
  if (!isObj(value)) throw new HttpError(400, "Invalid body: expected a JSON object.");
  return value;
}

async function parseForm(req: Request, raw: Uint8Array<ArrayBuffer>): Promise<FormData> {
  const type = req.headers.get("content-type") ?? "";
  if (!type.startsWith("multipart/form-data")) {
    throw new HttpError(
      400,
      `Invalid Content-Type header (${type}), expected multipart/form-data.`,
    );
  }
  try {
    return await new Response(raw, { headers: { "content-type": type } }).formData();
  } catch {
    throw new HttpError(400, "Could not parse multipart form");
  }
}

/** Boundary-independent digest of a form: sorted fields, files by name/type/content hash. */
async function formDigest(form: FormData): Promise<string> {
  const parts: string[] = [];
  for (const [k, v] of form) {
    parts.push(
      typeof v === "string"
        ? `${k}=${v}`
        : `${k}=file:${v.name}:${v.type}:${C.sha256Hex(new Uint8Array(await v.arrayBuffer()))}`,
    );
  }
  return parts.sort().join("\n");
}

const ROUTES: Record<string, Route> = {
  "/v1/chat/completions": { method: "POST", body: "json", handler: chatLike("chat") },
  "/v1/completions": { method: "POST", body: "json", handler: chatLike("completions") },
  "/v1/responses": { method: "POST", body: "json", handler: responses },
  "/v1/embeddings": { method: "POST", body: "json", handler: embeddings },
  "/v1/images/generations": {
    method: "POST",
    body: "json",
    defaultModel: "dall-e-2",
    handler: images,
  },
  "/v1/images/edits": {
    method: "POST",
    body: "multipart",
    defaultModel: "dall-e-2",
    handler: images,
  },
  "/v1/audio/speech": { method: "POST", body: "json", handler: speech },
  "/v1/audio/transcriptions": {
    method: "POST",
    body: "multipart",
    handler: transcriptions("transcribe"),
  },
  "/v1/audio/translations": {
    method: "POST",
    body: "multipart",
    handler: transcriptions("translate"),
  },
  "/v1/moderations": {
    method: "POST",
    body: "json",
    defaultModel: "omni-moderation-latest",
    handler: moderations,
  },
  "/v1/models": { method: "GET", body: "none", handler: models },
};
