import assert from "node:assert/strict";
import {
  anthropic,
  ANTHROPIC_MODERATION_BLOCKED_BODY,
  anthropicErrorType,
  extractAnthropicModerationInput,
} from "./anthropic.ts";
import { EXTRACT_IMAGES_MAX, EXTRACT_TEXT_MAX_CHARS } from "./openai_moderation.ts";
import { vendorNamed } from "./registry.ts";
import { OFFICIAL_VENDOR_HOSTS } from "./hosts.ts";

Deno.test("anthropic is registered; its host is on the agent's allow-list", () => {
  assert.equal(vendorNamed("anthropic"), anthropic);
  assert.ok(OFFICIAL_VENDOR_HOSTS.includes("api.anthropic.com:443"));
  assert.deepEqual(
    anthropic.routes.map((r) => `${r.method} ${r.path}`),
    ["POST /v1/messages", "POST /v1/messages/count_tokens", "GET /v1/models"],
  );
});

Deno.test("client credential: x-api-key first, else Bearer; both headers are stripped", () => {
  const cred = (h: Record<string, string>) => anthropic.clientCredential(new Headers(h));
  assert.equal(cred({ "x-api-key": "aq-1" }), "aq-1");
  assert.equal(cred({ authorization: "Bearer aq-2" }), "aq-2");
  assert.equal(cred({ authorization: "bearer  aq-3 " }), "aq-3");
  assert.equal(cred({ "x-api-key": "aq-1", authorization: "Bearer aq-2" }), "aq-1");
  assert.equal(cred({ authorization: "Basic abc" }), null);
  assert.equal(cred({ "x-api-key": "  " }), null);
  assert.equal(cred({}), null);
  assert.deepEqual([...anthropic.credentialHeaders].sort(), ["authorization", "x-api-key"]);
  const headers = new Headers({ authorization: "Bearer aq-2", "anthropic-version": "2026-10-21" });
  anthropic.applyCredential(headers, "sk-ant-real");
  assert.equal(headers.get("x-api-key"), "sk-ant-real");
  assert.equal(headers.get("authorization"), null);
  assert.equal(headers.get("anthropic-version"), "2026-10-21");
});

Deno.test("key rotation: bad key and exhausted credit rotate; rate limits and overload don't", () => {
  const env = (type: string, message: string) =>
    JSON.stringify({ type: "error", error: { type, message } });
  const rotate = (status: number, body: string) => anthropic.shouldRotateKey(status, body);
  assert.ok(rotate(401, env("authentication_error", "invalid x-api-key")));
  assert.ok(rotate(402, env("billing_error", "Billing error")));
  assert.ok(rotate(
    400,
    env(
      "invalid_request_error",
      "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
    ),
  ));
  assert.ok(rotate(403, env("permission_error", "Your credit balance is too low")));
  assert.ok(rotate(
    429,
    JSON.stringify({
      type: "error",
      error: {
        type: "rate_limit_error",
        message: "spend limit",
        details: { error_code: "enforced_spend_limit_reached" },
      },
    }),
  ));
  assert.ok(!rotate(429, env("rate_limit_error", "Number of request tokens has exceeded")));
  assert.ok(!rotate(529, env("overloaded_error", "Overloaded")));
  assert.ok(!rotate(400, env("invalid_request_error", "max_tokens: Field required")));
  assert.ok(!rotate(403, env("permission_error", "not allowed to use this model")));
  assert.ok(!rotate(500, env("api_error", "Internal server error")));
});

Deno.test("errors: Anthropic's envelope, type chosen by status, gateway code in details", async () => {
  const table: [number, string][] = [
    [400, "invalid_request_error"],
    [401, "authentication_error"],
    [403, "permission_error"],
    [404, "not_found_error"],
    [405, "invalid_request_error"],
    [413, "request_too_large"],
    [429, "rate_limit_error"],
    [500, "api_error"],
    [502, "api_error"],
    [503, "overloaded_error"],
    [529, "overloaded_error"],
  ];
  for (const [status, type] of table) assert.equal(anthropicErrorType(status), type, `${status}`);
  const res = anthropic.errorResponse(
    { status: 401, type: "invalid_request_error", code: "invalid_api_key", message: "Nope." },
    { "x-extra": "1" },
  );
  assert.equal(res.status, 401);
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.equal(res.headers.get("x-extra"), "1");
  assert.deepEqual(await res.json(), {
    type: "error",
    error: {
      type: "authentication_error",
      message: "Nope.",
      details: { error_code: "invalid_api_key" },
    },
  });
  const plain = anthropic.errorResponse({ status: 404, type: "x", code: null, message: "m" });
  assert.deepEqual(await plain.json(), {
    type: "error",
    error: { type: "not_found_error", message: "m" },
  });
});

