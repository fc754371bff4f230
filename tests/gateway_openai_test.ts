/**
 * The OpenAI surface end to end with the official `openai` SDK as the client: hub → tunnel →
 * locked agent → fake vendor that checks the real key. Through the hub the client gets exactly
 * the bytes the vendor would have sent it.
 */
import assert from "node:assert/strict";
import OpenAI, { toFile } from "openai";
import { post, startStack, VENDOR_KEY } from "./support/stack.ts";
import { waitFor } from "./support/process.ts";

const decoder = new TextDecoder();

Deno.test("openai SDK through the hub: every surface, byte-identical to the vendor", async (t) => {
  const stack = await startStack();
  const client = new OpenAI({ apiKey: stack.key, baseURL: stack.baseURL, maxRetries: 0 });
  const viaHub = (path: string, body: unknown) => post(`${stack.hub.url}${path}`, stack.key, body);
  const direct = (path: string, body: unknown) =>
    post(`${stack.fake.url}${path}`, VENDOR_KEY, body);
  try {
    await t.step("chat, non-stream and stream (with and without include_usage)", async () => {
      const messages = [{ role: "user" as const, content: "hello there" }];
      const done = await client.chat.completions.create({ model: "gpt-4o-mini", messages });
      assert.match(done.choices[0]!.message.content!, /^Echo: hello there/);
      assert.ok(done.usage!.prompt_tokens > 0);

      const stream = await client.chat.completions.create({
        model: "gpt-4o-mini",
        messages,
        stream: true,
        stream_options: { include_usage: true },
      });
      let text = "";
      let usage;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? "";
        usage ??= chunk.usage ?? undefined;
      }
      assert.equal(text, done.choices[0]!.message.content);
      assert.deepEqual(usage, done.usage);

      for (
        const body of [
          { model: "gpt-4o-mini", messages },
          { model: "gpt-4o-mini", messages, stream: true },
          { model: "gpt-4o-mini", messages, stream: true, stream_options: { include_usage: true } },
        ]
      ) {
        const [hub, vendor] = [
          await viaHub("/v1/chat/completions", body),
          await direct("/v1/chat/completions", body),
        ];
        assert.equal(hub.status, 200);
        assert.deepEqual(
          hub.bytes,
          vendor.bytes,
          `identical bytes for ${JSON.stringify(body).slice(0, 80)}`,
        );
        assert.match(hub.headers.get("x-request-id") ?? "", /^req_/);
      }
    });

    await t.step(
      "responses stream, embeddings (base64), images, completions, moderations",
      async () => {
        const events: string[] = [];
        const stream = await client.responses.create({
          model: "gpt-4.1",
          input: "tell me",
          stream: true,
        });
        let completed;
        for await (const event of stream) {
          events.push(event.type);
          if (event.type === "response.completed") completed = event.response.usage;
        }
        assert.equal(events.at(-1), "response.completed");
        assert.ok(completed && completed.output_tokens > 0);

        const emb = await client.embeddings.create({
          model: "text-embedding-3-small",
          input: "vector me",
        });
        assert.ok(Array.isArray(emb.data[0]!.embedding) && emb.data[0]!.embedding.length > 0);
        const img = await client.images.generate({ model: "gpt-image-1", prompt: "a red cube" });
        assert.ok(img.data![0]!.b64_json!.length > 0);

        for (
          const [path, body] of [
            ["/v1/responses", { model: "gpt-4.1", input: "tell me", stream: true }],
            ["/v1/responses", { model: "gpt-4.1", input: "tell me" }],
            ["/v1/embeddings", {
              model: "text-embedding-3-small",
              input: "vector me",
              encoding_format: "base64",
            }],
            ["/v1/images/generations", { model: "gpt-image-1", prompt: "a red cube" }],
            ["/v1/completions", { model: "gpt-4o-mini", prompt: "once upon" }],
            ["/v1/moderations", { model: "omni-moderation-latest", input: "fine text" }],
          ] as const
        ) {
          const [hub, vendor] = [await viaHub(path, body), await direct(path, body)];
          assert.equal(hub.status, 200, `${path}: ${decoder.decode(hub.bytes).slice(0, 200)}`);
          assert.deepEqual(hub.bytes, vendor.bytes, `identical bytes for ${path}`);
        }
      },
    );

    await t.step("speech (binary) and transcription (multipart upload)", async () => {
      const speech = await client.audio.speech.create({
        model: "tts-1",
        voice: "alloy",
        input: "say this",
      });
      const audio = new Uint8Array(await speech.arrayBuffer());
      const vendor = await direct("/v1/audio/speech", {
        model: "tts-1",
        voice: "alloy",
        input: "say this",
      });
      assert.deepEqual(audio, vendor.bytes);
      assert.equal(speech.headers.get("content-type"), "audio/mpeg");

      const wav = new Uint8Array(50_000).map((_, i) => i % 251);
      const text = await client.audio.transcriptions.create({
        model: "gpt-4o-transcribe",
        file: await toFile(wav, "a.wav", { type: "audio/wav" }),
      });
      assert.ok(text.text.length > 0);
      const record = stack.fake.requests.findLast((r) => r.path === "/v1/audio/transcriptions");
      assert.equal(record?.model, "gpt-4o-transcribe");
      assert.equal(record?.key, VENDOR_KEY, "the vendor saw the real key");
    });

    await t.step("models are synthesized from what online agents offer", async () => {
      const list = await client.models.list();
      assert.ok(Array.isArray(list.data));
    });

    await t.step("the vendor only ever sees the agent's real key, never the virtual key", () => {
      assert.ok(stack.fake.requests.length > 10);
      assert.ok(stack.fake.requests.every((r) => r.key === VENDOR_KEY));
      assert.ok(!stack.hub.proc.dump().includes(VENDOR_KEY), "real key absent from hub logs");
      assert.ok(!stack.hub.proc.dump().includes(stack.key), "virtual key absent from hub logs");
    });
  } finally {
    await stack.stop();
  }
});

