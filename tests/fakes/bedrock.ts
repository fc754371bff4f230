/**
 * A deterministic fake of AWS Bedrock Runtime (`https://bedrock-runtime.<region>.amazonaws.com`):
 * SigV4 verified with the channel's real secret exactly as AWS does (the official host as `host`,
 * double-encoded raw path, 15-minute skew, the body's hash), Bedrock's error envelope
 * (`x-amzn-ErrorType` + `{"message"}`), and the four operations:
 * - `converse`: `output.message`, `stopReason`, `usage`, `metrics`;
 * - `converse-stream`: eventstream `messageStart`, `contentBlockDelta`…, `contentBlockStop`,
 *   `messageStop`, then `metadata` with the usage (every payload padded with `"p"`, as Bedrock);
 * - `invoke` (Claude bodies): an Anthropic message, and the `x-amzn-bedrock-*-token-count` headers;
 * - `invoke-with-response-stream`: `chunk` events carrying base64 Anthropic stream events, the
 *   last one with `amazon-bedrock-invocationMetrics`.
 * The reply is `Echo: <last user text>`; tokens are whitespace-separated words. A prompt containing
 * `[[corrupt]]` makes the stream's third frame fail its message CRC.
 */
import { encodeMessage } from "../../protocol/aws/eventstream.ts";
import { sha256Hex } from "../../protocol/aws/payload.ts";
import { verifySigV4 } from "../../protocol/aws/sigv4.ts";

type Json = Record<string, unknown>;

export interface FakeBedrockOptions {
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Model ids served (anything else: ResourceNotFoundException / ValidationException). */
  models: string[];
}

export interface FakeBedrockRequest {
  method: string;
  /** The raw path as received. */
  path: string;
  headers: Record<string, string>;
  body: string;
  /** The signature check's verdict ("ok", or the AWS error type). */
  auth: string;
}

export interface FakeBedrock {
  url: string;
  host: string;
  requests: FakeBedrockRequest[];
  close(): Promise<void>;
}

class BedrockError extends Error {
  constructor(readonly status: number, readonly type: string, message: string) {
    super(message);
  }
}

const PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const words = (s: string) => s.split(/\s+/).filter(Boolean).length;
const b64 = (s: string) => btoa(String.fromCharCode(...new TextEncoder().encode(s)));

function event(eventType: string, body: Json, padding: number): Uint8Array {
  return encodeMessage({
    headers: {
      ":event-type": eventType,
      ":content-type": "application/json",
      ":message-type": "event",
    },
    payload: JSON.stringify({ ...body, p: PAD.slice(0, padding) }),
  });
}

function errorResponse(e: BedrockError): Response {
  return new Response(JSON.stringify({ message: e.message }), {
    status: e.status,
    headers: {
      "content-type": "application/json",
      "x-amzn-errortype": `${e.type}:http://internal.amazon.com/coral/com.amazon.bedrock/`,
      "x-amzn-requestid": crypto.randomUUID(),
    },
  });
}

/** The last user text of a Converse or Anthropic-Messages body. */
function promptText(body: Json, converse: boolean): string {
  const messages = Array.isArray(body.messages) ? body.messages as Json[] : [];
  const last = messages.filter((m) => m.role === "user").at(-1);
  if (!last) throw new BedrockError(400, "ValidationException", "messages must not be empty");
  const content = last.content;
  if (typeof content === "string" && !converse) return content;
  if (!Array.isArray(content)) {
    throw new BedrockError(400, "ValidationException", "content must be a list of blocks");
  }
  return content.map((c: Json) => typeof c.text === "string" ? c.text : "").join(" ");
}

function corruptThird(frames: Uint8Array[]): Uint8Array[] {
  const bad = frames[2]!.slice();
  bad[bad.length - 1]! ^= 0xff;
  return [frames[0]!, frames[1]!, bad, ...frames.slice(3)];
}

function streamOf(frames: Uint8Array[]): Response {
  return new Response(
    new ReadableStream({
      start(ctl) {
        for (const f of frames) ctl.enqueue(f);
        ctl.close();
      },
    }),
    {
      headers: {
        "content-type": "application/vnd.amazon.eventstream",
        "x-amzn-requestid": crypto.randomUUID(),
      },
    },
  );
}

