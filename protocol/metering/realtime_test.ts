import assert from "node:assert/strict";
import { RealtimeMeter } from "./realtime.ts";

const done = (usage: unknown) => JSON.stringify({ type: "response.done", response: { usage } });

Deno.test("realtime usage is the sum over response.done events", () => {
  const meter = new RealtimeMeter();
  assert.deepEqual(meter.end(), {
    usage: null,
    promptTokens: 0,
    model: undefined,
    complete: false,
  });
  meter.onServerText(
    JSON.stringify({ type: "session.created", session: { model: "gpt-realtime" } }),
  );
  meter.onServerText(
    JSON.stringify({ type: "response.output_text.delta", delta: "response.done" }),
  );
  meter.onServerText(done({
    input_tokens: 12,
    output_tokens: 4,
    input_token_details: { text_tokens: 12, audio_tokens: 0, cached_tokens: 0 },
    output_token_details: { text_tokens: 4, audio_tokens: 0 },
  }));
  meter.onServerText(done({
    input_tokens: 112,
    output_tokens: 44,
    input_token_details: { text_tokens: 12, audio_tokens: 100, cached_tokens: 8 },
    output_token_details: { text_tokens: 4, audio_tokens: 40 },
  }));
  meter.onServerText(done({ input_tokens: 3, output_tokens: 1 })); // details missing: still counted
  meter.onServerText('{"type":"response.done","response":{"usage":null}}');
  meter.onServerText("not json response.done");
  const r = meter.end();
  assert.equal(meter.responses, 4);
  assert.equal(r.complete, true);
  assert.equal(r.model, "gpt-realtime");
  assert.equal(r.promptTokens, 112);
  assert.equal(r.usage!.inputTokens, 12 + 104 + 3);
  assert.equal(r.usage!.cachedInputTokens, 8);
  assert.equal(r.usage!.audioInputTokens, 100);
  assert.equal(r.usage!.outputTokens, 4 + 44 + 1);
  assert.equal(r.usage!.audioOutputTokens, 40);
});
