import assert from "node:assert/strict";
import { createDashScopeMeter, mapDashScopeUsage } from "./dashscope.ts";

const enc = new TextEncoder();
const NATIVE = "/api/v1/services/aigc/text-generation/generation";
const frame = (i: number, out: number, finish: string) =>
  `id:${i}\nevent:result\n:HTTP_STATUS/200\ndata:${
    JSON.stringify({
      output: {
        choices: [{ message: { role: "assistant", content: "x" }, finish_reason: finish }],
      },
      usage: { input_tokens: 40, output_tokens: out, total_tokens: 40 + out },
      request_id: "r",
    })
  }\n\n`;

Deno.test("DashScope native usage: cached tokens come out of fresh input", () => {
  const m = mapDashScopeUsage({
    input_tokens: 40,
    output_tokens: 9,
    prompt_tokens_details: { cached_tokens: 16 },
    output_tokens_details: { reasoning_tokens: 3 },
  })!;
  assert.equal(m.promptTokens, 40);
  assert.equal(m.usage.inputTokens, 24);
  assert.equal(m.usage.cachedInputTokens, 16);
  assert.equal(m.usage.outputTokens, 9);
  assert.equal(m.usage.reasoningTokens, 3);
});

Deno.test("DashScope native SSE: cumulative usage, the last frame counts; 'null' is not done", () => {
  const bytes = enc.encode(frame(1, 2, "null") + frame(2, 5, "null") + frame(3, 7, "stop"));
  for (const cut of [1, 33, bytes.length - 2]) {
    const meter = createDashScopeMeter({
      path: NATIVE,
      contentType: "text/event-stream;charset=UTF-8",
    });
    meter.push(bytes.subarray(0, cut));
    meter.push(bytes.subarray(cut));
    const r = meter.end();
    assert.equal(r.complete, true);
    assert.equal(r.usage?.outputTokens, 7);
    assert.equal(r.promptTokens, 40);
  }
  const cut = createDashScopeMeter({ path: NATIVE, contentType: "text/event-stream" });
  cut.push(enc.encode(frame(1, 2, "null") + frame(2, 5, "null")));
  const r = cut.end();
  assert.equal(r.complete, false);
  assert.equal(r.usage?.outputTokens, 5, "what was generated before the cut");
});

Deno.test("DashScope: native JSON and compatible mode (OpenAI's shapes)", () => {
  const json = createDashScopeMeter({ path: NATIVE, contentType: "application/json" });
  json.push(enc.encode(JSON.stringify({
    output: { text: "hi", finish_reason: "stop" },
    usage: { input_tokens: 11, output_tokens: 4, total_tokens: 15 },
    request_id: "r",
  })));
  assert.equal(json.end().usage?.inputTokens, 11);
  const compat = createDashScopeMeter({
    path: "/compatible-mode/v1/chat/completions",
    contentType: "application/json",
  });
  compat.push(enc.encode(JSON.stringify({
    model: "qwen-plus",
    usage: { prompt_tokens: 20, completion_tokens: 3, prompt_tokens_details: { cached_tokens: 8 } },
  })));
  const r = compat.end();
  assert.equal(r.model, "qwen-plus");
  assert.equal(r.usage?.inputTokens, 12);
  assert.equal(r.usage?.cachedInputTokens, 8);
});