Deno.test("moderation block: a stable 400 invalid_request_error body, fresh per call", async () => {
  const a = anthropic.moderationBlockedResponse(), b = anthropic.moderationBlockedResponse();
  assert.equal(a.status, 400);
  assert.equal(await a.text(), ANTHROPIC_MODERATION_BLOCKED_BODY);
  const body = await b.json();
  assert.equal(body.type, "error");
  assert.equal(body.error.type, "invalid_request_error");
});

Deno.test("models: Anthropic's list shape", async () => {
  const body = await anthropic.modelsResponse(["claude-a", "claude-b"]).json();
  assert.deepEqual(body.data[0], {
    type: "model",
    id: "claude-a",
    display_name: "claude-a",
    created_at: "1970-01-01T00:00:00Z",
  });
  assert.deepEqual([body.has_more, body.first_id, body.last_id], [false, "claude-a", "claude-b"]);
  const empty = await anthropic.modelsResponse([]).json();
  assert.deepEqual(empty, { data: [], has_more: false, first_id: null, last_id: null });
});

Deno.test("moderation input: system, every message, text/image/document/tool_result blocks", () => {
  const got = extractAnthropicModerationInput("/v1/messages?beta=true", {
    system: [{ type: "text", text: "sys" }],
    messages: [
      { role: "user", content: "plain" },
      {
        role: "user",
        content: [
          { type: "text", text: "block" },
          { type: "image", source: { type: "base64", media_type: "image/png", data: "iVBOR" } },
          { type: "image", source: { type: "url", url: "https://x.test/a.jpg" } },
          { type: "image", source: { type: "file", file_id: "file_1" } },
          { type: "document", source: { type: "text", media_type: "text/plain", data: "doc" } },
          { type: "tool_result", tool_use_id: "t", content: [{ type: "text", text: "tool" }] },
          { type: "thinking", thinking: "ignored" },
          null,
          7,
        ],
      },
      { role: "assistant", content: [{ type: "text", text: "earlier answer" }] },
      "junk",
    ],
  });
  assert.deepEqual(got.texts, ["sys", "plain", "block", "doc", "tool", "earlier answer"]);
  assert.deepEqual(got.images, [
    { kind: "data", mediaType: "image/png", base64: "iVBOR" },
    { kind: "url", url: "https://x.test/a.jpg" },
  ]);
  assert.equal(got.truncated, false);
  assert.deepEqual(extractAnthropicModerationInput("/v1/messages", { system: "s" }).texts, ["s"]);
  const none = { texts: [], images: [], truncated: false };
  assert.deepEqual(
    extractAnthropicModerationInput("/v1/messages/count_tokens", { system: "s" }),
    none,
  );
  assert.deepEqual(extractAnthropicModerationInput("/v1/messages", "nope"), none);
  assert.deepEqual(extractAnthropicModerationInput("/v1/messages", { messages: 5 }), none);
});

Deno.test("moderation input is bounded: text budget and image count", () => {
  const big = "a".repeat(EXTRACT_TEXT_MAX_CHARS + 10);
  const text = extractAnthropicModerationInput("/v1/messages", {
    system: "s",
    messages: [{ content: big }],
  });
  assert.equal(text.truncated, true);
  assert.equal(text.texts.join("").length, EXTRACT_TEXT_MAX_CHARS);
  const image = { type: "image", source: { type: "url", url: "https://x.test/i.png" } };
  const many = extractAnthropicModerationInput("/v1/messages", {
    messages: [{ content: Array.from({ length: EXTRACT_IMAGES_MAX + 1 }, () => image) }],
  });
  assert.equal(many.images.length, EXTRACT_IMAGES_MAX);
  assert.equal(many.truncated, true);
});
