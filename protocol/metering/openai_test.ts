import assert from "node:assert/strict";
import { emptyUsage, type Usage } from "../usage.ts";
import { createOpenAIMeter, type MeterResult, type OpenAIMeterOptions } from "./openai.ts";

const enc = new TextEncoder();
const u = (fields: Partial<Usage>): Usage => ({ ...emptyUsage(), ...fields });

/** Runs a meter over `bytes` in chunks of `size` (0 = whole). */
function meter(options: OpenAIMeterOptions, bytes: Uint8Array, size = 0): MeterResult {
  const m = createOpenAIMeter(options);
  const step = size || bytes.length || 1;
  for (let i = 0; i < bytes.length; i += step) m.push(bytes.subarray(i, i + step));
  return m.end();
}

const SSE = "text/event-stream; charset=utf-8";
const CHAT = { path: "/v1/chat/completions", stream: true, contentType: SSE };
const USAGE = {
  prompt_tokens: 19,
  completion_tokens: 10,
  total_tokens: 29,
  prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0 },
};

function chatStream(includeUsage: boolean, azure = false): string {
  const base = (model: string) =>
    `"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"${model}",` +
    `"service_tier":"default","system_fingerprint":"fp_1"`;
  const nul = includeUsage ? ',"usage":null' : "";
  const events: string[] = [];
  if (azure) {
    events.push(
      `{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[]${nul}}`,
    );
  }
  for (
    const [i, delta] of [
      '{"role":"assistant","content":""}',
      '{"content":"Hi \\"usage\\":{}"}',
      "{}",
    ].entries()
  ) {
    const finish = i === 2 ? '"stop"' : "null";
    events.push(
      `{${
        base("gpt-4o-mini-2024-07-18")
      },"choices":[{"index":0,"delta":${delta},"logprobs":null,"finish_reason":${finish}}]${nul}}`,
    );
  }
  if (includeUsage) {
    events.push(
      `{${base("gpt-4o-mini-2024-07-18")},"choices":[],"usage":${JSON.stringify(USAGE)}}`,
    );
  }
  return events.map((e) => `data: ${e}\n\n`).join("") + "data: [DONE]\n\n";
}

Deno.test("openai meter: chat stream with include_usage, any chunking", () => {
  const bytes = enc.encode(chatStream(true, true));
  const expected: MeterResult = {
    usage: u({ inputTokens: 19, outputTokens: 10 }),
    promptTokens: 19,
    model: "gpt-4o-mini-2024-07-18",
    serviceTier: "default",
    complete: true,
  };
  for (const size of [0, 1, 2, 3, 7, 64, 1000]) {
    assert.deepEqual(meter(CHAT, bytes, size), expected);
  }
  assert.deepEqual(meter({ ...CHAT, contentType: null }, bytes), expected); // by `stream`
});

Deno.test("openai meter: chat stream without usage, and truncated streams", () => {
  const plain = enc.encode(chatStream(false));
  assert.deepEqual(meter(CHAT, plain), {
    usage: null,
    promptTokens: 0,
    model: "gpt-4o-mini-2024-07-18",
    serviceTier: "default",
    complete: true,
  });
  const full = chatStream(true);
  const usageAt = full.indexOf('"choices":[],"usage"');
  for (const cut of [full.indexOf("data: {") + 10, usageAt - 20, usageAt + 40]) {
    const got = meter(CHAT, enc.encode(full.slice(0, cut)));
    assert.equal(got.complete, false, `cut ${cut}`);
    assert.equal(got.usage, null, `cut ${cut}`);
  }
  const beforeDone = meter(CHAT, enc.encode(full.slice(0, full.indexOf("data: [DONE]"))));
  assert.deepEqual([beforeDone.complete, beforeDone.usage?.inputTokens], [false, 19]);
});

const RESP_USAGE = {
  input_tokens: 36,
  input_tokens_details: { cached_tokens: 0 },
  output_tokens: 87,
  output_tokens_details: { reasoning_tokens: 0 },
  total_tokens: 123,
};

