import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { type JsonTailOptions, JsonUsageTail } from "./json_tail.ts";
import { seededRandom } from "../prng.ts";

const enc = new TextEncoder();

function envSeed(): number {
  try {
    const s = Deno.env.get("METER_SEED");
    if (s) return Number(s);
  } catch { /* no env permission */ }
  return Date.now() % 0x7fffffff;
}

/** Splits `bytes` into random chunks of 1 byte .. 64 KiB. */
function randomChunks(bytes: Uint8Array, rnd: () => number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length;) {
    const n = 1 + Math.floor(rnd() ** 3 * 65536);
    out.push(bytes.subarray(i, i + n));
    i += n;
  }
  return out;
}

function run(chunks: Uint8Array[], options?: JsonTailOptions) {
  const t = new JsonUsageTail(options);
  for (const c of chunks) t.push(c);
  return t.end();
}

function b64(n: number, rnd: () => number): string {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = Math.floor(rnd() * 256);
  return Buffer.from(bytes).toString("base64");
}

const tricky = 'say "usage":{"prompt_tokens":999} \\" }{ ][ \\\\ é🌍 ';

/** Realistic big bodies (≈5 MB) of each non-stream surface, built with JSON.stringify. */
function bodies(rnd: () => number): Record<string, unknown> {
  const embedding = b64(6144, rnd);
  return {
    embeddings: {
      object: "list",
      data: Array.from({ length: 600 }, (_, index) => ({ object: "embedding", index, embedding })),
      model: "text-embedding-3-small",
      usage: { prompt_tokens: 4321, total_tokens: 4321 },
    },
    chat: {
      id: "chatcmpl-1",
      object: "chat.completion",
      created: 1763780000,
      model: "gpt-4o-mini-2024-07-18",
      choices: [{
        index: 0,
        message: { role: "assistant", content: tricky.repeat(110_000), refusal: null },
        logprobs: null,
        finish_reason: "stop",
      }],
      usage: {
        prompt_tokens: 1200,
        completion_tokens: 900000,
        total_tokens: 901200,
        prompt_tokens_details: { cached_tokens: 1024, audio_tokens: 0 },
        completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0 },
      },
      service_tier: "default",
      system_fingerprint: "fp_1234567890",
    },
    responses: {
      id: "resp_1",
      object: "response",
      created_at: 1763780000,
      status: "completed",
      instructions: null,
      model: "gpt-4.1-2025-04-14",
      output: [{
        type: "message",
        id: "msg_1",
        status: "completed",
        role: "assistant",
        content: [{ type: "output_text", text: tricky.repeat(110_000), annotations: [] }],
      }],
      service_tier: "flex",
      usage: {
        input_tokens: 50,
        input_tokens_details: { cached_tokens: 0 },
        output_tokens: 800000,
        output_tokens_details: { reasoning_tokens: 128 },
        total_tokens: 800050,
      },
      user: null,
      metadata: { note: '"usage":{"fake":1}}' },
    },
    images: {
      created: 1763780000,
      data: [{ b64_json: b64(3_900_000, rnd) }],
      usage: {
        input_tokens: 50,
        input_tokens_details: { text_tokens: 40, image_tokens: 10 },
        output_tokens: 4160,
        total_tokens: 4210,
      },
      background: "opaque",
      output_format: "png",
      quality: "high",
      size: "1024x1024",
    },
  };
}

Deno.test("json_tail: 5 MB bodies split randomly give the same usage as a full parse", () => {
  const seed = envSeed();
  console.log(`json_tail seed: ${seed} (replay with METER_SEED=${seed})`);
  const rnd = seededRandom(seed);
  for (const [name, body] of Object.entries(bodies(rnd))) {
    const text = rnd() < 0.5 ? JSON.stringify(body) : JSON.stringify(body, null, 2) + "\n";
    const bytes = enc.encode(text);
    assert.ok(bytes.length > 4_000_000, `${name} is ${bytes.length} bytes`);
    const full = body as Record<string, unknown>;
    for (let round = 0; round < 3; round++) {
      const got = run(randomChunks(bytes, rnd));
      assert.deepEqual(got.usage, full.usage, `${name} round ${round}`);
      assert.equal(got.model, full.model, name);
      assert.equal(got.serviceTier, full.service_tier, name);
      assert.equal(got.complete, true, name);
      assert.equal(got.windowed, true, name);
    }
    // cut short: not complete, no usage invented
    const cut = run([bytes.subarray(0, bytes.length - 30)]);
    assert.equal(cut.complete, false, name);
    assert.equal(cut.usage, undefined, name);
  }
});

Deno.test("json_tail: small bodies are parsed whole", () => {
  const body = { id: "x", model: "gpt-4.1", usage: { input_tokens: 1 }, service_tier: "default" };
  const bytes = enc.encode(JSON.stringify(body));
  for (let i = 0; i <= bytes.length; i++) {
    const got = run([bytes.subarray(0, i), bytes.subarray(i)]);
    assert.deepEqual(got, {
      usage: { input_tokens: 1 },
      model: "gpt-4.1",
      serviceTier: "default",
      complete: true,
      windowed: false,
    });
  }
  assert.deepEqual(run([enc.encode('{"error":{"message":"no"}}')]), {
    usage: undefined,
    complete: true,
    windowed: false,
  });
  assert.deepEqual(run([enc.encode('{"usage":')]), {
    usage: undefined,
    complete: false,
    windowed: false,
  });
  assert.deepEqual(run([enc.encode("[1,2]")]), {
    usage: undefined,
    complete: true,
    windowed: false,
  });
});

Deno.test("json_tail: usage outside the tail window is not found (no false positive)", () => {
  const body = { usage: { prompt_tokens: 1 }, data: "x".repeat(3000), note: tricky.repeat(50) };
  const bytes = enc.encode(JSON.stringify(body));
  const got = run([bytes], { maxFullBytes: 1000, tailBytes: 1024, headBytes: 16 });
  assert.deepEqual(got, { usage: undefined, complete: true, windowed: true });
  const tiny = run([bytes], { maxFullBytes: 1000, tailBytes: 1024, headBytes: 4096 });
  assert.deepEqual(tiny.usage, undefined); // the head window is never used for usage
});
