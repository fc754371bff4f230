import assert from "node:assert/strict";
import { decodeMessage, encodeMessage, EventStreamDecoder } from "../aws/eventstream.ts";
import { bedrock, parseBedrockChannelKey, parseBedrockPath } from "./bedrock.ts";

const MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const enc = new TextEncoder();

const event = (eventType: string, body: unknown) =>
  encodeMessage({
    headers: {
      ":event-type": eventType,
      ":content-type": "application/json",
      ":message-type": "event",
    },
    payload: JSON.stringify(body),
  });
const chunk = (body: unknown) =>
  event("chunk", { bytes: btoa(JSON.stringify(body)), p: "abcdefgh" });
const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
};

Deno.test("bedrock paths: raw and encoded colons, ARNs with %2F, nothing else", () => {
  for (const raw of [MODEL, encodeURIComponent(MODEL)]) {
    assert.deepEqual(parseBedrockPath(`/model/${raw}/converse-stream`), {
      modelId: MODEL,
      model: MODEL,
      operation: "converse-stream",
    });
  }
  const arn = `arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.${MODEL}`;
  assert.equal(parseBedrockPath(`/model/${encodeURIComponent(arn)}/invoke`)?.model, `us.${MODEL}`);
  const foundation = `arn:aws:bedrock:us-east-1::foundation-model/${MODEL}`;
  assert.equal(parseBedrockPath(`/model/${encodeURIComponent(foundation)}/invoke`)?.model, MODEL);
  for (
    const bad of [
      `/model/${MODEL}/delete`,
      `/model/${MODEL}`,
      `/model/..%2F..%2Fadmin/converse`,
      `/model/a%2Fb/converse`,
      `/model/%E0%A4%A/converse`,
      `/models/${MODEL}/converse`,
    ]
  ) assert.equal(parseBedrockPath(bad), null, bad);
  const url = new URL(`http://hub/model/${encodeURIComponent(arn)}/converse?x=1`);
  assert.equal(
    bedrock.upstreamPathFor!(url),
    `/model/${encodeURIComponent(`us.${MODEL}`)}/converse`,
  );
});

Deno.test("bedrock errors: x-amzn-ErrorType and {message}; 401 answers 403 as AWS does", async () => {
  const res = bedrock.errorResponse({
    status: 401,
    type: "invalid_request_error",
    code: "invalid_api_key",
    message: "nope",
  });
  assert.equal(res.status, 403);
  assert.match(res.headers.get("x-amzn-errortype")!, /^UnrecognizedClientException:/);
  assert.deepEqual(await res.json(), { message: "nope" });
  const typed = bedrock.errorResponse({
    status: 403,
    type: "x",
    code: "InvalidSignatureException",
    message: "m",
  });
  assert.match(typed.headers.get("x-amzn-errortype")!, /^InvalidSignatureException:/);
  const throttled = bedrock.errorResponse({
    status: 429,
    type: "requests",
    code: null,
    message: "",
  });
  assert.match(throttled.headers.get("x-amzn-errortype")!, /^ThrottlingException:/);
});

