import assert from "node:assert/strict";
import { emptyUsage } from "../usage.ts";
import type { MeterResult } from "../vendors/types.ts";
import { createAnthropicMeter, mapAnthropicUsage, overwriteUsage } from "./anthropic.ts";

const enc = new TextEncoder();
const SSE = "text/event-stream; charset=utf-8";

function run(
  text: string,
  contentType: string | null,
  { path = "/v1/messages", step = 0, maxEventBytes }: {
    path?: string;
    step?: number;
    maxEventBytes?: number;
  } = {},
): MeterResult {
  const meter = createAnthropicMeter({ path, contentType, maxEventBytes });
  const bytes = enc.encode(text);
  if (step <= 0) meter.push(bytes);
  else for (let i = 0; i < bytes.length; i += step) meter.push(bytes.subarray(i, i + step));
  return meter.end();
}

const ev = (type: string, fields: Record<string, unknown> = {}) =>
  `event: ${type}\ndata: ${JSON.stringify({ type, ...fields })}\n\n`;

const startUsage = {
  input_tokens: 20,
  cache_creation_input_tokens: 30,
  cache_read_input_tokens: 100,
  cache_creation: { ephemeral_5m_input_tokens: 10, ephemeral_1h_input_tokens: 20 },
  output_tokens: 1,
  service_tier: "standard",
};

function stream(deltas: Record<string, unknown>[], stop = true): string {
  let s = ev("message_start", {
    message: { id: "msg_1", type: "message", model: "claude-x", content: [], usage: startUsage },
  });
  s += ev("content_block_start", { index: 0, content_block: { type: "text", text: "" } });
  s += ev("ping");
  s += ev("content_block_delta", { index: 0, delta: { type: "text_delta", text: "hi" } });
  s += ev("content_block_stop", { index: 0 });
  for (const usage of deltas) s += ev("message_delta", { delta: { stop_reason: null }, usage });
  return stop ? s + ev("message_stop") : s;
}

const expected = (over: Partial<ReturnType<typeof emptyUsage>>) => ({ ...emptyUsage(), ...over });

Deno.test("mapAnthropicUsage: input excludes cache; writes split 5m/1h; prompt adds them up", () => {
  const mapped = mapAnthropicUsage({
    ...startUsage,
    output_tokens: 70,
    output_tokens_details: { thinking_tokens: 40 },
    speed: "fast",
    server_tool_use: { web_search_requests: 2 },
  })!;
  assert.deepEqual(
    mapped.usage,
    expected({
      inputTokens: 20,
      cachedInputTokens: 100,
      cacheWrite5mTokens: 10,
      cacheWrite1hTokens: 20,
      outputTokens: 70,
      reasoningTokens: 40,
    }),
  );
  assert.equal(mapped.promptTokens, 150);
  assert.equal(mapped.serviceTier, "fast");
  // Without the breakdown every write is 5m; a total larger than the breakdown tops up 5m.
  const flat = mapAnthropicUsage({ input_tokens: 3, cache_creation_input_tokens: 9 })!;
  assert.equal(flat.usage.cacheWrite5mTokens, 9);
  assert.equal(flat.usage.cacheWrite1hTokens, 0);
  const topped = mapAnthropicUsage({
    cache_creation_input_tokens: 50,
    cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 20 },
  })!;
  assert.deepEqual([topped.usage.cacheWrite5mTokens, topped.usage.cacheWrite1hTokens], [30, 20]);
  assert.equal(
    mapAnthropicUsage({ service_tier: "priority", speed: "fast" })!.serviceTier,
    "priority,fast",
  );
  assert.equal(mapAnthropicUsage({ input_tokens: -5, output_tokens: "7" })!.usage.inputTokens, 0);
  assert.equal(mapAnthropicUsage(null), null);
  assert.equal(mapAnthropicUsage([1]), null);
});

Deno.test("overwriteUsage: cumulative fields replace, nulls keep what was held", () => {
  assert.deepEqual(
    overwriteUsage({ input_tokens: 5, output_tokens: 1 }, { input_tokens: null, output_tokens: 9 }),
    { input_tokens: 5, output_tokens: 9 },
  );
});

