/**
 * A deterministic fake of an Azure OpenAI resource (`https://<resource>.openai.azure.com`) for
 * tests: `api-key` (or Bearer) auth with Azure's 401 envelope, the required `api-version` outside
 * `/openai/v1`, deployment-scoped chat/completions and embeddings (the deployment maps to an
 * underlying model, which the answers name), content-filter annotations and Azure's stream
 * shape: a leading `choices: []`, `model: ""` chunk with `prompt_filter_results`, and with
 * `include_usage` `"usage":null` on every chunk then a `choices: []` usage chunk. Text, ids and
 * vectors come from the OpenAI fake's content helpers, so the same body always yields the same
 * bytes, streamed or not.
 */
import * as C from "./openai_content.ts";
import { sseData } from "./sse.ts";

type Json = Record<string, unknown>;

export interface FakeAzureOptions {
  keys: string[];
  /** Deployment name → underlying model (answers name the model, as Azure does). */
  deployments: Record<string, string>;
}

export interface FakeAzureRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  /** The request body as received. */
  body: string;
}

export interface FakeAzure {
  url: string;
  requests: FakeAzureRequest[];
  close(): Promise<void>;
}

const FILTER = {
  hate: { filtered: false, severity: "safe" },
  self_harm: { filtered: false, severity: "safe" },
  sexual: { filtered: false, severity: "safe" },
  violence: { filtered: false, severity: "safe" },
};
const PROMPT_FILTER = [{
  prompt_index: 0,
  content_filter_results: { ...FILTER, jailbreak: { filtered: false, detected: false } },
}];

class AzureError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export function startFakeAzure(options: FakeAzureOptions): Promise<FakeAzure> {
  const keys = new Set(options.keys);
  const requests: FakeAzureRequest[] = [];

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const body = await req.text();
    requests.push({
      method: req.method,
      path: url.pathname + url.search,
      headers: Object.fromEntries(req.headers),
      body,
    });
    const requestId = crypto.randomUUID();
    const headers = { "apim-request-id": requestId, "x-request-id": requestId };
    try {
      const key = req.headers.get("api-key") ??
        req.headers.get("authorization")?.match(/^Bearer\s+(\S+)$/i)?.[1];
      if (!key || !keys.has(key)) {
        throw new AzureError(
          401,
          "401",
          "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
        );
      }
      const v1 = /^\/openai\/v1\/(.+)$/.exec(url.pathname);
      const scoped = /^\/openai\/deployments\/([^/]+)\/(.+)$/.exec(url.pathname);
      if (!v1 && !url.searchParams.get("api-version")) {
        throw new AzureError(
          400,
          "MissingApiVersionParameter",
          "The api-version query parameter (?api-version=) is required for all requests.",
        );
      }
      const operation = v1?.[1] ?? scoped?.[2];
      if (
        req.method !== "POST" || (operation !== "chat/completions" && operation !== "embeddings")
      ) {
        throw new AzureError(404, "404", "Resource not found");
      }
      let json: Json;
      try {
        json = JSON.parse(body);
      } catch {
        throw new AzureError(400, "BadRequest", "The request body is not valid JSON.");
      }
      const deployment = scoped ? decodeURIComponent(scoped[1]!) : String(json.model ?? "");
      const model = options.deployments[deployment];
      if (!model) {
        throw new AzureError(
          404,
          "DeploymentNotFound",
          "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.",
        );
      }
      const { stream: _s, stream_options: _o, ...rest } = json;
      const seed = C.sha256Hex(url.pathname, C.canonicalJson(rest));
      return operation === "embeddings"
        ? embeddings(json, model, headers)
        : chat(json, model, seed, headers);
    } catch (e) {
      const err = e instanceof AzureError ? e : new AzureError(500, "InternalServerError", `${e}`);
      return new Response(JSON.stringify({ error: { code: err.code, message: err.message } }), {
        status: err.status,
        headers: { ...headers, "content-type": "application/json" },
      });
    }
  }

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handle);
  return Promise.resolve({
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    close: () => server.shutdown(),
  });
}

function chat(body: Json, model: string, seed: string, headers: Record<string, string>) {
  const prompt = C.chatPrompt(body);
  const content = C.makeContent(seed, prompt.control, C.parseDirectives(prompt.control).directives);
  const usage = C.chatUsage(prompt.tokens, content.tokens, 0);
  const id = `chatcmpl-${C.alnumId(seed, "id", 29)}`;
  const created = C.createdAt(seed);
  const fingerprint = `fp_${C.hexId(C.sha256Hex(model), "fp", 10)}`;
  if (body.stream !== true) {
    return json({
      choices: [{
        content_filter_results: FILTER,
        finish_reason: "stop",
        index: 0,
        logprobs: null,
        message: { annotations: [], content: content.text(), refusal: null, role: "assistant" },
      }],
      created,
      id,
      model,
      object: "chat.completion",
      prompt_filter_results: PROMPT_FILTER,
      system_fingerprint: fingerprint,
      usage,
    }, headers);
  }
  const so = body.stream_options as Json | undefined;
  const includeUsage = so?.include_usage === true;
  const frame = (chunk: Json, usageValue: unknown = null) =>
    sseData(includeUsage ? { ...chunk, usage: usageValue } : chunk);
  const chunk = (delta: Json, finish: string | null) => ({
    choices: [{
      content_filter_results: finish ? {} : FILTER,
      delta,
      finish_reason: finish,
      index: 0,
      logprobs: null,
    }],
    created,
    id,
    model,
    object: "chat.completion.chunk",
    system_fingerprint: fingerprint,
  });
  const frames = [
    frame({
      choices: [],
      created: 0,
      id: "",
      model: "",
      object: "",
      prompt_filter_results: PROMPT_FILTER,
    }),
    frame(chunk({ content: "", refusal: null, role: "assistant" }, null)),
    ...[...content.pieces()].map((piece) => frame(chunk({ content: piece }, null))),
    frame(chunk({}, "stop")),
    ...(includeUsage
      ? [frame({
        choices: [],
        created,
        id,
        model,
        object: "chat.completion.chunk",
        system_fingerprint: fingerprint,
      }, usage)]
      : []),
    "data: [DONE]\n\n",
  ];
  const encoder = new TextEncoder();
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = frames.shift();
      if (next === undefined) controller.close();
      else controller.enqueue(encoder.encode(next));
    },
  });
  return new Response(stream, {
    headers: { ...headers, "content-type": "text/event-stream; charset=utf-8" },
  });
}

function embeddings(body: Json, model: string, headers: Record<string, string>) {
  const inputs = typeof body.input === "string" ? [body.input] : body.input;
  if (!Array.isArray(inputs) || inputs.some((i) => typeof i !== "string")) {
    throw new AzureError(400, "BadRequest", "'input' is invalid.");
  }
  let tokens = 0;
  const data = (inputs as string[]).map((input, index) => {
    tokens += C.countTokens(input);
    const v = C.embeddingVector(model, input, 1536);
    const embedding = body.encoding_format === "base64"
      ? btoa(String.fromCharCode(...v.bytes))
      : v.json;
    return { object: "embedding", index, embedding };
  });
  return json({
    object: "list",
    data,
    model,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  }, headers);
}

const json = (payload: unknown, headers: Record<string, string>) =>
  new Response(JSON.stringify(payload), {
    headers: { ...headers, "content-type": "application/json" },
  });
