/**
 * The Anthropic surface end to end with the official `@anthropic-ai/sdk` as the client, under the
 * hub's `/anthropic` prefix and at the root: hub → tunnel → locked agent → fake Anthropic that
 * checks the real key. The client gets exactly the vendor's bytes; usage is metered from them.
 */
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { type FakeAnthropic, startFakeAnthropic } from "./fakes/anthropic.ts";
import { ANTHROPIC_MODERATION_BLOCKED_BODY } from "../protocol/vendors/anthropic.ts";
import { admin } from "./support/cluster.ts";
import { waitFor } from "./support/process.ts";
import { type Stack, startStack } from "./support/stack.ts";

const ANT_KEY = "sk-ant-real-vendor-key-1";
const MODEL = "claude-sonnet-5-5";
const decoder = new TextDecoder();
const user = (content: string) => [{ role: "user" as const, content }];

function anthropicStack(
  options: {
    keys?: string[];
    fakeKeys?: string[];
    lowCreditKeys?: string[];
    hubEnv?: Record<string, string>;
  } = {},
) {
  let fake: FakeAnthropic | undefined;
  const started = startStack({
    hubEnv: options.hubEnv,
    vendors: [{
      vendor: "anthropic",
      host: "api.anthropic.com",
      keys: options.keys ?? [ANT_KEY],
      models: `${MODEL},claude-haiku-5-5`,
      start: async () =>
        fake = await startFakeAnthropic({
          keys: options.fakeKeys ?? [ANT_KEY],
          lowCreditKeys: options.lowCreditKeys,
        }),
    }],
  });
  return started.then((stack) => ({ stack, fake: fake! }));
}

