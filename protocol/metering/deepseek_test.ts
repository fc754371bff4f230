import assert from "node:assert/strict";
import { createDeepSeekMeter, mapDeepSeekUsage } from "./deepseek.ts";

const enc = new TextEncoder();
const USAGE = {
  prompt_tokens: 30,
  completion_tokens: 50,
  total_tokens: 80,
  prompt_tokens_details: { cached_tokens: 20 },
  prompt_cache_hit_tokens: 20,
  prompt_cache_miss_tokens: 10,
  completion_tokens_details: { reasoning_tokens: 12 },
};

Deno.test("DeepSeek usage: miss is fresh input, hit is cached, reasoning from the details", () => {
  const m = mapDeepSeekUsage(USAGE)!;
  assert.equal(m.promptTokens, 30);
  assert.equal(m.usage.inputTokens, 10);
  assert.equal(m.usage.cachedInputTokens, 20);
  assert.equal(m.usage.outputTokens, 50);
  assert.equal(m.usage.reasoningTokens, 12);
  assert.equal(mapDeepSeekUsage(null), null);
  assert.equal(mapDeepSeekUsage({ prompt_tokens: 9, completion_tokens: -1 })!.usage.inputTokens, 9);
});

Deno.test("DeepSeek meter: the include_usage chunk of a stream split anywhere, and JSON", () => {
  const sse = [
    `data: {"id":"a","model":"deepseek-chat","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}\n\n`,
    `data: {"id":"a","model":"deepseek-chat","choices":[],"usage":${JSON.stringify(USAGE)}}\n\n`,
    "data: [DONE]\n\n",
  ].join("");
  const bytes = enc.encode(sse);
  for (const cut of [1, 7, 100, bytes.length - 3]) {
    const meter = createDeepSeekMeter({ contentType: "text/event-stream; charset=utf-8" });
    meter.push(bytes.subarray(0, cut));
    meter.push(bytes.subarray(cut));
    const r = meter.end();
    assert.equal(r.complete, true);
    assert.equal(r.model, "deepseek-chat");
    assert.equal(r.usage?.cachedInputTokens, 20);
  }
  const cutStream = createDeepSeekMeter({ contentType: "text/event-stream" });
  cutStream.push(bytes.subarray(0, 60));
  assert.deepEqual(cutStream.end().complete, false);
  const json = createDeepSeekMeter({ contentType: "application/json" });
  json.push(enc.encode(JSON.stringify({ id: "a", model: "deepseek-reasoner", usage: USAGE })));
  const r = json.end();
  assert.equal(r.model, "deepseek-reasoner");
  assert.equal(r.usage?.inputTokens, 10);
  assert.equal(r.promptTokens, 30);
});
