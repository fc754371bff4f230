import assert from "node:assert/strict";
import { OFFICIAL_VENDOR_HOSTS } from "./hosts.ts";
import { vendorNamed } from "./registry.ts";
import type { CredentialFetch } from "./types.ts";
import { parseVertexPath, vertex, vertexModelFromPath, vertexOrigin } from "./vertex.ts";
import { AccessTokenCache, GOOGLE_TOKEN_URL, parseServiceAccount } from "./vertex_auth.ts";
import { makeServiceAccount } from "../../tests/fakes/vertex.ts";

const P = "/v1beta1/projects/my-proj/locations/us-central1/publishers";

Deno.test("vertex: registered; the token host is allow-listed", () => {
  assert.equal(vendorNamed("vertex"), vertex);
  assert.ok(OFFICIAL_VENDOR_HOSTS.includes("oauth2.googleapis.com:443"));
});

Deno.test("vertex: the model and method come from the path", () => {
  assert.equal(
    vertexModelFromPath(`${P}/google/models/gemini-2.5-flash:generateContent`),
    "gemini-2.5-flash",
  );
  assert.equal(
    vertexModelFromPath(`${P}/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse`),
    "gemini-2.5-flash",
  );
  assert.equal(
    vertexModelFromPath(
      "/v1/projects/p1/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict",
    ),
    "claude-sonnet-4-5@20250929",
  );
  assert.equal(vertexModelFromPath(`${P}/google/models/gemini:embedContent`), null);
  assert.equal(vertexModelFromPath(`${P}/google/models/gemini:rawPredict`), null);
  assert.equal(vertexModelFromPath(`${P}/anthropic/models/claude-x:generateContent`), null);
  assert.equal(vertexModelFromPath(`${P}/meta/models/llama:predict`), null);
  assert.equal(vertexModelFromPath(`${P}/anthropic/models/count-tokens:rawPredict`), null);
  assert.equal(vertexModelFromPath("/v1beta1/publishers/google/models/g:generateContent"), null);
  assert.equal(
    vertexModelFromPath("/v1/projects/p/locations/US_BAD/publishers/google/models/g:countTokens"),
    null,
  );
  assert.equal(parseVertexPath(`${P}/google/models/g:predict?x=1`)?.query, "?x=1");
});

Deno.test("vertex: the origin follows the channel's location; other locations are refused", () => {
  assert.equal(
    vertexOrigin({ endpoint: "us-central1" }),
    "https://us-central1-aiplatform.googleapis.com",
  );
  assert.equal(vertexOrigin({ endpoint: "global" }), "https://aiplatform.googleapis.com");
  assert.equal(vertexOrigin({ endpoint: "eu" }), "https://aiplatform.eu.rep.googleapis.com");
  assert.throws(() => vertexOrigin({}), /--endpoint/);
  assert.throws(() => vertexOrigin({ endpoint: "evil.com/x" }), /--endpoint/);
  assert.equal(
    vertexOrigin({ endpoint: "us-central1" }, `${P}/google/models/g:generateContent`),
    "https://us-central1-aiplatform.googleapis.com",
  );
  assert.throws(
    () =>
      vertexOrigin(
        { endpoint: "us-central1" },
        `${P.replace("us-central1", "europe-west4")}/google/models/g:generateContent`,
      ),
    /serves location us-central1/,
  );
});

Deno.test("vertex: client bearer credential; meters by publisher", () => {
  assert.equal(vertex.clientCredential(new Headers({ authorization: "Bearer aq-1" })), "aq-1");
  const claude = vertex.createMeter({
    path: `${P}/anthropic/models/claude-x:rawPredict`,
    status: 200,
    contentType: "application/json",
  });
  claude.push(
    new TextEncoder().encode('{"model":"claude-x","usage":{"input_tokens":3,"output_tokens":4}}'),
  );
  const r = claude.end();
  assert.equal(r.usage?.inputTokens, 3);
  assert.equal(r.usage?.outputTokens, 4);
  const gem = vertex.createMeter({
    path: `${P}/google/models/g:generateContent`,
    status: 200,
    contentType: "application/json",
  });
  gem.push(
    new TextEncoder().encode(
      '{"candidates":[{"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":6}}',
    ),
  );
  assert.equal(gem.end().usage?.outputTokens, 6);
});

Deno.test("vertex: service-account keys are validated without quoting them", () => {
  assert.throws(
    () => parseServiceAccount("not json SECRET"),
    (e: Error) => !e.message.includes("SECRET"),
  );
  assert.throws(
    () => parseServiceAccount(JSON.stringify({ type: "authorized_user", client_secret: "SECRET" })),
    (e: Error) => !e.message.includes("SECRET"),
  );
});

Deno.test("vertex: the access token is minted once, reused, renewed 5 min before expiry", async () => {
  const sa = await makeServiceAccount("owner-proj");
  const seen: string[] = [];
  let n = 0;
  const fetcher: CredentialFetch = async (url, init) => {
    assert.equal(url, GOOGLE_TOKEN_URL);
    const form = new URLSearchParams(String(init.body));
    const [h, c, s] = form.get("assertion")!.split(".");
    const b64 = (x: string) =>
      Uint8Array.from(atob(x.replace(/-/g, "+").replace(/_/g, "/")), (ch) => ch.charCodeAt(0));
    assert.ok(
      await crypto.subtle.verify(
        "RSASSA-PKCS1-v1_5",
        sa.publicKey,
        b64(s!),
        new TextEncoder().encode(`${h}.${c}`),
      ),
    );
    seen.push(JSON.parse(new TextDecoder().decode(b64(c!))).iss);
    await new Promise((r) => setTimeout(r, 5));
    return Response.json({ access_token: `ya29.t${++n}`, expires_in: 3600, token_type: "Bearer" });
  };
  const cache = new AccessTokenCache();
  const t0 = 1_800_000_000_000;
  const [a, b] = await Promise.all([
    cache.get(sa.json, fetcher, t0),
    cache.get(sa.json, fetcher, t0),
  ]);
  assert.equal(a, "ya29.t1");
  assert.equal(b, "ya29.t1", "concurrent requests share one exchange");
  assert.equal(await cache.get(sa.json, fetcher, t0 + 54 * 60_000), "ya29.t1");
  assert.equal(await cache.get(sa.json, fetcher, t0 + 56 * 60_000), "ya29.t2");
  assert.deepEqual(seen, [sa.clientEmail, sa.clientEmail]);

  const refused: CredentialFetch = () =>
    Promise.resolve(
      Response.json({ error: "invalid_grant", error_description: "Invalid JWT Signature." }, {
        status: 400,
      }),
    );
  await assert.rejects(
    new AccessTokenCache().get(sa.json, refused, t0),
    (e: Error) => /Invalid JWT Signature/.test(e.message) && !e.message.includes("PRIVATE"),
  );
});

Deno.test("vertex: credentialFor puts the token on and the owner's project in the path", async () => {
  const sa = await makeServiceAccount("owner-proj");
  const fetcher: CredentialFetch = () =>
    Promise.resolve(Response.json({ access_token: "ya29.x", expires_in: 3600 }));
  const out = await vertex.credentialFor!(
    { key: sa.json, path: `${P}/google/models/g:streamGenerateContent?alt=sse` },
    fetcher,
    Date.now(),
  );
  assert.deepEqual(out.headers, { authorization: "Bearer ya29.x" });
  assert.equal(
    out.path,
    "/v1beta1/projects/owner-proj/locations/us-central1/publishers/google/models/g:streamGenerateContent?alt=sse",
  );
});