/** Raw POST with the Anthropic headers; `auth` picks the credential style. */
async function post(
  url: string,
  key: string,
  body: unknown,
  auth: "x-api-key" | "bearer" = "x-api-key",
  extra: Record<string, string> = {},
) {
  const res = await fetch(url, {
    method: "POST",
    headers: {
      ...(auth === "x-api-key" ? { "x-api-key": key } : { authorization: `Bearer ${key}` }),
      "anthropic-version": "2023-06-01",
      "content-type": "application/json",
      ...extra,
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return {
    status: res.status,
    headers: res.headers,
    bytes: new Uint8Array(await res.arrayBuffer()),
  };
}

/**
 * The hub's usage record of the request the client saw as `x-request-id: traceId`, or null when
 * the hub logged the request as not complete (then it writes no record). Known hub race: Deno
 * aborts `Request.signal` once a response is fully sent ("legacy abort"), which can beat the
 * agent's RESPONSE_END frame, so a delivered response is sometimes logged "aborted by client".
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
  return await waitFor(async () => {
    const res = await admin(stack.hub, "GET", `/usage/${line.requestId}`);
    return res.status === 200 ? res.json : undefined;
  }, `usage of ${line.requestId}`);
}

Deno.test("anthropic SDK through the hub: messages, stream, count_tokens, models, errors", async (t) => {
  const { stack, fake } = await anthropicStack({
    hubEnv: { HUB_MODERATION_KEYWORDS: "forbidden-plan", HUB_MAX_REQUEST_BYTES: "1048576" },
  });
  const prefixed = new Anthropic({
    apiKey: stack.key,
    baseURL: `${stack.hub.url}/anthropic`,
    maxRetries: 0,
  });
  const root = new Anthropic({ apiKey: stack.key, baseURL: stack.hub.url, maxRetries: 0 });
  try {
    await t.step("messages non-stream and stream, prefixed and at the root", async () => {
      for (const client of [prefixed, root]) {
        const done = await client.messages.create({
          model: MODEL,
          max_tokens: 200,
          messages: user("hello there"),
        });
        const first = done.content[0]!;
        assert.ok(first.type === "text" && first.text.startsWith("Echo: hello there "));
        const stream = client.messages.stream({
          model: MODEL,
          max_tokens: 200,
          messages: user("hello there"),
        });
        const final = await stream.finalMessage();
        assert.deepEqual(final.content, done.content);
        assert.deepEqual(final.usage.output_tokens, done.usage.output_tokens);
        const raw = await client.messages.create({
          model: MODEL,
          max_tokens: 200,
          messages: user("hello there"),
          stream: true,
        });
        const types: string[] = [];
        for await (const event of raw) types.push(event.type);
        assert.equal(types.at(-1), "message_stop");
      }
    });

    await t.step(
      "count_tokens and the model list (Anthropic's shape, channel models)",
      async () => {
        const count = await prefixed.messages.countTokens({ model: MODEL, messages: user("hi") });
        assert.ok(count.input_tokens > 0);
        assert.equal(
          (await root.messages.countTokens({ model: MODEL, messages: user("hi") })).input_tokens,
          count.input_tokens,
        );
        const ids: string[] = [];
        for await (const m of prefixed.models.list()) ids.push(m.id), assert.equal(m.type, "model");
        assert.deepEqual(ids, ["claude-haiku-5-5", MODEL]);
      },
    );

    await t.step(
      "raw bytes through the hub equal the vendor's, either credential style",
      async () => {
        const body = { model: MODEL, max_tokens: 100, messages: user("bytes please [[words:30]]") };
        const cases: [string, unknown, "x-api-key" | "bearer"][] = [
          ["/anthropic/v1/messages", body, "x-api-key"],
          ["/anthropic/v1/messages", { ...body, stream: true }, "bearer"],
          ["/v1/messages", { ...body, stream: true }, "x-api-key"],
          ["/v1/messages", body, "bearer"],
          [
            "/anthropic/v1/messages/count_tokens",
            { model: MODEL, messages: body.messages },
            "x-api-key",
          ],
        ];
        const beta = { "anthropic-beta": "context-1m-2025-08-07,interleaved-thinking-2025-05-14" };
        for (const [path, b, auth] of cases) {
          const hub = await post(`${stack.hub.url}${path}`, stack.key, b, auth, beta);
          const upstream = fake.requests.at(-1)!;
          const vendor = await post(`${fake.url}${path.replace("/anthropic", "")}`, ANT_KEY, b);
          assert.equal(hub.status, 200, decoder.decode(hub.bytes));
          assert.deepEqual(
            hub.bytes,
            vendor.bytes,
            `identical bytes for ${path} ${JSON.stringify(b).slice(0, 60)}`,
          );
          assert.match(hub.headers.get("request-id") ?? "", /^req_011C/, "the vendor's request-id");
          assert.match(hub.headers.get("x-request-id") ?? "", /^req_/);
          assert.equal(upstream.auth, "x-api-key");
          assert.equal(upstream.key, ANT_KEY);
          assert.equal(upstream.headers.authorization, undefined);
          assert.equal(upstream.headers["anthropic-version"], "2023-06-01");
          assert.equal(upstream.headers["anthropic-beta"], beta["anthropic-beta"]);
        }
      },
    );

    await t.step(
      "a streamed and a plain request meter the same usage, cache fields included",
      async () => {
        const body = {
          model: MODEL,
          max_tokens: 300,
          messages: user(
            "meter me [[words:40]] [[cache_read:9]] [[cache_write:6]] [[cache_write_1h:4]]",
          ),
        };
        // Each request is repeated until the hub records it (see usageRecord for the race).
        const recorded = async (b: unknown) => {
          for (let attempt = 0; attempt < 20; attempt++) {
            const res = await post(`${stack.hub.url}/anthropic/v1/messages`, stack.key, b);
            const record = await usageRecord(stack, res.headers.get("x-request-id"));
            if (record) return { res, record };
          }
          throw new Error("the hub never recorded the request");
        };
        const { res: plain, record: a } = await recorded(body);
        const { record: b } = await recorded({ ...body, stream: true });
        assert.notEqual(a.requestId, b.requestId);
        for (const field of ["vendor", "model", "promptTokens", "serviceTier", "usage"]) {
          assert.deepEqual(b[field], a[field], `${field} equal for stream and non-stream`);
        }
        const message = JSON.parse(decoder.decode(plain.bytes));
        assert.equal(a.vendor, "anthropic");
        assert.equal(a.model, MODEL);
        assert.equal(a.serviceTier, "standard");
        assert.equal(a.usage.inputTokens, message.usage.input_tokens);
        assert.equal(a.usage.outputTokens, message.usage.output_tokens);
        assert.equal(a.usage.cachedInputTokens, 9);
        assert.equal(a.usage.cacheWrite5mTokens, 6);
        assert.equal(a.usage.cacheWrite1hTokens, 4);
        assert.equal(a.promptTokens, message.usage.input_tokens + 19);
        const count = await post(`${stack.hub.url}/anthropic/v1/messages/count_tokens`, stack.key, {
          model: MODEL,
          messages: body.messages,
        });
        const finished = await waitFor(
          () =>
            stack.hub.proc.lines.find((l) =>
              l.msg === "request finished" && l.requestId === count.headers.get("x-request-id")
            ),
          "count_tokens finished",
        );
        assert.equal(finished.inputTokens, undefined, "count_tokens is not billed");
        assert.equal((await admin(stack.hub, "GET", `/usage/${finished.requestId}`)).status, 404);
      },
    );

    await t.step("the SDK raises its own typed errors", async () => {
      const before = fake.requests.length;
      for (const baseURL of [`${stack.hub.url}/anthropic`, stack.hub.url]) {
        await assert.rejects(
          new Anthropic({ apiKey: "aq-bogus", baseURL, maxRetries: 0 }).messages.create({
            model: MODEL,
            max_tokens: 10,
            messages: user("hi"),
          }),
          (e: unknown) =>
            e instanceof Anthropic.AuthenticationError && e.type === "authentication_error",
        );
      }
      await assert.rejects(
        new Anthropic({ apiKey: "aq-bogus", baseURL: `${stack.hub.url}/anthropic`, maxRetries: 0 })
          .models.list(),
        Anthropic.AuthenticationError,
      );
      await assert.rejects(
        prefixed.messages.create({
          model: MODEL,
          max_tokens: 10,
          messages: user("the FORBIDDEN-PLAN is"),
        }),
        (e: unknown) =>
          e instanceof Anthropic.BadRequestError && e.type === "invalid_request_error" &&
          e.errorCode === "sensitive_words_detected",
      );
      const blocked = await post(`${stack.hub.url}/anthropic/v1/messages`, stack.key, {
        model: MODEL,
        max_tokens: 10,
        system: [{ type: "text", text: "about the forbidden-plan" }],
        messages: user("innocent"),
      });
      assert.equal(blocked.status, 400);
      assert.equal(decoder.decode(blocked.bytes), ANTHROPIC_MODERATION_BLOCKED_BODY);
      await assert.rejects(
        root.messages.create({ model: "claude-opus-5-5", max_tokens: 10, messages: user("hi") }),
        (e: unknown) =>
          e instanceof Anthropic.ServiceUnavailableError && e.type === "overloaded_error",
      );
      await assert.rejects(
        prefixed.messages.create({
          model: MODEL,
          max_tokens: 10,
          messages: user("x".repeat(2 << 20)),
        }),
        (e: unknown) =>
          e instanceof Anthropic.ContentTooLargeError && String(e.type) === "request_too_large",
      );
      const missing = await fetch(`${stack.hub.url}/anthropic/v1/nope`, {
        method: "POST",
        body: "{}",
      });
      assert.equal(missing.status, 404);
      assert.equal((await missing.json()).error.type, "not_found_error");
      assert.equal(fake.requests.length, before, "nothing reached the vendor");
      // Vendor errors pass through in the vendor's own envelope.
      await assert.rejects(
        prefixed.messages.create({
          model: MODEL,
          max_tokens: 10,
          messages: user("[[status:529]]"),
        }),
        (e: unknown) =>
          e instanceof Anthropic.OverloadedError && e.requestID?.startsWith("req_011C") === true,
      );
    });

    await t.step("a client that walks away cancels the vendor call", async () => {
      const stream = prefixed.messages.stream({
        model: MODEL,
        max_tokens: 5000,
        messages: user("slowly [[delay:40]] [[words:500]]"),
      });
      for await (const event of stream) if (event.type === "content_block_delta") break;
      const rec = fake.requests.at(-1)!;
      await waitFor(() => rec.cancelledAt !== undefined || undefined, "vendor saw the cancel");
      assert.equal(rec.stream, true);
    });

    await t.step("the vendor only ever sees the real key", () => {
      assert.ok(fake.requests.every((r) => r.key === ANT_KEY && r.auth === "x-api-key"));
      assert.ok(!stack.hub.proc.dump().includes(ANT_KEY), "real key absent from hub logs");
      assert.ok(!stack.hub.proc.dump().includes(stack.key), "virtual key absent from hub logs");
    });
  } finally {
    await stack.stop();
  }
});

Deno.test("a channel key the vendor rejects (401) is skipped for the next one", async () => {
  const { stack, fake } = await anthropicStack({ keys: ["sk-ant-revoked", ANT_KEY] });
  try {
    const client = new Anthropic({
      apiKey: stack.key,
      baseURL: `${stack.hub.url}/anthropic`,
      maxRetries: 0,
    });
    const done = await client.messages.create({
      model: MODEL,
      max_tokens: 20,
      messages: user("rotate"),
    });
    assert.equal(done.type, "message");
    assert.deepEqual(fake.requests.map((r) => [r.key, r.status]), [["sk-ant-revoked", 401], [
      ANT_KEY,
      200,
    ]]);
  } finally {
    await stack.stop();
  }
});

// Anthropic reports an exhausted credit balance as 400 invalid_request_error.
Deno.test({
  name: "a channel key out of credit (400 credit balance too low) is skipped for the next one",
  fn: async () => {
    const { stack, fake } = await anthropicStack({
      keys: ["sk-ant-poor", ANT_KEY],
      fakeKeys: ["sk-ant-poor", ANT_KEY],
      lowCreditKeys: ["sk-ant-poor"],
    });
    try {
      const client = new Anthropic({
        apiKey: stack.key,
        baseURL: `${stack.hub.url}/anthropic`,
        maxRetries: 0,
      });
      await client.messages.create({ model: MODEL, max_tokens: 20, messages: user("rotate") });
      assert.deepEqual(fake.requests.map((r) => r.status), [400, 200]);
    } finally {
      await stack.stop();
    }
  },
});
