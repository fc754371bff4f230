/**
 * DeepSeek and DashScope end to end: the official `openai` SDK under the hub's `/deepseek` and
 * `/dashscope/compatible-mode/v1` prefixes, DashScope's native API with `fetch` (JSON and
 * `X-DashScope-SSE: enable`), byte-identical bodies against the fakes, equal usage records for
 * streamed and plain requests, and the SDK's typed errors.
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { type FakeDeepSeek, startFakeDeepSeek } from "./fakes/deepseek.ts";
import { type FakeDashScope, NATIVE_PATH, startFakeDashScope } from "./fakes/dashscope.ts";
import { admin } from "./support/cluster.ts";
import { waitFor } from "./support/process.ts";
import { post, type Stack, startStack } from "./support/stack.ts";

const DS_KEY = "sk-deepseek-real-key-1";
const QW_KEY = "sk-dashscope-real-key-1";
const decoder = new TextDecoder();
const user = (content: string) => [{ role: "user" as const, content }];

async function bothStack() {
  let deepseek: FakeDeepSeek | undefined;
  let dashscope: FakeDashScope | undefined;
  const stack = await startStack({
    vendors: [
      {
        vendor: "deepseek",
        host: "api.deepseek.com",
        keys: [DS_KEY],
        models: "deepseek-chat,deepseek-reasoner",
        start: async () => deepseek = await startFakeDeepSeek({ keys: [DS_KEY] }),
      },
      {
        vendor: "dashscope",
        host: "dashscope-intl.aliyuncs.com",
        keys: [QW_KEY],
        models: "qwen-plus,text-embedding-v4",
        start: async () => dashscope = await startFakeDashScope({ keys: [QW_KEY] }),
      },
    ],
  });
  return { stack, deepseek: deepseek!, dashscope: dashscope! };
}

/**
 * The usage record of the request the client saw as `x-request-id`, or null when the hub logged
 * it as not complete (see the known race in vendor_anthropic_test.ts); it must also be listed
 * under the client's key.
 */
async function usageRecord(stack: Stack, traceId: string | null) {
  const line = await waitFor(
    () =>
      stack.hub.proc.lines.find((l) =>
        l.msg === "request finished" && (l.requestId === traceId || l.traceId === traceId)
      ),
    `request finished ${traceId}`,
  );
  if (line.outcome !== "complete") return null;
  const record = await waitFor(async () => {
    const res = await admin(stack.hub, "GET", `/usage/${line.requestId}`);
    return res.status === 200 ? res.json : undefined;
  }, `usage of ${line.requestId}`);
  assert.equal(typeof record.keyId, "string");
  const listed = await admin(stack.hub, "GET", `/usage?keyId=${record.keyId}&limit=1000`);
  assert.equal(listed.status, 200);
  const rows: { requestId: string }[] = Array.isArray(listed.json)
    ? listed.json
    : listed.json.records ?? listed.json.usage ?? listed.json.data;
  assert.deepEqual(rows.find((r) => r.requestId === line.requestId), record, "listed by key");
  return record;
}

/** POSTs until the hub records the request; returns the response and its usage record. */
async function recorded(
  stack: Stack,
  url: string,
  key: string,
  body: unknown,
  headers: Record<string, string> = {},
) {
  for (let attempt = 0; attempt < 20; attempt++) {
    const res = await post(url, key, body, headers);
    assert.equal(res.status, 200, decoder.decode(res.bytes));
    const record = await usageRecord(stack, res.headers.get("x-request-id"));
    if (record) return { res, record };
  }
  throw new Error("the hub never recorded the request");
}

function sameUsage(a: Record<string, unknown>, b: Record<string, unknown>) {
  assert.notEqual(a.requestId, b.requestId);
  for (const field of ["vendor", "model", "promptTokens", "serviceTier", "usage"]) {
    assert.deepEqual(b[field], a[field], `${field} equal for stream and non-stream`);
  }
}

