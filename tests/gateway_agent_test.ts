/**
 * Agent-side behaviour behind the OpenAI surface: key rotation before the first byte, request ids
 * that follow a request through hub and agent, the LLM moderator asking a moderation model through
 * the tunnel, and the idle timeout between chunks.
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { waitFor } from "./support/process.ts";
import { post, startStack, VENDOR_KEY } from "./support/stack.ts";

Deno.test("a rejected or quota-exhausted key is replaced by the channel's next key before any byte", async () => {
  const stack = await startStack({
    channelKeys: ["sk-revoked-key-0", "sk-no-quota-key-1", VENDOR_KEY],
    fakeKeys: [VENDOR_KEY, "sk-no-quota-key-1"],
    quotaExhaustedKeys: ["sk-no-quota-key-1"],
  });
  const client = new OpenAI({ apiKey: stack.key, baseURL: stack.baseURL, maxRetries: 0 });
  try {
    const done = await client.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "rotate please" }],
    });
    assert.match(done.choices[0]!.message.content!, /^Echo: rotate please/);
    const keys = stack.fake.requests.map((r) => r.key);
    assert.deepEqual(keys, ["sk-revoked-key-0", "sk-no-quota-key-1", VENDOR_KEY]);
    assert.deepEqual(stack.fake.requests.map((r) => r.status), [401, 429, 200]);
    const served = await stack.agent.waitForLine((l) => l.msg === "request served", "agent served");
    assert.equal(served.keyRotations, 2);
    assert.ok(!stack.agent.dump().includes(VENDOR_KEY), "keys never logged by the agent");
  } finally {
    await stack.stop();
  }
});

Deno.test("a plain rate limit (not quota) is passed to the client, not rotated away", async () => {
  const stack = await startStack({ channelKeys: [VENDOR_KEY, "sk-spare"] });
  try {
    const res = await post(`${stack.baseURL}/chat/completions`, stack.key, {
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "slow down [[status:429]]" }],
    });
    assert.equal(res.status, 429);
    assert.equal(stack.fake.requests.length, 1, "no retry with the spare key");
  } finally {
    await stack.stop();
  }
});

Deno.test("x-request-id: accepted from the client, returned, and shared by hub and agent logs", async () => {
  const stack = await startStack();
  try {
    const res = await post(`${stack.baseURL}/chat/completions`, stack.key, {
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "trace me" }],
    }, { "x-request-id": "client-trace-42" });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-request-id"), "client-trace-42");
    assert.match(
      res.headers.get("x-upstream-request-id") ?? "",
      /^req_/,
      "the vendor's own id is kept too",
    );
    const hubLine = await waitFor(
      () =>
        stack.hub.proc.lines.find((l) =>
          l.msg === "request finished" && l.traceId === "client-trace-42"
        ),
      "hub log with the trace id",
    );
    const agentLine = await stack.agent.waitForLine((l) => l.msg === "request served", "agent log");
    assert.equal(agentLine.requestId, hubLine.requestId, "one id through hub, tunnel and agent");
    const generated = await post(`${stack.baseURL}/chat/completions`, stack.key, {
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "no trace" }],
    }, { "x-request-id": "bad id with spaces" });
    assert.match(generated.headers.get("x-request-id") ?? "", /^req_[0-9a-f]{24}$/);
    for (const line of [...stack.hub.proc.lines, ...stack.agent.lines]) {
      const text = JSON.stringify(line);
      assert.ok(
        !text.includes("trace me") && !text.includes("Echo:"),
        `no bodies in logs: ${text}`,
      );
    }
  } finally {
    await stack.stop();
  }
});

Deno.test("LLM moderator: a moderation model asked through the tunnel blocks flagged text and images", async () => {
  const stack = await startStack({ hubEnv: { HUB_MODERATION_MODEL: "omni-moderation-latest" } });
  const client = new OpenAI({ apiKey: stack.key, baseURL: stack.baseURL, maxRetries: 0 });
  try {
    await assert.rejects(
      client.chat.completions.create({
        model: "gpt-4o-mini",
        messages: [{
          role: "user",
          content: [
            { type: "text", text: "describe this FORBIDDEN thing" },
            { type: "image_url", image_url: { url: "https://example.com/cat.png" } },
          ],
        }],
      }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.code === "sensitive_words_detected",
    );
    const ok = await client.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "a harmless question" }],
    });
    assert.ok(ok.choices[0]!.message.content);
    const paths = stack.fake.requests.map((r) => r.path);
    assert.deepEqual(paths, ["/v1/moderations", "/v1/moderations", "/v1/chat/completions"]);
  } finally {
    await stack.stop();
  }
});

Deno.test("a stream silent for longer than the idle timeout fails instead of hanging", async () => {
  const stack = await startStack({ hubEnv: { HUB_STREAM_IDLE_TIMEOUT_MS: "300" } });
  const client = new OpenAI({ apiKey: stack.key, baseURL: stack.baseURL, maxRetries: 0 });
  try {
    const stream = await client.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "stall [[words:5]] [[delay:1000]]" }],
      stream: true,
    });
    const started = performance.now();
    await assert.rejects(async () => {
      for await (const _ of stream) { /* the second chunk never comes in time */ }
    });
    assert.ok(performance.now() - started < 2500, "failed at the idle timeout, not at the end");
    await waitFor(
      () => stack.fake.requests.find((r) => r.cancelledAt !== undefined),
      "the vendor request is cancelled too",
    );
  } finally {
    await stack.stop();
  }
});