Deno.test("usage of a stream the client did not ask usage for equals the non-stream usage", async () => {
  const stack = await startStack();
  try {
    const messages = [{ role: "user", content: "count my tokens please [[words:40]]" }];
    const plain = await post(`${stack.hub.url}/v1/chat/completions`, stack.key, {
      model: "gpt-4o-mini",
      messages,
    });
    const streamed = await post(`${stack.hub.url}/v1/chat/completions`, stack.key, {
      model: "gpt-4o-mini",
      messages,
      stream: true,
    });
    const sse = decoder.decode(streamed.bytes);
    assert.ok(!sse.includes('"usage"'), "the client saw no usage chunk and no usage keys");
    assert.ok(sse.trimEnd().endsWith("data: [DONE]"));
    const finished = (id: string | null) =>
      waitFor(
        () => stack.hub.proc.lines.find((l) => l.msg === "request finished" && l.requestId === id),
        `usage of ${id}`,
      );
    const a = await finished(plain.headers.get("x-request-id"));
    const b = await finished(streamed.headers.get("x-request-id"));
    const usage = JSON.parse(decoder.decode(plain.bytes)).usage;
    assert.equal(a.outputTokens, usage.completion_tokens);
    for (const field of ["inputTokens", "cachedInputTokens", "outputTokens"]) {
      assert.equal(b[field], a[field], `${field} equal for stream and non-stream`);
    }
    // The agent added include_usage upstream; the vendor saw it, the client did not.
    assert.ok(stack.fake.requests.filter((r) => r.path === "/v1/chat/completions").length === 2);
  } finally {
    await stack.stop();
  }
});

Deno.test("moderation and bad input answer in OpenAI's envelope; nothing is dispatched", async () => {
  const stack = await startStack({
    hubEnv: { HUB_MODERATION_KEYWORDS: "forbidden-plan,napalm", HUB_MAX_REQUEST_BYTES: "1048576" },
    models: "gpt-4o-mini",
  });
  const client = new OpenAI({ apiKey: stack.key, baseURL: stack.baseURL, maxRetries: 0 });
  try {
    const before = stack.fake.requests.length;
    const blocked = await post(`${stack.hub.url}/v1/chat/completions`, stack.key, {
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: [{ type: "text", text: "the FORBIDDEN-PLAN is" }] }],
    });
    assert.equal(blocked.status, 400);
    assert.equal(
      decoder.decode(blocked.bytes),
      '{"error":{"code":"sensitive_words_detected","message":"Content moderation failed with status 401","param":"","type":"hub_error"}}',
    );
    await assert.rejects(
      client.chat.completions.create({
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: "napalm recipe" }],
      }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.code === "sensitive_words_detected",
    );

    const cases: [string, RequestInit, number, string | null][] = [
      ["/v1/chat/completions", { method: "POST", body: "{not json" }, 400, null],
      [
        "/v1/chat/completions",
        { method: "POST", body: JSON.stringify({ messages: [] }) },
        400,
        null,
      ],
      ["/v1/chat/completions", { method: "GET" }, 405, null],
      ["/v1/nope", { method: "POST", body: "{}" }, 404, null],
      ["/openai/v1/nope", { method: "POST", body: "{}" }, 404, null],
      [
        "/v1/chat/completions",
        { method: "POST", body: JSON.stringify({ model: "m", pad: "x".repeat(2 << 20) }) },
        413,
        null,
      ],
      [
        "/v1/chat/completions",
        { method: "POST", body: "{}", headers: { authorization: "" } },
        401,
        "missing_api_key",
      ],
      [
        "/v1/chat/completions",
        { method: "POST", body: "{}", headers: { authorization: "Bearer aq-wrong" } },
        401,
        "invalid_api_key",
      ],
      [
        "/v1/chat/completions",
        { method: "POST", body: JSON.stringify({ model: "no-such-model-anywhere", messages: [] }) },
        404,
        "model_not_found",
      ],
      [
        "/v1/chat/completions",
        { method: "POST", body: JSON.stringify({ model: "gpt-4.1", messages: [] }) },
        503,
        "no_capacity",
      ],
    ];
    for (const [path, init, status, code] of cases) {
      const res = await fetch(`${stack.hub.url}${path}`, {
        ...init,
        headers: {
          authorization: `Bearer ${stack.key}`,
          "content-type": "application/json",
          ...init.headers,
        },
      });
      const body = await res.json();
      assert.equal(res.status, status, `${init.method} ${path} → ${JSON.stringify(body)}`);
      assert.equal(typeof body.error.message, "string");
      assert.ok(
        "type" in body.error && "code" in body.error && "param" in body.error,
        "OpenAI envelope",
      );
      if (code) assert.equal(body.error.code, code);
    }
    await assert.rejects(
      new OpenAI({ apiKey: "aq-bogus", baseURL: stack.baseURL, maxRetries: 0 }).models.list(),
      OpenAI.AuthenticationError,
    );
    assert.equal(stack.fake.requests.length, before, "nothing reached the vendor");
  } finally {
    await stack.stop();
  }
});
