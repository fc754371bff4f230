import assert from "node:assert/strict";
import { createGeminiMeter, geminiMethodOf, mapGeminiUsage } from "./gemini.ts";
import type { Meter } from "../vendors/types.ts";

const enc = new TextEncoder();
const GEN = "/v1beta/models/gemini-3.5-flash:generateContent";
const STREAM = "/v1beta/models/gemini-3.5-flash:streamGenerateContent?alt=sse";

const usage = (candidates: number, extra: Record<string, number> = {}) => ({
  promptTokenCount: 100,
  candidatesTokenCount: candidates,
  totalTokenCount: 100 + candidates,
  ...extra,
});
const chunk = (text: string, u: unknown, finish?: string) => ({
  candidates: [{
    content: { parts: [{ text }], role: "model" },
    ...(finish ? { finishReason: finish } : {}),
    index: 0,
  }],
  usageMetadata: u,
  modelVersion: "gemini-3.5-flash",
  responseId: "abc",
});

/** Feeds `bytes` in pieces of `size` (every split point, including inside CRLF). */
function feed(meter: Meter, bytes: Uint8Array, size: number) {
  for (let i = 0; i < bytes.length; i += size) meter.push(bytes.subarray(i, i + size));
  return meter.end();
}

Deno.test("mapGeminiUsage: cached out of input, thoughts and tool-use prompt counted", () => {
  const mapped = mapGeminiUsage({
    promptTokenCount: 1000,
    cachedContentTokenCount: 600,
    candidatesTokenCount: 50,
    thoughtsTokenCount: 30,
    toolUsePromptTokenCount: 7,
    totalTokenCount: 1087,
  })!;
  assert.equal(mapped.usage.inputTokens, 407);
  assert.equal(mapped.usage.cachedInputTokens, 600);
  assert.equal(mapped.usage.outputTokens, 80);
  assert.equal(mapped.usage.reasoningTokens, 30);
  assert.equal(mapped.promptTokens, 1007);
  assert.equal(mapGeminiUsage(null), null);
  assert.equal(mapGeminiUsage({ promptTokenCount: -3 })!.usage.inputTokens, 0);
});

Deno.test("geminiMethodOf reads the method after the model", () => {
  assert.equal(geminiMethodOf(STREAM), "streamGenerateContent");
  assert.equal(geminiMethodOf("/v1/models/x:countTokens"), "countTokens");
  assert.equal(geminiMethodOf("/v1beta/models"), null);
});

Deno.test("JSON generateContent: top-level usageMetadata and modelVersion", () => {
  const body = enc.encode(JSON.stringify(chunk("hi", usage(5, { thoughtsTokenCount: 2 }), "STOP")));
  for (const size of [1, 7, body.length]) {
    const r = feed(createGeminiMeter({ path: GEN, contentType: "application/json" }), body, size);
    assert.equal(r.complete, true);
    assert.equal(r.model, "gemini-3.5-flash");
    assert.equal(r.usage!.inputTokens, 100);
    assert.equal(r.usage!.outputTokens, 7);
    assert.equal(r.usage!.reasoningTokens, 2);
  }
});

Deno.test("SSE with CRLF framing: the last running usage wins; finishReason completes", () => {
  const frames = [
    chunk("a", usage(1)),
    chunk("b", usage(2)),
    chunk("c", usage(9, { cachedContentTokenCount: 40 }), "STOP"),
  ].map((c) => `data: ${JSON.stringify(c)}\r\n\r\n`).join("");
  const bytes = enc.encode(frames);
  for (const size of [1, 2, 3, 64, bytes.length]) {
    const r = feed(
      createGeminiMeter({ path: STREAM, contentType: "text/event-stream" }),
      bytes,
      size,
    );
    assert.equal(r.complete, true, `size ${size}`);
    assert.equal(r.usage!.outputTokens, 9);
    assert.equal(r.usage!.inputTokens, 60);
    assert.equal(r.usage!.cachedInputTokens, 40);
    assert.equal(r.promptTokens, 100);
    assert.equal(r.model, "gemini-3.5-flash");
  }
  // Cut before the finishing chunk: usage so far, not complete.
  const cut = enc.encode(
    [chunk("a", usage(1)), chunk("b", usage(2))].map((c) => `data: ${JSON.stringify(c)}\r\n\r\n`)
      .join(""),
  );
  const r = feed(createGeminiMeter({ path: STREAM, contentType: "text/event-stream" }), cut, 5);
  assert.equal(r.complete, false);
  assert.equal(r.usage!.outputTokens, 2);
});