Deno.test("deepseek and dashscope through the hub", async (t) => {
  const { stack, deepseek, dashscope } = await bothStack();
  const hub = stack.hub.url;
  const ds = new OpenAI({ apiKey: stack.key, baseURL: `${hub}/deepseek`, maxRetries: 0 });
  const qw = new OpenAI({
    apiKey: stack.key,
    baseURL: `${hub}/dashscope/compatible-mode/v1`,
    maxRetries: 0,
  });
  try {
    await t.step("deepseek: openai SDK, non-stream and stream, models", async () => {
      const done = await ds.chat.completions.create({
        model: "deepseek-chat",
        messages: user("hello deepseek"),
      });
      assert.ok(done.choices[0]!.message.content!.startsWith("Echo: hello deepseek "));
      const stream = await ds.chat.completions.create({
        model: "deepseek-chat",
        messages: user("hello deepseek"),
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
      const ids: string[] = [];
      for await (const m of ds.models.list()) ids.push(m.id);
      assert.deepEqual(ids.sort(), ["deepseek-chat", "deepseek-reasoner"]);
      assert.ok(deepseek.requests.every((r) => r.key === DS_KEY));
    });

    await t.step("deepseek: raw bytes through the hub equal the vendor's", async () => {
      const body = { model: "deepseek-reasoner", messages: user("bytes please [[words:30]]") };
      for (const path of ["/chat/completions", "/v1/chat/completions"]) {
        for (const b of [body, { ...body, stream: true }]) {
          const viaHub = await post(`${hub}/deepseek${path}`, stack.key, b);
          const upstream = deepseek.requests.at(-1)!;
          const direct = await post(`${deepseek.url}${path}`, DS_KEY, b);
          assert.equal(viaHub.status, 200, decoder.decode(viaHub.bytes));
          assert.deepEqual(viaHub.bytes, direct.bytes, `identical bytes ${path} ${"stream" in b}`);
          assert.equal(upstream.path, path);
          if ("stream" in b) {
            assert.deepEqual(upstream.streamOptions, { include_usage: true }, "agent added it");
            assert.ok(!decoder.decode(viaHub.bytes).includes('"usage"'));
          }
        }
      }
    });

    await t.step("deepseek: stream and non-stream meter the same usage", async () => {
      const url = `${hub}/deepseek/chat/completions`;
      const body = {
        model: "deepseek-reasoner",
        messages: user("meter me [[words:40]] [[cache_hit:7]]"),
      };
      const { res, record: a } = await recorded(stack, url, stack.key, body);
      const { record: b } = await recorded(stack, url, stack.key, { ...body, stream: true });
      sameUsage(a, b);
      const u = JSON.parse(decoder.decode(res.bytes)).usage;
      assert.equal(a.vendor, "deepseek");
      assert.equal(a.model, "deepseek-reasoner");
      assert.equal(a.usage.inputTokens, u.prompt_cache_miss_tokens);
      assert.equal(a.usage.cachedInputTokens, 7);
      assert.equal(a.usage.outputTokens, u.completion_tokens);
      assert.ok(a.usage.reasoningTokens > 0);
      assert.equal(a.usage.reasoningTokens, u.completion_tokens_details.reasoning_tokens);
      assert.equal(a.promptTokens, u.prompt_tokens);
    });

    await t.step("dashscope compatible: openai SDK chat, stream, embeddings, models", async () => {
      const done = await qw.chat.completions.create({
        model: "qwen-plus",
        messages: user("hello qwen"),
      });
      assert.ok(done.choices[0]!.message.content!.startsWith("Echo: hello qwen "));
      const stream = await qw.chat.completions.create({
        model: "qwen-plus",
        messages: user("hello qwen"),
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
      const emb = await qw.embeddings.create({ model: "text-embedding-v4", input: ["a", "b"] });
      assert.equal(emb.data.length, 2);
      assert.equal(emb.data[0]!.embedding.length, 1024);
      const ids: string[] = [];
      for await (const m of qw.models.list()) ids.push(m.id);
      assert.deepEqual(ids.sort(), ["qwen-plus", "text-embedding-v4"]);
    });

    await t.step("dashscope: raw bytes equal the vendor's, compatible and native", async () => {
      const compat = { model: "qwen-plus", messages: user("bytes please [[words:30]]") };
      const native = {
        model: "qwen-plus",
        input: { messages: user("native bytes [[words:25]]") },
        parameters: { result_format: "message", incremental_output: true },
      };
      const sse = { "X-DashScope-SSE": "enable" };
      const cases: [string, unknown, Record<string, string>][] = [
        ["/compatible-mode/v1/chat/completions", compat, {}],
        ["/compatible-mode/v1/chat/completions", { ...compat, stream: true }, {}],
        ["/compatible-mode/v1/embeddings", { model: "text-embedding-v4", input: "x" }, {}],
        [NATIVE_PATH, native, {}],
        [NATIVE_PATH, native, sse],
        [NATIVE_PATH, { ...native, parameters: {} }, sse],
      ];
      for (const [path, b, headers] of cases) {
        const viaHub = await post(`${hub}/dashscope${path}`, stack.key, b, headers);
        const upstream = dashscope.requests.at(-1)!;
        const direct = await post(`${dashscope.url}${path}`, QW_KEY, b, headers);
        assert.equal(viaHub.status, 200, decoder.decode(viaHub.bytes));
        assert.deepEqual(
          viaHub.bytes,
          direct.bytes,
          `identical bytes ${path} ${JSON.stringify(headers)}`,
        );
        assert.equal(upstream.key, QW_KEY);
        if (headers["X-DashScope-SSE"]) {
          assert.equal(upstream.headers["x-dashscope-sse"], "enable");
          assert.match(viaHub.headers.get("content-type") ?? "", /event-stream/);
          assert.match(
            decoder.decode(viaHub.bytes),
            /^id:1\nevent:result\n:HTTP_STATUS\/200\ndata:\{/,
          );
        }
      }
    });

    await t.step("dashscope: stream and non-stream meter the same usage", async () => {
      const native = {
        model: "qwen-plus",
        input: { messages: user("meter native [[words:33]] [[cache_hit:5]]") },
        parameters: { result_format: "message", incremental_output: true },
      };
      const url = `${hub}/dashscope${NATIVE_PATH}`;
      const { res, record: a } = await recorded(stack, url, stack.key, native);
      const { record: b } = await recorded(stack, url, stack.key, native, {
        "X-DashScope-SSE": "enable",
      });
      sameUsage(a, b);
      const u = JSON.parse(decoder.decode(res.bytes)).usage;
      assert.equal(a.vendor, "dashscope");
      assert.equal(a.model, "qwen-plus");
      assert.equal(a.usage.inputTokens, u.input_tokens - 5);
      assert.equal(a.usage.cachedInputTokens, 5);
      assert.equal(a.usage.outputTokens, u.output_tokens);
      assert.equal(a.promptTokens, u.input_tokens);

      const compatUrl = `${hub}/dashscope/compatible-mode/v1/chat/completions`;
      const compat = { model: "qwen-plus", messages: user("meter compat [[words:21]]") };
      const { res: plain, record: c } = await recorded(stack, compatUrl, stack.key, compat);
      const { record: d } = await recorded(stack, compatUrl, stack.key, {
        ...compat,
        stream: true,
      });
      sameUsage(c, d);
      const cu = JSON.parse(decoder.decode(plain.bytes)).usage;
      assert.equal(c.usage.inputTokens, cu.prompt_tokens);
      assert.equal(c.usage.outputTokens, cu.completion_tokens);
    });

    await t.step("typed SDK errors: bad virtual key, no capacity", async () => {
      const before = [deepseek.requests.length, dashscope.requests.length];
      for (const baseURL of [`${hub}/deepseek`, `${hub}/dashscope/compatible-mode/v1`]) {
        const bogus = new OpenAI({ apiKey: "aq-bogus", baseURL, maxRetries: 0 });
        await assert.rejects(
          bogus.chat.completions.create({ model: "deepseek-chat", messages: user("hi") }),
          (e: unknown) => e instanceof OpenAI.AuthenticationError && e.status === 401,
        );
      }
      await assert.rejects(
        ds.chat.completions.create({ model: "deepseek-v4-pro", messages: user("hi") }),
        (e: unknown) => e instanceof OpenAI.InternalServerError && e.status === 503,
      );
      await assert.rejects(
        qw.chat.completions.create({ model: "qwen-max", messages: user("hi") }),
        (e: unknown) => e instanceof OpenAI.InternalServerError && e.status === 503,
      );
      const nativeBad = await post(`${hub}/dashscope${NATIVE_PATH}`, "aq-bogus", {
        model: "qwen-plus",
        input: { messages: user("hi") },
      });
      assert.equal(nativeBad.status, 401);
      const envelope = JSON.parse(decoder.decode(nativeBad.bytes));
      assert.equal(envelope.code, "InvalidApiKey");
      assert.equal(typeof envelope.message, "string");
      assert.equal(typeof envelope.request_id, "string");
      assert.deepEqual([deepseek.requests.length, dashscope.requests.length], before);
    });

    await t.step("OpenAI keeps the root /v1/chat/completions", async () => {
      const before = stack.fake.requests.length;
      const res = await post(`${hub}/v1/chat/completions`, stack.key, {
        model: "gpt-4o-mini",
        messages: user("root"),
      });
      assert.equal(res.status, 200, decoder.decode(res.bytes));
      assert.equal(stack.fake.requests.length, before + 1);
    });

    await t.step("the vendors only ever see the real keys", () => {
      assert.ok(deepseek.requests.filter((r) => r.status !== undefined).length > 0);
      assert.ok(!stack.hub.proc.dump().includes(DS_KEY));
      assert.ok(!stack.hub.proc.dump().includes(QW_KEY));
    });
  } finally {
    await stack.stop();
  }
});
