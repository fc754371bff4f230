/**
 * The fake Anthropic upstream, driven by the official `@anthropic-ai/sdk` (and raw fetch where the
 * exact bytes or headers matter). Each test owns its fake and closes it.
 */
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { type FakeAnthropic, LOW_CREDIT_MESSAGE, startFakeAnthropic } from "./anthropic.ts";
import { createAnthropicMeter } from "../../protocol/metering/anthropic.ts";

const KEY = "sk-ant-test-fake-0123456789";
const POOR = "sk-ant-test-poor-0000000000";
const MODEL = "claude-sonnet-5-5";
const decoder = new TextDecoder();

async function withFake(fn: (fake: FakeAnthropic, client: Anthropic) => Promise<void>) {
  const fake = await startFakeAnthropic({ keys: [KEY, POOR], lowCreditKeys: [POOR] });
  try {
    await fn(fake, new Anthropic({ apiKey: KEY, baseURL: fake.url, maxRetries: 0 }));
  } finally {
    await fake.close();
  }
}

function raw(
  fake: FakeAnthropic,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
) {
  return fetch(`${fake.url}${path}`, {
    method: "POST",
    headers: {
      "x-api-key": KEY,
      "anthropic-version": "2023-06-01",
      "content-type": "application/json",
      ...headers,
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

const user = (content: string) => [{ role: "user" as const, content }];

Deno.test("messages: non-stream and stream agree on text and usage; SDK sends Bearer", () =>
  withFake(async (fake, client) => {
    const { data, response } = await client.messages
      .create({ model: MODEL, max_tokens: 256, messages: user("hello there") })
      .withResponse();
    assert.match(data.id, /^msg_01[A-Za-z0-9]{22}$/);
    assert.equal(data.type, "message");
    assert.equal(data.stop_reason, "end_turn");
    const block = data.content[0]!;
    assert.ok(block.type === "text" && block.text.startsWith("Echo: hello there "));
    assert.equal(data.usage.cache_read_input_tokens, 0);
    assert.match(response.headers.get("request-id")!, /^req_011C[A-Za-z0-9]{20}$/);
    const rec = fake.requests.at(-1)!;
    assert.equal(rec.auth, "bearer");
    assert.equal(rec.headers["anthropic-version"], "2026-10-21");

    const stream = client.messages.stream({
      model: MODEL,
      max_tokens: 256,
      messages: user("hello there"),
    });
    const events: string[] = [];
    for await (const event of stream) events.push(event.type);
    const final = await stream.finalMessage();
    assert.deepEqual(final.content, data.content);
    assert.equal(final.usage.output_tokens, data.usage.output_tokens);
    assert.equal(final.usage.input_tokens, data.usage.input_tokens);
    assert.deepEqual(events.slice(0, 2), ["message_start", "content_block_start"]);
    assert.deepEqual(events.slice(-3), ["content_block_stop", "message_delta", "message_stop"]);
  }));

Deno.test("stream bytes: named events, ping, cumulative usage; the meters agree", () =>
  withFake(async (fake) => {
    const body = {
      model: MODEL,
      max_tokens: 100,
      system: [{ type: "text", text: "be brief" }],
      messages: user(
        "cache me [[cache_read:7]] [[cache_write:5]] [[cache_write_1h:3]] [[words:12]]",
      ),
    };
    const plain = await raw(fake, "/v1/messages", body);
    const plainBytes = new Uint8Array(await plain.arrayBuffer());
    const streamed = await raw(fake, "/v1/messages", { ...body, stream: true });
    assert.equal(streamed.headers.get("content-type"), "text/event-stream; charset=utf-8");
    const sseBytes = new Uint8Array(await streamed.arrayBuffer());
    const sse = decoder.decode(sseBytes);
    assert.match(sse, /^event: message_start\ndata: \{"type":"message_start","message":\{/);
    assert.ok(sse.includes('event: ping\ndata: {"type":"ping"}\n\n'));
    assert.ok(sse.endsWith('event: message_stop\ndata: {"type":"message_stop"}\n\n'));
    assert.ok(!sse.includes("[DONE]"));
    const message = JSON.parse(decoder.decode(plainBytes));
    assert.equal(message.usage.cache_read_input_tokens, 7);
    assert.equal(message.usage.cache_creation_input_tokens, 8);
    assert.deepEqual(message.usage.cache_creation, {
      ephemeral_5m_input_tokens: 5,
      ephemeral_1h_input_tokens: 3,
    });
    assert.ok(!message.content[0].text.includes("[[cache"), "cache directives are not echoed");
    const delta = sse.split("\n").find((l) => l.startsWith('data: {"type":"message_delta"'))!;
    assert.equal(JSON.parse(delta.slice(6)).usage.output_tokens, message.usage.output_tokens);

    const meter = (bytes: Uint8Array, contentType: string) => {
      const m = createAnthropicMeter({ path: "/v1/messages", contentType });
      for (let i = 0; i < bytes.length; i += 7) m.push(bytes.subarray(i, i + 7));
      return m.end();
    };
    const a = meter(plainBytes, "application/json"), b = meter(sseBytes, "text/event-stream");
    assert.deepEqual(a, b);
    assert.equal(a.complete, true);
    assert.equal(a.usage!.cachedInputTokens, 7);
    assert.equal(a.usage!.cacheWrite5mTokens, 5);
    assert.equal(a.usage!.cacheWrite1hTokens, 3);
    assert.equal(a.promptTokens, a.usage!.inputTokens + 15);
  }));

Deno.test("count_tokens, models list and retrieve", () =>
  withFake(async (_fake, client) => {
    const count = await client.messages.countTokens({ model: MODEL, messages: user("hi") });
    assert.ok(count.input_tokens > 0);
    const plain = await client.messages.create({
      model: MODEL,
      max_tokens: 10,
      messages: user("hi"),
    });
    assert.equal(count.input_tokens, plain.usage.input_tokens);
    const ids: string[] = [];
    for await (const m of client.models.list({ limit: 2 })) ids.push(m.id);
    assert.equal(ids.length, 5, "pagination walks every page");
    assert.equal((await client.models.retrieve(ids[0]!)).display_name, "Claude Opus 5.5");
  }));

Deno.test("auth, version, validation and injected errors use Anthropic's envelope", () =>
  withFake(async (fake, client) => {
    const ok = { model: MODEL, max_tokens: 10, messages: user("hi") };
    const cases: [Record<string, string>, unknown, number, string, RegExp][] = [
      [{ "x-api-key": "" }, ok, 401, "authentication_error", /x-api-key header is required/],
      [{ "x-api-key": "sk-wrong" }, ok, 401, "authentication_error", /invalid x-api-key/],
      [{ "anthropic-version": "" }, ok, 400, "invalid_request_error", /not a valid version/],
      [{}, { ...ok, max_tokens: undefined }, 400, "invalid_request_error", /max_tokens: Field/],
      [
        { "anthropic-version": "2026-10-21" },
        { ...ok, top_k: 5 },
        400,
        "invalid_request_error",
        /top_k/,
      ],
      [{}, { ...ok, messages: [] }, 400, "invalid_request_error", /at least one message/],
      [{}, { ...ok, model: "gpt-4o" }, 404, "not_found_error", /model: gpt-4o/],
      [{}, "{nope", 400, "invalid_request_error", /parsing the body/],
      [{ "x-api-key": POOR }, ok, 400, "invalid_request_error", /credit balance is too low/],
      [{}, { ...ok, messages: user("[[status:529]]") }, 529, "overloaded_error", /Overloaded/],
      [{}, { ...ok, messages: user("[[status:429]]") }, 429, "rate_limit_error", /rate limit/],
    ];
    for (const [headers, body, status, type, message] of cases) {
      const res = await raw(fake, "/v1/messages", body, headers);
      const json = await res.json();
      assert.equal(res.status, status, JSON.stringify(json));
      assert.equal(json.type, "error");
      assert.equal(json.error.type, type);
      assert.match(json.error.message, message);
      assert.equal(json.request_id, res.headers.get("request-id"));
    }
    assert.equal(LOW_CREDIT_MESSAGE.includes("Plans & Billing"), true);
    const noVersion = await fetch(`${fake.url}/v1/models`, { headers: { "x-api-key": KEY } });
    assert.equal(noVersion.status, 400);
    assert.match((await noVersion.json()).error.message, /anthropic-version: header is required/);
    await assert.rejects(
      client.messages.create({ ...ok, messages: user("[[status:529]]") }),
      Anthropic.OverloadedError,
    );
    await assert.rejects(
      new Anthropic({ apiKey: "bad", baseURL: fake.url, maxRetries: 0 }).models.list(),
      Anthropic.AuthenticationError,
    );
  }));

Deno.test("max_tokens truncates; delays pace the stream; a cancelled stream is recorded", () =>
  withFake(async (fake, client) => {
    const cut = await client.messages.create({
      model: MODEL,
      max_tokens: 5,
      messages: user("long [[words:200]]"),
    });
    assert.equal(cut.stop_reason, "max_tokens");
    assert.equal(cut.usage.output_tokens, 5);

    const res = await raw(fake, "/v1/messages", {
      model: MODEL,
      max_tokens: 1000,
      stream: true,
      messages: user("slow [[delay:50]] [[words:100]]"),
    });
    const reader = res.body!.getReader();
    await reader.read();
    await reader.cancel();
    const rec = fake.requests.at(-1)!;
    const deadline = performance.now() + 2000;
    while (rec.cancelledAt === undefined && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.ok(rec.cancelledAt !== undefined, "cancellation recorded");
    assert.equal(rec.stream, true);
    assert.equal(rec.model, MODEL);
  }));
