/**
 * The model catalog at the hub's root: the official `openai` SDK pointed at `hub/v1` reaches
 * DeepSeek with `deepseek-chat` (the default catalog: the DeepSeek channel declares no models)
 * and DashScope with `qwen-plus` (declared by its channel), while explicit prefixes always win
 * and a model no vendor serves is OpenAI's 404 `model_not_found`. Each fake's request log shows
 * where a request went (and that nothing went anywhere on a refusal).
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { type FakeDashScope, startFakeDashScope } from "./fakes/dashscope.ts";
import { type FakeDeepSeek, startFakeDeepSeek } from "./fakes/deepseek.ts";
import { startStack } from "./support/stack.ts";
import { assertSameUsage, recordedUsage } from "./support/usage.ts";

const DS_KEY = "sk-deepseek-real-key-catalog";
const QW_KEY = "sk-dashscope-real-key-catalog";
const user = (content: string) => [{ role: "user" as const, content }];

Deno.test("model catalog: unprefixed OpenAI routes reach DeepSeek and DashScope by model", async (t) => {
  let deepseek: FakeDeepSeek | undefined;
  let dashscope: FakeDashScope | undefined;
  const stack = await startStack({
    models: "gpt-4o-mini",
    vendors: [
      {
        vendor: "deepseek",
        host: "api.deepseek.com",
        keys: [DS_KEY],
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
  const hub = stack.hub.url;
  const root = new OpenAI({ apiKey: stack.key, baseURL: `${hub}/v1`, maxRetries: 0 });
  const counts =
    () => [stack.fake.requests.length, deepseek!.requests.length, dashscope!.requests.length];
  try {
    await t.step("deepseek-chat at /v1 goes to DeepSeek's /chat/completions", async () => {
      const before = counts();
      const done = await root.chat.completions.create({
        model: "deepseek-chat",
        messages: user("hello via the root"),
      });
      assert.equal(done.model, "deepseek-chat");
      assert.ok(done.choices[0]?.message.content);
      assert.deepEqual(counts(), [before[0], before[1]! + 1, before[2]]);
      const seen = deepseek!.requests.at(-1)!;
      assert.equal(seen.path, "/chat/completions");
      assert.equal(seen.key, DS_KEY);
    });

    await t.step(
      "qwen-plus at /v1 goes to DashScope compatible mode, chat and embeddings",
      async () => {
        const before = counts();
        const done = await root.chat.completions.create({
          model: "qwen-plus",
          messages: user("hi"),
        });
        assert.equal(done.model, "qwen-plus");
        const emb = await root.embeddings.create({ model: "text-embedding-v4", input: "hello" });
        assert.ok(emb.data[0]!.embedding.length > 0);
        assert.deepEqual(counts(), [before[0], before[1], before[2]! + 2]);
        assert.deepEqual(
          dashscope!.requests.slice(-2).map((r) => r.path),
          ["/compatible-mode/v1/chat/completions", "/compatible-mode/v1/embeddings"],
        );
      },
    );

    await t.step("gpt-4o-mini at /v1 stays with OpenAI", async () => {
      const before = counts();
      await root.chat.completions.create({ model: "gpt-4o-mini", messages: user("hi") });
      assert.deepEqual(counts(), [before[0]! + 1, before[1], before[2]]);
    });

    await t.step(
      "streamed and plain root requests record the same usage, under the vendor",
      async () => {
        for (const model of ["deepseek-chat", "qwen-plus"]) {
          const body = { model, messages: user("meter the catalog [[words:25]]") };
          const send = (stream: boolean) => () =>
            stream
              ? streamed(body)
              : root.chat.completions.create(body).withResponse().then((r) => ({
                headers: r.response.headers,
              }));
          const plain = await recordedUsage(stack.hub, send(false));
          const again = await recordedUsage(stack.hub, send(true));
          assertSameUsage(plain.record, again.record, model);
          assert.equal(plain.record.vendor, model.startsWith("qwen") ? "dashscope" : "deepseek");
        }
      },
    );

    await t.step("explicit prefixes win over the catalog", async () => {
      const before = counts();
      // /openai with a DeepSeek model: OpenAI's channel does not serve it (no capacity), and
      // neither DeepSeek nor DashScope is asked.
      const viaOpenAI = new OpenAI({
        apiKey: stack.key,
        baseURL: `${hub}/openai/v1`,
        maxRetries: 0,
      });
      await assert.rejects(
        viaOpenAI.chat.completions.create({ model: "deepseek-chat", messages: user("hi") }),
        (e: unknown) => e instanceof OpenAI.InternalServerError && e.status === 503,
      );
      const viaDeepSeek = new OpenAI({
        apiKey: stack.key,
        baseURL: `${hub}/deepseek`,
        maxRetries: 0,
      });
      // DeepSeek's channel declares no list, so DeepSeek is asked for the Qwen model (and says no).
      await assert.rejects(
        viaDeepSeek.chat.completions.create({ model: "qwen-plus", messages: user("hi") }),
        (e: unknown) => e instanceof OpenAI.APIError && e.status !== undefined && e.status >= 400,
      );
      assert.deepEqual(counts(), [before[0], before[1]! + 1, before[2]]);
      assert.equal(deepseek!.requests.at(-1)!.model, "qwen-plus");
    });

    await t.step(
      "a model no vendor serves: OpenAI's 404 model_not_found, nothing dispatched",
      async () => {
        const before = counts();
        await assert.rejects(
          root.chat.completions.create({ model: "no-such-model-anywhere", messages: user("hi") }),
          (e: unknown) =>
            e instanceof OpenAI.NotFoundError && e.code === "model_not_found" &&
            /no-such-model-anywhere/.test(e.message),
        );
        await assert.rejects(
          root.embeddings.create({ model: "deepseek-chat", input: "x" }), // DeepSeek has no embeddings
          (e: unknown) => e instanceof OpenAI.NotFoundError && e.code === "model_not_found",
        );
        // A catalog model whose vendor has no channel for it: no capacity (503), not 404.
        await assert.rejects(
          root.chat.completions.create({ model: "qwen-max", messages: user("hi") }),
          (e: unknown) => e instanceof OpenAI.InternalServerError && e.status === 503,
        );
        assert.deepEqual(counts(), before);
      },
    );

    await t.step("GET /v1/models at the root lists every catalog vendor's models", async () => {
      const ids: string[] = [];
      for await (const m of root.models.list()) ids.push(m.id);
      assert.deepEqual(ids, ["gpt-4o-mini", "qwen-plus", "text-embedding-v4"]);
      const prefixed = new OpenAI({
        apiKey: stack.key,
        baseURL: `${hub}/openai/v1`,
        maxRetries: 0,
      });
      const own: string[] = [];
      for await (const m of prefixed.models.list()) own.push(m.id);
      assert.deepEqual(own, ["gpt-4o-mini"]);
    });

    await t.step("a bad virtual key is refused before the model is looked at", async () => {
      const bogus = new OpenAI({ apiKey: "aq-bogus", baseURL: `${hub}/v1`, maxRetries: 0 });
      await assert.rejects(
        bogus.chat.completions.create({ model: "deepseek-chat", messages: user("hi") }),
        (e: unknown) => e instanceof OpenAI.AuthenticationError,
      );
    });
  } finally {
    await stack.stop();
  }

  /** A streamed request through the SDK, returning the headers of its response. */
  async function streamed(body: { model: string; messages: ReturnType<typeof user> }) {
    const { data, response } = await root.chat.completions.create({ ...body, stream: true })
      .withResponse();
    let text = "";
    for await (const chunk of data) text += chunk.choices[0]?.delta?.content ?? "";
    assert.ok(text.length > 0);
    return { headers: response.headers };
  }
});
