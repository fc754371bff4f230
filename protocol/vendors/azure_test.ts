import assert from "node:assert/strict";
import { allowedNetHosts, channelNetHosts } from "../../agent/permissions.ts";
import { azure, azureDeploymentFromPath, azureMissingApiVersion, azureOrigin } from "./azure.ts";
import { vendorNamed } from "./registry.ts";

Deno.test("azure is registered; its host comes from each channel's resource", () => {
  assert.equal(vendorNamed("azure"), azure);
  assert.deepEqual(azure.hosts, []);
  assert.equal(azureOrigin({ endpoint: "contoso-east" }), "https://contoso-east.openai.azure.com");
  for (const endpoint of [undefined, "", "a", "Contoso", "evil.com/x", "x".repeat(65), "a_b"]) {
    assert.throws(() => azureOrigin({ endpoint }), TypeError, String(endpoint));
  }
  const channels = [
    { vendor: "azure", endpoint: "contoso-east" },
    { vendor: "azure" }, // no endpoint: nothing allowed (its requests are refused)
    { vendor: "openai", endpoint: "ignored" },
  ];
  assert.deepEqual(channelNetHosts(channels), ["contoso-east.openai.azure.com:443"]);
  const hosts = allowedNetHosts("ws://127.0.0.1:8080/tunnel/connect", undefined, channels);
  assert.ok(hosts.includes("contoso-east.openai.azure.com:443"));
  assert.ok(hosts.includes("api.openai.com:443"));
  assert.ok(!hosts.some((h) => h.startsWith("ignored")));
});

Deno.test("the routing model is the deployment in the URL", () => {
  assert.equal(
    azureDeploymentFromPath("/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21"),
    "my-gpt4o",
  );
  assert.equal(azureDeploymentFromPath("/openai/deployments/emb.v3_x/embeddings"), "emb.v3_x");
  assert.equal(azureDeploymentFromPath("/openai/deployments/d/images/generations"), "d");
  for (
    const path of [
      "/openai/deployments/d/files",
      "/openai/deployments//chat/completions",
      "/openai/deployments/%2e%2e/chat/completions",
      "/openai/deployments/a%2Fb/chat/completions",
      "/openai/deployments/%zz/chat/completions",
      "/openai/v1/chat/completions",
      "/v1/chat/completions",
    ]
  ) {
    assert.equal(azureDeploymentFromPath(path), null, path);
  }
  const routes = azure.routes.map((r) => `${r.method} ${r.path} ${r.model}`);
  assert.ok(routes.includes("POST /openai/deployments/:deployment/chat/completions path"));
  assert.ok(routes.includes("POST /openai/deployments/:deployment/audio/transcriptions multipart"));
  assert.ok(routes.includes("POST /openai/v1/chat/completions json"));
  assert.ok(routes.includes("GET /openai/v1/models none"));
});

Deno.test("credentials: api-key first, else Bearer; the agent sends api-key only", () => {
  const cred = (h: Record<string, string>) => azure.clientCredential(new Headers(h));
  assert.equal(cred({ "api-key": "aq-1" }), "aq-1");
  assert.equal(cred({ authorization: "Bearer aq-2" }), "aq-2");
  assert.equal(cred({ "api-key": "aq-1", authorization: "Bearer aq-2" }), "aq-1");
  assert.equal(cred({ "api-key": " " }), null);
  assert.equal(cred({}), null);
  assert.deepEqual([...azure.credentialHeaders].sort(), ["api-key", "authorization"]);
  const headers = new Headers({ authorization: "Bearer aq-2" });
  azure.applyCredential(headers, "real");
  assert.equal(headers.get("api-key"), "real");
  assert.equal(headers.get("authorization"), null);
  assert.equal(azure.shouldRotateKey(401, ""), true);
  assert.equal(azure.shouldRotateKey(429, "exceeded token rate limit"), false);
});

Deno.test("errors use Azure's {error:{code,message}} envelope", async () => {
  const res = azure.errorResponse(azureMissingApiVersion());
  assert.equal(res.status, 400);
  assert.equal((await res.json()).error.code, "MissingApiVersionParameter");
  const plain = await azure.errorResponse({
    status: 401,
    type: "invalid_request_error",
    code: null,
    message: "bad key",
  }).json();
  assert.deepEqual(plain, {
    error: { code: "401", message: "bad key", type: "invalid_request_error" },
  });
});

Deno.test("streams: the leading prompt-filter chunk is skipped, usage found by usage != null", async () => {
  const enc = new TextEncoder();
  const path = "/openai/deployments/d/chat/completions?api-version=2024-10-21";
  const prepared = azure.usageExactness!.prepareRequest(
    path,
    enc.encode('{"messages":[],"stream":true}'),
  );
  assert.equal(prepared.restore, true);
  const { transform, result } = azure.usageExactness!.restoreResponse();
  const sse = [
    `data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[],"usage":null}\n\n`,
    `data: {"choices":[{"delta":{"content":"hi"},"index":0}],"model":"gpt-4o-2024-11-20","usage":null}\n\n`,
    `data: {"choices":[],"model":"gpt-4o-2024-11-20","usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n`,
    "data: [DONE]\n\n",
  ];
  const meter = azure.createMeter({ path, status: 200, contentType: "text/event-stream" });
  for (const s of sse) meter.push(enc.encode(s));
  const metered = meter.end();
  assert.equal(metered.model, "gpt-4o-2024-11-20");
  assert.equal(metered.promptTokens, 5);
  assert.equal(metered.complete, true);
  const writer = transform.writable.getWriter();
  const out: string[] = [];
  const reading = (async () => {
    const dec = new TextDecoder();
    for await (const c of transform.readable) out.push(dec.decode(c));
  })();
  {
    for (const s of sse) await writer.write(enc.encode(s));
    await writer.close();
    await reading;
    assert.equal(
      out.join(""),
      `data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[]}\n\n` +
        `data: {"choices":[{"delta":{"content":"hi"},"index":0}],"model":"gpt-4o-2024-11-20"}\n\n` +
        "data: [DONE]\n\n",
    );
    const r = result();
    assert.equal(r.promptTokens, 5);
    assert.equal(r.complete, true);
  }
});
