import assert from "node:assert/strict";
import { openai } from "../../protocol/vendors/openai.ts";
import { azure } from "../../protocol/vendors/azure.ts";
import { upstreamNetHost, UpstreamRefusedError, upstreamUrl } from "./whitelist.ts";

Deno.test("upstream URLs are the official origin plus a checked path", () => {
  assert.equal(
    upstreamUrl(openai, "/v1/chat/completions").href,
    "https://api.openai.com/v1/chat/completions",
  );
  assert.equal(
    upstreamUrl(openai, "/v1/models?limit=2").href,
    "https://api.openai.com/v1/models?limit=2",
  );
  const dev = { "api.openai.com": "http://127.0.0.1:9999" };
  assert.equal(
    upstreamUrl(openai, "/v1/embeddings", dev).href,
    "http://127.0.0.1:9999/v1/embeddings",
  );
});

Deno.test("paths that could leave the official host or prefix are refused", () => {
  for (
    const path of [
      "//evil.example/v1/x",
      "https://evil.example/v1/x",
      "@evil.example/v1/x",
      "/v1/../admin",
      "/v1/%2e%2e/admin",
      "/v1/%2E/x",
      "/v2/chat",
      "/v1\\..\\x",
      "/v1/x#frag",
      "/v1/x y",
      "/v1/x\r\nHost: evil",
      "v1/chat",
      "",
    ]
  ) {
    assert.throws(() => upstreamUrl(openai, path), UpstreamRefusedError, path);
  }
});

Deno.test("vendors on per-account hosts call the channel's own origin", () => {
  const channel = { endpoint: "contoso-east" };
  const path = "/openai/deployments/d/chat/completions?api-version=2024-10-21";
  assert.equal(
    upstreamUrl(azure, path, undefined, channel).href,
    `https://contoso-east.openai.azure.com${path}`,
  );
  const dev = { "contoso-east.openai.azure.com": "http://127.0.0.1:9999" };
  assert.equal(upstreamUrl(azure, path, dev, channel).href, `http://127.0.0.1:9999${path}`);
  assert.equal(
    upstreamUrl(azure, path, undefined, channel).href,
    `https://contoso-east.openai.azure.com${path}`,
  );
  assert.equal(
    upstreamUrl(openai, "/v1/models", undefined, channel).origin,
    "https://api.openai.com",
  );
  assert.equal(upstreamNetHost(azure, channel), "contoso-east.openai.azure.com:443");
  // Without a (valid) endpoint there is nowhere to call.
  assert.throws(() => upstreamUrl(azure, path), UpstreamRefusedError);
  assert.throws(() => upstreamUrl(azure, path, undefined, {}), UpstreamRefusedError);
  assert.throws(
    () => upstreamUrl(azure, path, undefined, { endpoint: "evil.com" }),
    UpstreamRefusedError,
  );
});