Deno.test("non-stream JSON: usage, model and tier; errors and count_tokens are not billed", () => {
  const body = JSON.stringify({
    model: "claude-sonnet-5-5",
    id: "msg_1",
    type: "message",
    content: [{ type: "text", text: "x".repeat(5000) }],
    usage: { ...startUsage, output_tokens: 12 },
  });
  const r = run(body, "application/json", { step: 13 });
  assert.equal(r.complete, true);
  assert.equal(r.model, "claude-sonnet-5-5");
  assert.equal(r.serviceTier, "standard");
  assert.equal(r.promptTokens, 150);
  assert.equal(r.usage!.outputTokens, 12);

  const error = run(
    '{"type":"error","error":{"type":"overloaded_error","message":"x"}}',
    "application/json",
  );
  assert.deepEqual(error, { usage: null, promptTokens: 0, complete: true });
  const count = run('{"input_tokens":14}', "application/json", {
    path: "/v1/messages/count_tokens",
  });
  assert.deepEqual(count, { usage: null, promptTokens: 0, complete: true });
  assert.equal(run(body.slice(0, -20), "application/json").complete, false);
  assert.equal(
    run(body, "application/json", { path: "/v1/messages?beta=true" }).usage!.outputTokens,
    12,
  );
});

Deno.test("non-stream JSON larger than the full-parse bound: usage read from the tail", () => {
  const body = JSON.stringify({
    model: "claude-opus-5-5",
    content: [{ type: "text", text: "y".repeat(3 << 20) }],
    usage: { ...startUsage, output_tokens: 999 },
  });
  const r = run(body, "application/json", { step: 65536 });
  assert.equal(r.usage!.outputTokens, 999);
  assert.equal(r.model, "claude-opus-5-5");
  assert.equal(r.complete, true);
});

Deno.test("stream: message_delta usage is cumulative (overwrite, never add)", () => {
  const text = stream([
    { output_tokens: 10 },
    { input_tokens: 25, cache_read_input_tokens: 100, output_tokens: 42 },
  ]);
  for (const step of [0, 1, 7]) {
    const r = run(text, SSE, { step });
    assert.deepEqual(
      r.usage,
      expected({
        inputTokens: 25,
        cachedInputTokens: 100,
        cacheWrite5mTokens: 10,
        cacheWrite1hTokens: 20,
        outputTokens: 42,
      }),
      `step ${step}`,
    );
    assert.equal(r.complete, true);
    assert.equal(r.model, "claude-x");
    assert.equal(r.serviceTier, "standard");
    assert.equal(r.promptTokens, 155);
  }
  // CRLF framing and events without an `event:` line are read the same way.
  const crlf = text.replaceAll("\n", "\r\n");
  assert.deepEqual(run(crlf, SSE, { step: 3 }), run(text, SSE));
  const bare = text.replace(/^event: [a-z_]+\n/gm, "");
  assert.deepEqual(run(bare, SSE), run(text, SSE));
});

Deno.test("stream: cut before message_stop or ended by an error event is incomplete", () => {
  const cut = run(stream([], false), SSE);
  assert.equal(cut.complete, false);
  assert.equal(cut.usage!.inputTokens, 20, "what was seen still counts");
  assert.equal(cut.usage!.outputTokens, 1);
  const failed = run(
    stream([]).replace(/event: message_stop[\s\S]*$/, "") +
      ev("error", { error: { type: "overloaded_error", message: "Overloaded" } }),
    SSE,
  );
  assert.equal(failed.complete, false);
  assert.deepEqual(run("", SSE), { usage: null, promptTokens: 0, complete: false });
});

Deno.test("stream: an oversized message_delta is read from its tail", () => {
  const huge = stream([{ output_tokens: 77, note: "z".repeat(4096) }]);
  const r = run(huge, SSE, { maxEventBytes: 1024, step: 100 });
  assert.equal(r.usage!.outputTokens, 77);
  assert.equal(r.complete, true);
});

Deno.test("other content types and paths are not billed", () => {
  assert.deepEqual(run("hello", "text/plain"), { usage: null, promptTokens: 0, complete: true });
  assert.deepEqual(run(stream([]), SSE, { path: "/v1/models" }), {
    usage: null,
    promptTokens: 0,
    complete: true,
  });
});