export function startFakeBedrock(options: FakeBedrockOptions): Promise<FakeBedrock> {
  const host = `bedrock-runtime.${options.region}.amazonaws.com`;
  const requests: FakeBedrockRequest[] = [];

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const bytes = new Uint8Array(await req.arrayBuffer());
    const headers: Record<string, string> = {};
    req.headers.forEach((v, k) => void (headers[k] = v));
    const record: FakeBedrockRequest = {
      method: req.method,
      path: url.pathname,
      headers,
      body: new TextDecoder().decode(bytes),
      auth: "pending",
    };
    requests.push(record);
    try {
      // AWS sees its own host name; the agent's bytes reach us through AGENT_DEV_UPSTREAMS.
      const verdict = await verifySigV4({
        request: {
          method: req.method,
          rawPath: url.pathname,
          rawQuery: url.search.slice(1),
          headers: { ...headers, host },
          payloadHash: await sha256Hex(bytes),
        },
        secretFor: (id) => (id === options.accessKeyId ? options.secretAccessKey : null),
        nowMs: Date.now(),
        expectedService: "bedrock",
      });
      record.auth = verdict.ok ? "ok" : verdict.code;
      if (!verdict.ok) {
        throw new BedrockError(
          verdict.code === "IncompleteSignatureException" ? 400 : 403,
          verdict.code,
          verdict.message,
        );
      }
      if (verdict.region !== options.region) {
        throw new BedrockError(
          403,
          "InvalidSignatureException",
          "Credential should be scoped to a valid region.",
        );
      }
      const m = /^\/model\/([^/]+)\/([a-z-]+)$/.exec(url.pathname);
      if (req.method !== "POST" || !m) {
        throw new BedrockError(404, "UnknownOperationException", "Unknown operation");
      }
      const model = decodeURIComponent(m[1]!);
      if (!options.models.includes(model)) {
        throw new BedrockError(
          400,
          "ValidationException",
          "The provided model identifier is invalid.",
        );
      }
      let body: Json;
      try {
        body = JSON.parse(record.body);
      } catch {
        throw new BedrockError(
          400,
          "ValidationException",
          "Malformed input request, please reformat your input and try again.",
        );
      }
      return respond(m[2]!, model, body);
    } catch (e) {
      if (e instanceof BedrockError) return errorResponse(e);
      throw e;
    }
  }

  function respond(op: string, model: string, body: Json): Response {
    const converse = op.startsWith("converse");
    const prompt = promptText(body, converse);
    const reply = `Echo: ${prompt}`;
    const inputTokens = words(prompt) + 3;
    const outputTokens = words(reply);
    const pieces = reply.split(/(?<= )/);
    const corrupt = prompt.includes("[[corrupt]]");
    if (op === "converse") {
      return Response.json({
        output: { message: { role: "assistant", content: [{ text: reply }] } },
        stopReason: "end_turn",
        usage: { inputTokens, outputTokens, totalTokens: inputTokens + outputTokens },
        metrics: { latencyMs: 42 },
      });
    }
    if (op === "converse-stream") {
      const frames = [
        event("messageStart", { role: "assistant" }, 3),
        ...pieces.map((text, i) =>
          event("contentBlockDelta", { contentBlockIndex: 0, delta: { text } }, 5 + i)
        ),
        event("contentBlockStop", { contentBlockIndex: 0 }, 7),
        event("messageStop", { stopReason: "end_turn" }, 2),
        event("metadata", {
          usage: { inputTokens, outputTokens, totalTokens: inputTokens + outputTokens },
          metrics: { latencyMs: 42 },
        }, 9),
      ];
      return streamOf(corrupt ? corruptThird(frames) : frames);
    }
    const id = "msg_bdrk_" + crypto.randomUUID().replaceAll("-", "").slice(0, 20);
    if (op === "invoke") {
      return Response.json({
        id,
        type: "message",
        role: "assistant",
        model,
        content: [{ type: "text", text: reply }],
        stop_reason: "end_turn",
        stop_sequence: null,
        usage: { input_tokens: inputTokens, output_tokens: outputTokens },
      }, {
        headers: {
          "x-amzn-bedrock-input-token-count": String(inputTokens),
          "x-amzn-bedrock-output-token-count": String(outputTokens),
          "x-amzn-bedrock-invocation-latency": "42",
          "x-amzn-requestid": crypto.randomUUID(),
        },
      });
    }
    if (op === "invoke-with-response-stream") {
      const chunk = (e: Json, i: number) => event("chunk", { bytes: b64(JSON.stringify(e)) }, i);
      const events: Json[] = [
        {
          type: "message_start",
          message: {
            id,
            type: "message",
            role: "assistant",
            model,
            content: [],
            stop_reason: null,
            stop_sequence: null,
            usage: { input_tokens: inputTokens, output_tokens: 1 },
          },
        },
        { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } },
        ...pieces.map((text) => ({
          type: "content_block_delta",
          index: 0,
          delta: { type: "text_delta", text },
        })),
        { type: "content_block_stop", index: 0 },
        {
          type: "message_delta",
          delta: { stop_reason: "end_turn", stop_sequence: null },
          usage: { output_tokens: outputTokens },
        },
        {
          type: "message_stop",
          "amazon-bedrock-invocationMetrics": {
            inputTokenCount: inputTokens,
            outputTokenCount: outputTokens,
            invocationLatency: 42,
            firstByteLatency: 7,
          },
        },
      ];
      const frames = events.map((e, i) => chunk(e, 4 + i));
      return streamOf(corrupt ? corruptThird(frames) : frames);
    }
    throw new BedrockError(404, "UnknownOperationException", `Unknown operation ${op}`);
  }

  const { promise, resolve } = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: resolve },
    (req) =>
      handle(req).catch((e) =>
        errorResponse(new BedrockError(500, "InternalServerException", String(e)))
      ),
  );
  return promise.then((addr) => ({
    url: `http://127.0.0.1:${addr.port}`,
    host,
    requests,
    close: () => server.shutdown(),
  }));
}
