/**
 * The Gemini Developer API surface end to end with the official `@google/genai` SDK as the
 * client, under the hub's `/gemini` prefix and at the root: hub → tunnel → locked agent → fake
 * Gemini that checks the real key. The model comes from the URL path; a client's `?key=` is a
 * credential that is never forwarded nor logged.
 */
import assert from "node:assert/strict";
import { ApiError, GoogleGenAI } from "@google/genai";
import { type FakeGemini, startFakeGemini } from "./fakes/gemini.ts";
import { GEMINI_MODERATION_BLOCKED_BODY } from "../protocol/vendors/gemini.ts";
import { admin } from "./support/cluster.ts";
import { waitFor } from "./support/process.ts";
import { type Stack, startStack } from "./support/stack.ts";

const GEM_KEY = "AIzaSyReal-vendor-key-1";
const MODEL = "gemini-3.5-flash";
const EMBED = "gemini-embedding-001";
const decoder = new TextDecoder();

function geminiStack(
  options: {
    keys?: string[];
    fakeKeys?: string[];
    quotaExhaustedKeys?: string[];
    hubEnv?: Record<string, string>;
  } = {},
) {
  let fake: FakeGemini | undefined;
  const started = startStack({
    hubEnv: options.hubEnv,
    vendors: [{
      vendor: "gemini",
      host: "generativelanguage.googleapis.com",
      keys: options.keys ?? [GEM_KEY],
      models: `${MODEL},${EMBED}`,
      start: async () =>
        fake = await startFakeGemini({
          keys: options.fakeKeys ?? [GEM_KEY],
          quotaExhaustedKeys: options.quotaExhaustedKeys,
        }),
    }],
  });
  return started.then((stack) => ({ stack, fake: fake! }));
}

const client = (stack: Stack, apiKey: string, prefixed = true) =>
  new GoogleGenAI({
    apiKey,
    httpOptions: { baseUrl: prefixed ? `${stack.hub.url}/gemini` : stack.hub.url },
  });

