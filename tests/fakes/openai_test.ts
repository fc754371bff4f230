/**
 * The fake OpenAI upstream, driven by the real `openai` SDK (and raw fetch where the exact bytes
 * matter). Each test owns its fake and closes it, so the sanitizers stay on.
 */
import assert from "node:assert/strict";
import OpenAI, { toFile } from "openai";
import { type FakeOpenAI, type FakeRequestRecord, startFakeOpenAI } from "./openai.ts";

const KEY = "sk-test-fake-0123456789";
const QUOTA_KEY = "sk-test-quota-000000";

async function withFake(fn: (fake: FakeOpenAI, client: OpenAI) => Promise<void>) {
  const fake = await startFakeOpenAI({ keys: [KEY, QUOTA_KEY], quotaExhaustedKeys: [QUOTA_KEY] });
  try {
    await fn(fake, new OpenAI({ apiKey: KEY, baseURL: `${fake.url}/v1`, maxRetries: 0 }));
  } finally {
    await fake.close();
  }
}

function post(fake: FakeOpenAI, path: string, body: unknown, init: RequestInit = {}) {
  return fetch(`${fake.url}/v1${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...init,
  });
}

const user = (content: string) => [{ role: "user" as const, content }];

async function waitFor(cond: () => boolean, ms = 2000) {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 2));
  }
}

const last = (fake: FakeOpenAI): FakeRequestRecord => fake.requests.at(-1)!;

Deno.test("chat non-stream: full chat.completion with usage details", () =>
  withFake(async (fake, client) => {
    const { data, response } = await client.chat.completions
      .create({ model: "gpt-4o-mini", messages: user("hello there") })
      .withResponse();
    assert.equal(data.object, "chat.completion");
    assert.match(data.id, /^chatcmpl-[A-Za-z0-9]{29}$/);
    const text = data.choices[0]!.message.content!;
    assert.ok(text.startsWith("Echo: hello there "), text);
    assert.equal(data.choices[0]!.finish_reason, "stop");
    assert.equal(data.service_tier, "default");
    assert.match(data.system_fingerprint!, /^fp_[0-9a-f]{10}$/);
    const u = data.usage!;
    assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
    assert.deepEqual(u.prompt_tokens_details, { cached_tokens: 0, audio_tokens: 0 });
    assert.equal(u.completion_tokens_details!.reasoning_tokens, 0);
    assert.match(response.headers.get("x-request-id")!, /^req_[0-9a-f]{32}$/);
    assert.ok(Number(response.headers.get("openai-processing-ms")) >= 1);
    const rec = last(fake);
    assert.equal(rec.status, 200);
    assert.equal(rec.key, KEY);
    assert.equal(rec.model, "gpt-4o-mini");
    assert.match(rec.headers["user-agent"]!, /^OpenAI\/JS /);

    const reasoning = await client.chat.completions.create({
      model: "o4-mini",
      messages: user("x"),
    });
    assert.ok(reasoning.usage!.completion_tokens_details!.reasoning_tokens! > 0);
    const words = await client.chat.completions.create({
      model: "gpt-4o",
      messages: user("[[words:1000]]"),
    });
    assert.equal(words.choices[0]!.message.content!.split(" ").length, 1001);
    const cut = await client.chat.completions.create({
      model: "gpt-4o",
      messages: user("long [[words:500]]"),
      max_completion_tokens: 20,
    });
    assert.equal(cut.choices[0]!.finish_reason, "length");
    assert.equal(cut.usage!.completion_tokens, 20);
  }));

Deno.test("chat stream with include_usage: usage:null chunks, then choices:[] usage chunk", () =>
  withFake(async (_fake, client) => {
    const body = { model: "gpt-4o-mini", messages: user("stream me") };
    const whole = await client.chat.completions.create(body);
    const stream = await client.chat.completions.create({
      ...body,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.equal(chunks[0]!.choices[0]!.delta.role, "assistant");
    const usageChunk = chunks.at(-1)!;
    assert.deepEqual(usageChunk.choices, []);
    assert.deepEqual(usageChunk.usage, whole.usage);
    assert.ok(chunks.slice(0, -1).every((c) => c.usage === null));
    assert.equal(chunks.at(-2)!.choices[0]!.finish_reason, "stop");
    assert.ok(chunks.length > 5);
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    assert.equal(text, whole.choices[0]!.message.content);
    assert.ok(chunks.every((c) => c.id === whole.id && c.created === whole.created));
  }));

Deno.test("chat stream without include_usage: no usage key anywhere in the raw SSE", () =>
  withFake(async (fake) => {
    const res = await post(fake, "/chat/completions", {
      model: "gpt-4o",
      messages: user("raw bytes please"),
      stream: true,
    });
    assert.equal(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
    const raw = await res.text();
    assert.ok(!raw.includes('"usage"'), raw);
    assert.ok(raw.endsWith("data: [DONE]\n\n"));
    const frames = raw.split("\n\n").filter(Boolean);
    assert.ok(frames.every((f) => f.startsWith("data: ")));
    assert.ok(frames.length > 5);
  }));

Deno.test("responses: stream events in order, usage in response.completed; non-stream", () =>
  withFake(async (_fake, client) => {
    const stream = client.responses.stream({ model: "gpt-4.1", input: "hi there" });
    const types: string[] = [];
    const seqs: number[] = [];
    for await (const ev of stream) types.push(ev.type), seqs.push(ev.sequence_number);
    const final = await stream.finalResponse();
    assert.deepEqual(seqs, seqs.map((_, i) => i));
    assert.deepEqual(types.slice(0, 4), [
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
    ]);
    assert.ok(types.filter((t) => t === "response.output_text.delta").length > 3);
    assert.deepEqual(types.slice(-4), [
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);
    assert.ok(final.output_text.startsWith("Echo: hi there "));
    const u = final.usage!;
    assert.equal(u.total_tokens, u.input_tokens + u.output_tokens);
    const plain = await client.responses.create({ model: "gpt-4.1", input: "hi there" });
    assert.equal(plain.id, final.id);
    assert.equal(plain.output_text, final.output_text);
    assert.deepEqual(plain.usage, u);
    const o = await client.responses.create({ model: "o4-mini", input: "think" });
    assert.equal(o.output[0]!.type, "reasoning");
    assert.ok(o.usage!.output_tokens_details.reasoning_tokens > 0);
  }));

Deno.test("embeddings: SDK's default base64 decodes to the same floats as float format", () =>
  withFake(async (fake, client) => {
    const b64 = await client.embeddings.create({
      model: "text-embedding-3-small",
      input: ["hello", "world"],
      dimensions: 8,
    });
    assert.equal(fake.requests.length, 1);
    const floats = await client.embeddings.create({
      model: "text-embedding-3-small",
      input: ["hello", "world"],
      dimensions: 8,
      encoding_format: "float",
    });
    assert.equal(b64.data.length, 2);
    for (const [i, d] of b64.data.entries()) {
      assert.equal(d.embedding.length, 8);
      assert.deepEqual(d.embedding, floats.data[i]!.embedding.map(Math.fround));
      assert.ok(Math.abs(Math.hypot(...d.embedding) - 1) < 1e-5);
    }
    assert.notDeepEqual(b64.data[0]!.embedding, b64.data[1]!.embedding);
    assert.deepEqual(b64.usage, { prompt_tokens: 2, total_tokens: 2 });
    const full = await client.embeddings.create({ model: "text-embedding-3-small", input: "x" });
    assert.equal(full.data[0]!.embedding.length, 1536);
  }));

Deno.test("images, speech, transcription, translation, moderation, models", () =>
  withFake(async (fake, client) => {
    const img = await client.images.generate({ model: "gpt-image-1", prompt: "a cat" });
    const png = Uint8Array.from(atob(img.data![0]!.b64_json!), (c) => c.charCodeAt(0));
    assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
    assert.equal(img.usage!.output_tokens, 4160);
    const edit = await client.images.edit({
      model: "gpt-image-1",
      image: await toFile(png, "a.png", { type: "image/png" }),
      prompt: "make it blue",
    });
    assert.equal(edit.usage!.input_tokens_details.image_tokens, 323);

    const speech = await client.audio.speech.create({
      model: "gpt-4o-mini-tts",
      voice: "alloy",
      input: "hello world",
    });
    assert.equal(speech.headers.get("content-type"), "audio/mpeg");
    const audio = new Uint8Array(await speech.arrayBuffer());
    assert.equal(audio.length, 11 * 400);
    assert.equal(new TextDecoder().decode(audio.subarray(0, 3)), "ID3");

    const wav = new TextEncoder().encode("RIFF\0\0\0\0WAVEfmt fakeaudiodata");
    const file = () => toFile(wav, "a.wav", { type: "audio/wav" });
    const t = await client.audio.transcriptions.create({
      model: "gpt-4o-transcribe",
      file: await file(),
    });
    assert.ok(t.text.startsWith("Transcript of a.wav (29 bytes)"), t.text);
    assert.equal(t.usage!.type, "tokens");
    const w = await client.audio.transcriptions.create({ model: "whisper-1", file: await file() });
    assert.deepEqual(w.usage, { type: "duration", seconds: 1 });
    assert.equal(last(fake).bodyBytes > wav.length, true);
    const tr = await client.audio.translations.create({ model: "whisper-1", file: await file() });
    assert.ok(tr.text.startsWith("Translation of a.wav"));

    const mod = await client.moderations.create({ input: ["this is Forbidden!", "all fine"] });
    assert.equal(mod.model, "omni-moderation-latest");
    assert.deepEqual(mod.results.map((r) => r.flagged), [true, false]);
    assert.equal(mod.results[0]!.categories.illicit, true);

    const ids: string[] = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.ok(["gpt-4o", "whisper-1", "omni-moderation-latest"].every((id) => ids.includes(id)));
    assert.equal((await client.models.retrieve("o4-mini")).id, "o4-mini");
    await assert.rejects(client.models.retrieve("nope"), OpenAI.NotFoundError);
  }));

Deno.test("auth and error envelopes: invalid key, exhausted quota, bad JSON, 404, 405", () =>
  withFake(async (fake) => {
    const bad = new OpenAI({
      apiKey: "sk-abcdefwrongxyz",
      baseURL: `${fake.url}/v1`,
      maxRetries: 0,
    });
    const e1 = await bad.chat.completions.create({ model: "gpt-4o", messages: user("x") })
      .catch((e) => e);
    assert.ok(e1 instanceof OpenAI.AuthenticationError);
    assert.equal(e1.code, "invalid_api_key");
    assert.match(e1.message, /Incorrect API key provided: sk-ab\*\*\*yz\./);
    assert.match(e1.requestID!, /^req_/);
    const quota = new OpenAI({ apiKey: QUOTA_KEY, baseURL: `${fake.url}/v1`, maxRetries: 0 });
    const e2 = await quota.embeddings.create({ model: "text-embedding-3-small", input: "x" })
      .catch((e) => e);
    assert.ok(e2 instanceof OpenAI.RateLimitError);
    assert.equal(e2.code, "insufficient_quota");
    assert.equal(e2.type, "insufficient_quota");
    assert.deepEqual(fake.requests.map((r) => r.status), [401, 429]);

    const cases: [Promise<Response>, number, string | null][] = [
      [post(fake, "/chat/completions", "{not json"), 400, null],
      [post(fake, "/chat/completions", { messages: user("x") }), 400, null],
      [post(fake, "/chat/completions", { model: "gpt-4o" }), 400, "missing_required_parameter"],
      [post(fake, "/nope", {}), 404, null],
      [fetch(`${fake.url}/v1/chat/completions`), 405, null],
      [fetch(`${fake.url}/v1/models`), 401, null],
      [
        post(fake, "/chat/completions", { model: "m", messages: user("[[status:503]]") }),
        503,
        null,
      ],
    ];
    for (const [pending, status, code] of cases) {
      const res = await pending;
      const body = await res.json();
      assert.equal(res.status, status);
      assert.deepEqual(Object.keys(body.error), ["message", "type", "param", "code"]);
      assert.equal(body.error.code, code);
      assert.match(res.headers.get("x-request-id")!, /^req_/);
    }
  }));

Deno.test("determinism: identical requests give byte-identical bodies, key order irrelevant", () =>
  withFake(async (fake) => {
    const body = {
      model: "gpt-4o",
      messages: user("same again"),
      stream: true,
      stream_options: { include_usage: true },
    };
    const reordered = `{"stream_options":{"include_usage":true},"stream":true,
      "messages":[{"content":"same again","role":"user"}],"model":"gpt-4o"}`;
    const runs = [];
    for (const b of [body, body, reordered]) {
      const res = await post(fake, "/chat/completions", b);
      runs.push([res.headers.get("x-request-id"), await res.text()]);
    }
    assert.deepEqual(runs[0], runs[1]);
    assert.deepEqual(runs[0], runs[2]);
    const other = await post(fake, "/chat/completions", { ...body, messages: user("different") });
    assert.notEqual(await other.text(), runs[0]![1]);
    const resp = [];
    for (let i = 0; i < 2; i++) {
      const r = await post(fake, "/responses", { model: "o4-mini", input: "x", stream: true });
      resp.push(await r.text());
    }
    assert.equal(resp[0], resp[1]);
    assert.ok(!resp[0]!.includes("[DONE]"));
  }));

Deno.test("cancellation: the fake records a client disconnect within 100 ms", () =>
  withFake(async (fake) => {
    fake.setChunkDelayMs(30);
    const ac = new AbortController();
    const res = await post(fake, "/chat/completions", {
      model: "gpt-4o",
      messages: user("slow [[words:10000]]"),
      stream: true,
    }, { signal: ac.signal });
    const reader = res.body!.getReader();
    for (let i = 0; i < 3; i++) await reader.read();
    const rec = last(fake);
    const abortAt = performance.now();
    ac.abort();
    await reader.read().catch(() => {});
    await waitFor(() => rec.cancelledAt !== undefined);
    assert.ok(rec.cancelledAt! - abortAt < 100, `${rec.cancelledAt! - abortAt} ms`);
    assert.equal(rec.endedAt, undefined);

    // A non-stream reply still "thinking" ([[delay:MS]]) sees the disconnect too.
    const ac2 = new AbortController();
    const pending = post(fake, "/chat/completions", {
      model: "gpt-4o",
      messages: user("think [[delay:5000]]"),
    }, { signal: ac2.signal });
    const res2 = await pending;
    const reader2 = res2.body!.getReader();
    const read = reader2.read().catch(() => null);
    await new Promise((r) => setTimeout(r, 50));
    const abort2 = performance.now();
    ac2.abort();
    await read;
    const rec2 = last(fake);
    await waitFor(() => rec2.cancelledAt !== undefined);
    assert.ok(rec2.cancelledAt! - abort2 < 100);
  }));

Deno.test("50 MB streamed response ([[bytes:N]]) and 50 MB uploads", () =>
  withFake(async (fake, client) => {
    const N = 52_428_800;
    const res = await post(fake, "/chat/completions", {
      model: "gpt-4o",
      messages: user(`[[bytes:${N}]]`),
      stream: true,
      stream_options: { include_usage: true },
    });
    let wire = 0;
    let content = 0;
    let frames = 0;
    let usage: { completion_tokens: number } | undefined;
    let buf = "";
    const decoder = new TextDecoder();
    for await (const chunk of res.body!) {
      wire += chunk.length;
      buf += decoder.decode(chunk, { stream: true });
      for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
        const data = buf.slice(6, i);
        buf = buf.slice(i + 2);
        frames++;
        if (data === "[DONE]") continue;
        const c = JSON.parse(data);
        content += c.choices[0]?.delta.content?.length ?? 0;
        usage = c.usage ?? usage;
      }
    }
    assert.equal(content, N);
    assert.ok(wire > N && frames > 3000, `${wire} bytes in ${frames} frames`);
    assert.ok(usage!.completion_tokens > 1_000_000);
    assert.equal(last(fake).endedAt !== undefined, true);

    const big = "x ".repeat(N / 2);
    const chat = await client.chat.completions.create({ model: "gpt-4o", messages: user(big) });
    assert.ok(last(fake).bodyBytes > N);
    const p = chat.usage!.prompt_tokens;
    assert.equal(p, N / 2 + 6);
    assert.equal(chat.usage!.prompt_tokens_details!.cached_tokens, Math.floor(p / 2 / 64) * 64);
    const upload = await client.audio.transcriptions.create({
      model: "whisper-1",
      file: await toFile(new Uint8Array(N), "big.wav", { type: "audio/wav" }),
    });
    assert.deepEqual(upload.usage, { type: "duration", seconds: Math.ceil(N / 32000) });
    assert.ok(last(fake).bodyBytes > N);
  }));

Deno.test("completions, [[cut:N]] / [[eof:N]] truncation, close() ends live streams", () =>
  withFake(async (fake, client) => {
    const c = await client.completions.create({ model: "gpt-3.5-turbo-instruct", prompt: "hey" });
    assert.equal(c.object, "text_completion");
    assert.ok(c.choices[0]!.text.startsWith("Echo: hey "));
    const cut = await client.chat.completions.create({
      model: "gpt-4o",
      messages: user("drop [[cut:3]] [[words:50]]"),
      stream: true,
    });
    await assert.rejects(async () => {
      for await (const _ of cut) { /* drain */ }
    });
    const eof = await post(fake, "/chat/completions", {
      model: "gpt-4o",
      messages: user("end early [[eof:3]]"),
      stream: true,
      stream_options: { include_usage: true },
    });
    const frames = (await eof.text()).split("\n\n").filter(Boolean);
    assert.equal(frames.length, 3);
    assert.ok(frames.every((f) => f.includes('"usage":null')));
    fake.setChunkDelayMs(1000);
    const res = await post(fake, "/chat/completions", {
      model: "gpt-4o",
      messages: user("long"),
      stream: true,
    });
    const reader = res.body!.getReader();
    await reader.read();
    const t = performance.now();
    const [, tail] = await Promise.all([fake.close(), reader.read()]);
    assert.equal(tail.done, true);
    assert.ok(performance.now() - t < 500);
    assert.ok(last(fake).cancelledAt !== undefined);
  }));