Deno.test("bedrock channel keys: AKID:SECRET; the message never shows the key", () => {
  assert.deepEqual(
    parseBedrockChannelKey("AKIAEXAMPLE000000001:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
    {
      accessKeyId: "AKIAEXAMPLE000000001",
      secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    },
  );
  assert.throws(
    () => bedrock.validateKey!("sk-secretvalue"),
    (e: Error) => !e.message.includes("secretvalue"),
  );
  assert.equal(
    bedrock.upstreamOriginFor!({ endpoint: "eu-central-1" }),
    "https://bedrock-runtime.eu-central-1.amazonaws.com",
  );
  assert.throws(() => bedrock.upstreamOriginFor!({ endpoint: "evil.com" }));
  assert.throws(() => bedrock.upstreamOriginFor!({}));
});

const USAGE = { inputTokens: 11, outputTokens: 7, totalTokens: 18, cacheReadInputTokens: 3 };
const EXPECTED = { input: 11, cached: 3, output: 7, prompt: 14 };

function meterOf(op: string, bytes: Uint8Array, headers?: Headers) {
  const meter = bedrock.createMeter({
    path: `/model/${encodeURIComponent(MODEL)}/${op}`,
    status: 200,
    contentType: op.endsWith("stream") ? "application/vnd.amazon.eventstream" : "application/json",
    headers,
  });
  // Arbitrary chunk boundaries (1..7 bytes).
  for (let at = 0, n = 1; at < bytes.length; at += n, n = (n % 7) + 1) {
    meter.push(bytes.subarray(at, at + n));
  }
  return meter.end();
}

Deno.test("bedrock meters: converse body, converse-stream metadata, invoke headers, invoke-stream metrics", () => {
  const check = (r: ReturnType<typeof meterOf>, cached = EXPECTED.cached) => {
    assert.equal(r.complete, true);
    assert.equal(r.usage?.inputTokens, EXPECTED.input);
    assert.equal(r.usage?.cachedInputTokens, cached);
    assert.equal(r.usage?.outputTokens, EXPECTED.output);
    assert.equal(r.promptTokens, EXPECTED.input + cached);
  };
  check(meterOf("converse", enc.encode(JSON.stringify({ output: {}, usage: USAGE }))));
  const converseStream = concat([
    event("messageStart", { role: "assistant", p: "abc" }),
    event("contentBlockDelta", { contentBlockIndex: 0, delta: { text: "hi" } }),
    event("messageStop", { stopReason: "end_turn" }),
    event("metadata", { usage: USAGE, metrics: { latencyMs: 1 } }),
  ]);
  check(meterOf("converse-stream", converseStream));
  check(
    meterOf(
      "invoke",
      enc.encode("{}"),
      new Headers({
        "x-amzn-bedrock-input-token-count": "11",
        "x-amzn-bedrock-output-token-count": "7",
        "x-amzn-bedrock-cache-read-input-token-count": "3",
      }),
    ),
  );
  const invokeStream = concat([
    chunk({ type: "message_start" }),
    chunk({
      type: "message_stop",
      "amazon-bedrock-invocationMetrics": {
        inputTokenCount: 11,
        outputTokenCount: 7,
        cacheReadInputTokenCount: 3,
      },
    }),
  ]);
  check(meterOf("invoke-with-response-stream", invokeStream));
  // A stream cut short or with a bad CRC is never complete.
  assert.equal(
    meterOf("converse-stream", converseStream.subarray(0, converseStream.length - 3)).complete,
    false,
  );
  const corrupt = converseStream.slice();
  corrupt[corrupt.length - 1]! ^= 1;
  assert.equal(meterOf("converse-stream", corrupt).complete, false);
});

async function relay(bytes: Uint8Array, split: number) {
  const { transform, result } = bedrock.usageExactness!.restoreResponse();
  const writer = transform.writable.getWriter();
  const out: Uint8Array[] = [];
  const reading = (async () => {
    for await (const c of transform.readable) out.push(c);
  })();
  for (let at = 0; at < bytes.length; at += split) {
    await writer.write(bytes.slice(at, at + split)).catch(() => {});
  }
  await writer.close().catch(() => {});
  await reading;
  return { bytes: concat(out), result: result() };
}

Deno.test("bedrock stream relay: valid frames pass byte for byte; a bad frame ends in an exception", async () => {
  const frames = [
    event("messageStart", { role: "assistant" }),
    event("contentBlockDelta", { contentBlockIndex: 0, delta: { text: "hello" } }),
    event("metadata", { usage: USAGE }),
  ];
  const good = concat(frames);
  for (const split of [1, 5, 64, good.length]) {
    const { bytes, result } = await relay(good, split);
    assert.deepEqual(bytes, good, `split ${split}`);
    assert.equal(result.complete, true);
    assert.equal(result.usage?.outputTokens, 7);
  }
  const bad = frames[1]!.slice();
  bad[bad.length - 2]! ^= 0xff;
  const { bytes, result } = await relay(concat([frames[0]!, bad, frames[2]!]), 3);
  assert.deepEqual(bytes.subarray(0, frames[0]!.length), frames[0]);
  const decoder = new EventStreamDecoder();
  const messages = decoder.push(bytes);
  decoder.end();
  assert.equal(messages.length, 2);
  const last = decodeMessage(bytes.subarray(frames[0]!.length));
  assert.equal((last.headers[":message-type"] as { value: string }).value, "exception");
  assert.equal(
    (last.headers[":exception-type"] as { value: string }).value,
    "modelStreamErrorException",
  );
  assert.match(new TextDecoder().decode(last.payload), /malformed/);
  assert.equal(result.complete, false);
  // An error answer (JSON) goes through untouched.
  const json = enc.encode('{"message":"Too many requests"}');
  assert.deepEqual((await relay(json, 4)).bytes, json);
});