/** Raw POST; `auth` picks the header or the `?key=` query parameter. */
async function post(
  url: string,
  key: string,
  body: unknown,
  auth: "header" | "query" = "header",
) {
  const target = auth === "query" ? `${url}${url.includes("?") ? "&" : "?"}key=${key}` : url;
  const res = await fetch(target, {
    method: "POST",
    headers: {
      ...(auth === "header" ? { "x-goog-api-key": key } : {}),
      "content-type": "application/json",
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return {
    status: res.status,
    headers: res.headers,
    bytes: new Uint8Array(await res.arrayBuffer()),
  };
}

/** The hub's usage record of the request the client saw as `x-request-id`, or null (see the
 * Anthropic test for the known "aborted by client" race that leaves no record). */
async function usageRecord(stack: Stack, traceId: string | null) {
  const line = await waitFor(
    () =>
      stack.hub.proc.lines.find((l) =>
        l.msg === "request finished" && (l.requestId === traceId || l.traceId === traceId)
      ),
    `request finished ${traceId}`,
  );
  if (line.outcome !== "complete") return null;
  return await waitFor(async () => {
    const res = await admin(stack.hub, "GET", `/usage/${line.requestId}`);
    return res.status === 200 ? res.json : undefined;
  }, `usage of ${line.requestId}`);
}

const text = (t: string) => [{ role: "user", parts: [{ text: t }] }];

Deno.test("gemini SDK through the hub: generate, stream, countTokens, embed, models, errors", async (t) => {
  const { stack, fake } = await geminiStack({
    hubEnv: { HUB_MODERATION_KEYWORDS: "forbidden-plan" },
  });
  const prefixed = client(stack, stack.key);
  const root = client(stack, stack.key, false);
  try {
    await t.step(
      "generateContent and generateContentStream, prefixed and at the root",
      async () => {
        for (const ai of [prefixed, root]) {
          const done = await ai.models.generateContent({ model: MODEL, contents: "hello there" });
          assert.ok(done.text?.startsWith("Echo: hello there "), String(done.text));
          assert.equal(done.candidates?.[0]?.finishReason, "STOP");
          let streamed = "";
          let last;
          for await (
            const chunk of await ai.models.generateContentStream({
              model: MODEL,
              contents: "hello there",
            })
          ) {
            streamed += chunk.text ?? "";
            last = chunk;
          }
          assert.equal(streamed, done.text);
          assert.deepEqual(last?.usageMetadata, done.usageMetadata);
        }
      },
    );

    await t.step("countTokens, embedContent (batchEmbedContents) and the model list", async () => {
      const count = await prefixed.models.countTokens({ model: MODEL, contents: "hi there" });
      assert.ok((count.totalTokens ?? 0) > 0);
      assert.equal(
        (await root.models.countTokens({ model: MODEL, contents: "hi there" })).totalTokens,
        count.totalTokens,
      );
      const embedded = await prefixed.models.embedContent({ model: EMBED, contents: "hello" });
      assert.equal(embedded.embeddings?.length, 1);
      assert.equal(embedded.embeddings?.[0]?.values?.length, 16);
      assert.match(fake.requests.at(-1)!.path, /:batchEmbedContents$/);
      const names: string[] = [];
      for await (const m of await prefixed.models.list()) names.push(m.name ?? "");
      assert.deepEqual(names.sort(), [`models/${MODEL}`, `models/${EMBED}`].sort());
    });

    await t.step("raw bytes through the hub equal the vendor's, header or ?key=", async () => {
      const body = { contents: text("bytes please [[words:30]]") };
      const cases: [string, unknown, "header" | "query"][] = [
        [`/gemini/v1beta/models/${MODEL}:generateContent`, body, "header"],
        [`/gemini/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`, body, "query"],
        [`/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`, body, "header"],
        [`/v1beta/models/${MODEL}:streamGenerateContent`, body, "query"],
        [`/gemini/v1/models/${MODEL}:generateContent`, body, "query"],
        [`/gemini/v1beta/models/${MODEL}:countTokens`, body, "header"],
        [`/v1beta/models/${EMBED}:embedContent`, { content: body.contents[0] }, "query"],
        [
          `/gemini/v1beta/models/${EMBED}:batchEmbedContents`,
          { requests: [{ content: body.contents[0], model: `models/${EMBED}` }] },
          "header",
        ],
      ];
      for (const [path, b, auth] of cases) {
        const hub = await post(`${stack.hub.url}${path}`, stack.key, b, auth);
        const upstream = fake.requests.at(-1)!;
        const vendor = await post(`${fake.url}${path.replace(/^\/gemini\//, "/")}`, GEM_KEY, b);
        assert.equal(hub.status, 200, decoder.decode(hub.bytes));
        assert.equal(vendor.status, 200, decoder.decode(vendor.bytes));
        assert.deepEqual(hub.bytes, vendor.bytes, `identical bytes for ${path} (${auth})`);
        assert.equal(hub.headers.get("content-type"), vendor.headers.get("content-type"));
        assert.match(hub.headers.get("x-request-id") ?? "", /^req_/);
        assert.equal(upstream.auth, "header", "the agent sends the key as x-goog-api-key");
        assert.equal(upstream.key, GEM_KEY);
        assert.equal(upstream.path, path.replace(/^\/gemini\//, "/"), "no key in the upstream URL");
        assert.equal(upstream.headers.authorization, undefined);
      }
      const sse = decoder.decode(
        (await post(`${fake.url}/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`, GEM_KEY, {
          contents: text("crlf"),
        })).bytes,
      );
      assert.ok(sse.endsWith("\r\n\r\n") && sse.split("\r\n\r\n").length > 2, "CRLF framing");
    });

    await t.step("a streamed and a plain request meter the same usage", async () => {
      const body = { contents: text("meter me [[words:40]] [[cached:9]] [[thoughts:5]]") };
      const recorded = async (path: string) => {
        for (let attempt = 0; attempt < 20; attempt++) {
          const res = await post(`${stack.hub.url}/gemini/v1beta/models/${path}`, stack.key, body);
          const record = await usageRecord(stack, res.headers.get("x-request-id"));
          if (record) return { res, record };
        }
        throw new Error("the hub never recorded the request");
      };
      const { res: plain, record: a } = await recorded(`${MODEL}:generateContent`);
      const { record: b } = await recorded(`${MODEL}:streamGenerateContent?alt=sse`);
      const { record: c } = await recorded(`${MODEL}:streamGenerateContent`);
      assert.notEqual(a.requestId, b.requestId);
      for (const field of ["vendor", "model", "promptTokens", "usage"]) {
        assert.deepEqual(b[field], a[field], `${field} equal for SSE and non-stream`);
        assert.deepEqual(c[field], a[field], `${field} equal for the JSON array stream`);
      }
      const meta = JSON.parse(decoder.decode(plain.bytes)).usageMetadata;
      assert.equal(a.vendor, "gemini");
      assert.equal(a.model, MODEL);
      assert.equal(a.usage.inputTokens, meta.promptTokenCount - 9);
      assert.equal(a.usage.cachedInputTokens, 9);
      assert.equal(a.usage.outputTokens, meta.candidatesTokenCount + 5);
      assert.equal(a.usage.reasoningTokens, 5);
      assert.equal(a.promptTokens, meta.promptTokenCount);
      // Byte-identical usage records via the key's listing too.
      const listed = await admin(stack.hub, "GET", `/usage?keyId=${a.keyId}`);
      assert.equal(listed.status, 200);
    });

    await t.step("the SDK raises its ApiError with Google's envelope", async () => {
      const before = fake.requests.length;
      for (const prefix of [true, false]) {
        await assert.rejects(
          client(stack, "aq-bogus", prefix).models.generateContent({
            model: MODEL,
            contents: "hi",
          }),
          (e: unknown) => {
            assert.ok(e instanceof ApiError);
            assert.equal(e.status, 401);
            assert.equal(JSON.parse(e.message).error.status, "UNAUTHENTICATED");
            return true;
          },
        );
      }
      await assert.rejects(
        client(stack, "aq-bogus").models.list(),
        (e: unknown) => e instanceof ApiError && e.status === 401,
      );
      // No channel offers this model: 503 UNAVAILABLE.
      await assert.rejects(
        prefixed.models.generateContent({ model: "gemini-3.1-pro-preview", contents: "hi" }),
        (e: unknown) => {
          assert.ok(e instanceof ApiError);
          assert.equal(e.status, 503);
          assert.equal(JSON.parse(e.message).error.status, "UNAVAILABLE");
          return true;
        },
      );
      await assert.rejects(
        prefixed.models.generateContent({ model: MODEL, contents: "the FORBIDDEN-PLAN is" }),
        (e: unknown) => e instanceof ApiError && e.status === 400,
      );
      const blocked = await post(
        `${stack.hub.url}/gemini/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`,
        stack.key,
        { systemInstruction: { parts: [{ text: "forbidden-plan" }] }, contents: text("hi") },
      );
      assert.equal(blocked.status, 400);
      assert.equal(decoder.decode(blocked.bytes), GEMINI_MODERATION_BLOCKED_BODY);
      // Unknown model methods are not forwarded.
      const unknown = await post(
        `${stack.hub.url}/gemini/v1beta/models/${MODEL}:deleteEverything`,
        stack.key,
        {},
      );
      assert.equal(unknown.status, 404);
      assert.equal(JSON.parse(decoder.decode(unknown.bytes)).error.status, "NOT_FOUND");
      // A `?key=` on another vendor's path is refused, not taken as a credential.
      const openai = await fetch(`${stack.hub.url}/openai/v1/chat/completions?key=${stack.key}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "x" }] }),
      });
      assert.equal(openai.status, 401);
      assert.equal((await openai.json()).error.code, "invalid_api_key");
      assert.equal(fake.requests.length, before, "nothing reached the vendor");
      // Vendor errors pass through in the vendor's own envelope.
      await assert.rejects(
        prefixed.models.generateContent({ model: MODEL, contents: "[[status:429]]" }),
        (e: unknown) => e instanceof ApiError && e.status === 429,
      );
    });

    await t.step("a client that walks away cancels the vendor call", async () => {
      const controller = new AbortController();
      const stream = await prefixed.models.generateContentStream({
        model: MODEL,
        contents: "slowly [[delay:40]] [[words:500]]",
        config: { abortSignal: controller.signal },
      });
      for await (const _chunk of stream) break;
      controller.abort();
      const rec = fake.requests.at(-1)!;
      await waitFor(() => rec.cancelledAt !== undefined || undefined, "vendor saw the cancel");
      assert.equal(rec.stream, true);
    });

    await t.step("the vendor only sees the real key; no key ever reaches the logs", () => {
      assert.ok(fake.requests.filter((r) => r.status !== undefined).length > 0);
      const viaHub = fake.requests.filter((r) => r.key === GEM_KEY);
      assert.ok(viaHub.every((r) => !r.path.includes("key=")));
      for (const dump of [stack.hub.proc.dump(), stack.agent.dump()]) {
        assert.ok(!dump.includes(GEM_KEY), "real key absent from logs");
        assert.ok(!dump.includes(stack.key), "virtual key absent from logs");
        assert.ok(!dump.includes("key="), "no ?key= in logs");
      }
    });
  } finally {
    await stack.stop();
  }
});

Deno.test("a gemini channel key the vendor rejects (400 API_KEY_INVALID) is skipped", async () => {
  const { stack, fake } = await geminiStack({ keys: ["AIza-revoked", GEM_KEY] });
  try {
    const done = await client(stack, stack.key).models.generateContent({
      model: MODEL,
      contents: "rotate",
    });
    assert.ok(done.text);
    assert.deepEqual(fake.requests.map((r) => [r.key, r.status]), [
      ["AIza-revoked", 400],
      [GEM_KEY, 200],
    ]);
  } finally {
    await stack.stop();
  }
});

Deno.test("a gemini channel key out of daily quota (429 RESOURCE_EXHAUSTED) is skipped", async () => {
  const { stack, fake } = await geminiStack({
    keys: ["AIza-spent", GEM_KEY],
    fakeKeys: ["AIza-spent", GEM_KEY],
    quotaExhaustedKeys: ["AIza-spent"],
  });
  try {
    await client(stack, stack.key).models.generateContent({ model: MODEL, contents: "rotate" });
    assert.deepEqual(fake.requests.map((r) => r.status), [429, 200]);
  } finally {
    await stack.stop();
  }
});
