import assert from "node:assert/strict";
import OpenAI from "openai";
import {
  OPENAI_MODERATION_BLOCKED_BODY,
  openAIModerationBlockedResponse,
} from "./openai_moderation.ts";

const EXPECTED =
  '{"error":{"code":"sensitive_words_detected","message":"Content moderation failed with status 401","param":"","type":"hub_error"}}';

Deno.test("the block body is exactly the agreed bytes", async () => {
  assert.equal(OPENAI_MODERATION_BLOCKED_BODY, EXPECTED);
  const response = openAIModerationBlockedResponse();
  assert.equal(response.status, 400);
  assert.equal(response.headers.get("content-type"), "application/json");
  assert.deepEqual(
    new Uint8Array(await response.arrayBuffer()),
    new TextEncoder().encode(EXPECTED),
  );
  // Each call gives a fresh, unread body.
  assert.equal(await openAIModerationBlockedResponse().text(), EXPECTED);
});

Deno.test("the openai SDK raises BadRequestError with code sensitive_words_detected", async () => {
  let requests = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      requests++;
      await request.body?.cancel();
      return openAIModerationBlockedResponse();
    },
  );
  try {
    const client = new OpenAI({
      apiKey: "test-key",
      baseURL: `http://127.0.0.1:${server.addr.port}/v1`,
      maxRetries: 0,
    });
    const error = await client.chat.completions
      .create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] })
      .then(() => assert.fail("expected the request to be rejected"), (e: unknown) => e);
    assert.ok(error instanceof OpenAI.BadRequestError, `got ${error}`);
    assert.equal(error.status, 400);
    assert.equal(error.code, "sensitive_words_detected");
    assert.equal(error.type, "hub_error");
    assert.equal(requests, 1, "a 400 is not retried");
  } finally {
    await server.shutdown();
  }
});
