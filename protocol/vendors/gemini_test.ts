import assert from "node:assert/strict";
import {
  extractGeminiModerationInput,
  gemini,
  geminiModelFromPath,
  geminiUpstreamPath,
} from "./gemini.ts";

Deno.test("geminiModelFromPath: model before the method, both versions, nothing else", () => {
  assert.equal(
    geminiModelFromPath("/v1beta/models/gemini-3.5-flash:generateContent"),
    "gemini-3.5-flash",
  );
  assert.equal(
    geminiModelFromPath("/v1/models/gemini-3.5-flash:streamGenerateContent?alt=sse"),
    "gemini-3.5-flash",
  );
  assert.equal(
    geminiModelFromPath("/v1beta/models/gemini-embedding-001%3AbatchEmbedContents"),
    "gemini-embedding-001",
  );
  for (
    const bad of [
      "/v1beta/models/gemini-3.5-flash",
      "/v1beta/models/gemini-3.5-flash:deleteEverything",
      "/v1beta/models/:generateContent",
      "/v1beta/models/..%2Fx:generateContent",
      "/v1beta/tunedModels/x:generateContent",
      "/v2/models/x:generateContent",
    ]
  ) assert.equal(geminiModelFromPath(bad), null, bad);
});

Deno.test("the key query parameter is dropped from the forwarded path, the rest kept", () => {
  const u = (s: string) => new URL(s, "http://hub");
  assert.equal(
    geminiUpstreamPath(u("/v1beta/models/m:streamGenerateContent?alt=sse&key=AIza1")),
    "/v1beta/models/m:streamGenerateContent?alt=sse",
  );
  assert.equal(geminiUpstreamPath(u("/v1beta/models/m:x?key=a&%6Bey=b")), "/v1beta/models/m:x");
  assert.equal(
    geminiUpstreamPath(u("/v1beta/models?pageSize=2&x=%20")),
    "/v1beta/models?pageSize=2&x=%20",
  );
});

Deno.test("credentials: header first, then ?key=; the agent sends only the header", () => {
  const h = new Headers({ "x-goog-api-key": "hdr" });
  assert.equal(gemini.clientCredential(h, new URL("http://h/?key=q")), "hdr");
  assert.equal(gemini.clientCredential(new Headers(), new URL("http://h/?key=q")), "q");
  assert.equal(gemini.clientCredential(new Headers()), null);
  const out = new Headers({ authorization: "Bearer x" });
  gemini.applyCredential(out, "real");
  assert.equal(out.get("x-goog-api-key"), "real");
  assert.equal(out.get("authorization"), null);
});

Deno.test("key rotation: invalid key and spent quota rotate; a per-minute rate limit waits", () => {
  const err = (code: number, status: string, message: string, extra = "") =>
    JSON.stringify({ error: { code, message, status } }) + extra;
  assert.equal(
    gemini.shouldRotateKey(
      400,
      err(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."),
    ),
    true,
  );
  assert.equal(gemini.shouldRotateKey(400, err(400, "INVALID_ARGUMENT", "bad field")), false);
  assert.equal(
    gemini.shouldRotateKey(
      403,
      err(403, "PERMISSION_DENIED", "Your API key was reported as leaked."),
    ),
    true,
  );
  assert.equal(
    gemini.shouldRotateKey(
      429,
      err(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, check your plan and billing",
      ),
    ),
    true,
  );
  assert.equal(
    gemini.shouldRotateKey(
      429,
      err(429, "RESOURCE_EXHAUSTED", "Quota exceeded", '"GenerateRequestsPerMinutePerProject"'),
    ),
    false,
  );
  assert.equal(gemini.shouldRotateKey(401, ""), true);
  assert.equal(gemini.shouldRotateKey(503, "RESOURCE_EXHAUSTED billing"), false);
});

Deno.test("errors use Google's envelope", async () => {
  const res = gemini.errorResponse({
    status: 401,
    type: "invalid_request_error",
    code: "invalid_api_key",
    message: "Incorrect API key provided",
  });
  assert.equal(res.status, 401);
  const body = await res.json();
  assert.equal(body.error.code, 401);
  assert.equal(body.error.status, "UNAUTHENTICATED");
  assert.equal(body.error.message, "Incorrect API key provided");
  assert.equal(body.error.details[0].reason, "INVALID_API_KEY");
  assert.equal(
    (await gemini.errorResponse({
      status: 503,
      type: "x",
      code: null,
      message: "m",
    }).json()).error.status,
    "UNAVAILABLE",
  );
});

Deno.test("moderation input: system instruction, texts and inline images of generate calls", () => {
  const body = {
    systemInstruction: { parts: [{ text: "sys" }] },
    contents: [
      {
        role: "user",
        parts: [{ text: "hello" }, { inlineData: { mimeType: "image/png", data: "AAA" } }],
      },
      { role: "model", parts: [{ text: "reply" }] },
    ],
  };
  const got = extractGeminiModerationInput("/v1beta/models/m:streamGenerateContent?alt=sse", body);
  assert.deepEqual(got.texts, ["sys", "hello", "reply"]);
  assert.deepEqual(got.images, [{ kind: "data", mediaType: "image/png", base64: "AAA" }]);
  assert.deepEqual(
    extractGeminiModerationInput("/v1beta/models/m:countTokens", body).texts,
    [],
  );
});