function responsesStream(terminal: string | null, bigOutput = ""): string {
  const response = (status: string, usage: unknown, output: unknown[]) =>
    JSON.stringify({
      id: "resp_1",
      object: "response",
      created_at: 1,
      status,
      model: "gpt-4.1-2025-04-14",
      output,
      service_tier: "default",
      usage,
      user: null,
      metadata: {},
    });
  const ev = (type: string, seq: number, body: string) =>
    `event: ${type}\ndata: {"type":"${type}","sequence_number":${seq},${body}}\n\n`;
  let s = ev("response.created", 0, `"response":${response("in_progress", null, [])}`) +
    ev("response.in_progress", 1, `"response":${response("in_progress", null, [])}`) +
    ev("response.output_text.delta", 2, `"item_id":"msg_1","output_index":0,"delta":"Hi"`);
  if (terminal) {
    const output = [{ type: "image_generation_call", id: "ig_1", result: bigOutput }];
    s += ev(terminal, 3, `"response":${response(terminal.slice(9), RESP_USAGE, output)}`);
  }
  return s;
}

Deno.test("openai meter: responses stream terminal events, truncation, oversized terminal", () => {
  const opts = { path: "/v1/responses", stream: true, contentType: SSE };
  const usage = u({ inputTokens: 36, outputTokens: 87 });
  const common = { promptTokens: 36, model: "gpt-4.1-2025-04-14", serviceTier: "default" };
  for (const t of ["response.completed", "response.incomplete", "response.failed"]) {
    const bytes = enc.encode(responsesStream(t));
    for (const size of [0, 1, 5, 333]) {
      assert.deepEqual(meter(opts, bytes, size), { usage, ...common, complete: true }, t);
    }
  }
  assert.deepEqual(meter(opts, enc.encode(responsesStream(null))), {
    usage: null,
    promptTokens: 0,
    model: "gpt-4.1-2025-04-14",
    complete: false,
  });
  // an image_generation result makes response.completed bigger than the 1 MiB event bound
  const big = enc.encode(responsesStream("response.completed", "A".repeat(3 << 20)));
  assert.deepEqual(meter(opts, big, 16384), { usage, ...common, complete: true });
});

Deno.test("openai meter: JSON, binary and SSE speech, transcription, unmetered paths", () => {
  const json = "application/json";
  const chatBody = { id: "c", object: "chat.completion", model: "gpt-4o", usage: USAGE };
  assert.deepEqual(
    meter(
      { path: "/v1/chat/completions", stream: false, contentType: json },
      enc.encode(JSON.stringify(chatBody)),
      5,
    ),
    {
      usage: u({ inputTokens: 19, outputTokens: 10 }),
      promptTokens: 19,
      model: "gpt-4o",
      complete: true,
    },
  );
  const err = enc.encode('{"error":{"message":"bad","type":"invalid_request_error"}}');
  assert.deepEqual(meter({ path: "/v1/chat/completions", stream: true, contentType: json }, err), {
    usage: null,
    promptTokens: 0,
    complete: true,
  });
  const audio = new Uint8Array(100_000).fill(0xff);
  assert.deepEqual(
    meter({ path: "/v1/audio/speech", stream: false, contentType: "audio/mpeg" }, audio),
    {
      usage: null,
      promptTokens: 0,
      complete: true,
    },
  );
  const speechSse = 'data: {"type":"speech.audio.delta","audio":"AAAA"}\n\n' +
    'data: {"type":"speech.audio.done","usage":{"input_tokens":5,"output_tokens":90,"total_tokens":95}}\n\n';
  assert.deepEqual(
    meter({ path: "/v1/audio/speech", stream: false, contentType: SSE }, enc.encode(speechSse), 9),
    {
      usage: u({ inputTokens: 5, outputTokens: 90, audioOutputTokens: 90 }),
      promptTokens: 5,
      complete: true,
    },
  );
  const whisper = enc.encode('{"text":"hello","usage":{"type":"duration","seconds":3.2}}');
  assert.deepEqual(
    meter({ path: "/v1/audio/transcriptions", stream: false, contentType: json }, whisper),
    {
      usage: u({ audioSeconds: 4 }),
      promptTokens: 0,
      complete: true,
    },
  );
  const stored = enc.encode(JSON.stringify({ id: "resp_1", usage: RESP_USAGE }));
  assert.equal(
    meter({ path: "/v1/responses/resp_1", stream: false, contentType: json }, stored).usage,
    null,
  );
});