Deno.test("SSE: an error chunk makes the response incomplete", () => {
  const bytes = enc.encode(
    `data: ${JSON.stringify(chunk("a", usage(1)))}\r\n\r\n` +
      `data: {"error":{"code":500,"message":"x","status":"INTERNAL"}}\r\n\r\n`,
  );
  const r = feed(createGeminiMeter({ path: STREAM, contentType: "text/event-stream" }), bytes, 4);
  assert.equal(r.complete, false);
  assert.equal(r.usage!.outputTokens, 1);
});

Deno.test("SSE: an oversized event is read from its tail", () => {
  const big = chunk("x".repeat(5000), usage(77), "STOP");
  const bytes = enc.encode(`data: ${JSON.stringify(big)}\r\n\r\n`);
  const meter = createGeminiMeter({
    path: STREAM,
    contentType: "text/event-stream",
    maxEventBytes: 1024,
  });
  const r = feed(meter, bytes, 100);
  assert.equal(r.usage!.outputTokens, 77);
  assert.equal(r.complete, true);
  assert.equal(r.model, "gemini-3.5-flash");
});

Deno.test("stream without alt=sse: a JSON array, last element; large bodies from the tail", () => {
  const path = "/v1beta/models/gemini-3.5-flash:streamGenerateContent";
  const items = [chunk("a", usage(1)), chunk("b".repeat(3000), usage(3), "STOP")];
  const bytes = enc.encode("[" + items.map((c) => JSON.stringify(c, null, 2)).join(",\r\n") + "]");
  const small = feed(createGeminiMeter({ path, contentType: "application/json" }), bytes, 10);
  assert.equal(small.usage!.outputTokens, 3);
  assert.equal(small.complete, true);
  const windowed = feed(
    createGeminiMeter({
      path,
      contentType: "application/json",
      maxFullBytes: 512,
      tailBytes: 2048,
    }),
    bytes,
    10,
  );
  assert.equal(windowed.usage!.outputTokens, 3);
  assert.equal(windowed.model, "gemini-3.5-flash");
  assert.equal(windowed.complete, true);
});

Deno.test("countTokens and unknown content types are not billed", () => {
  const count = createGeminiMeter({
    path: "/v1beta/models/gemini-3.5-flash:countTokens",
    contentType: "application/json",
  });
  count.push(enc.encode('{"totalTokens":5}'));
  assert.deepEqual(count.end(), { usage: null, promptTokens: 0, complete: true });
  const other = createGeminiMeter({ path: GEN, contentType: "text/html" });
  other.push(enc.encode("<html>"));
  assert.equal(other.end().usage, null);
});

Deno.test("embeddings: complete without usage; usageMetadata when present", () => {
  const path = "/v1beta/models/gemini-embedding-001:batchEmbedContents";
  const plain = feed(
    createGeminiMeter({ path, contentType: "application/json" }),
    enc.encode('{"embeddings":[{"values":[0.1,0.2]}]}'),
    3,
  );
  assert.equal(plain.usage, null);
  assert.equal(plain.complete, true);
  const withUsage = feed(
    createGeminiMeter({ path, contentType: "application/json" }),
    enc.encode('{"embeddings":[{"values":[0.1]}],"usageMetadata":{"promptTokenCount":4}}'),
    3,
  );
  assert.equal(withUsage.usage!.inputTokens, 4);
});
