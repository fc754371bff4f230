/** verifySigV4 failure codes, caller-hashed bodies, and signatures made by aws4fetch. */
import assert from "node:assert/strict";
import { AwsClient } from "aws4fetch";
import { signSigV4, verifySigV4 } from "./sigv4.ts";
import {
  constantTimeEqualHex,
  createSha256,
  EMPTY_SHA256,
  payloadHashMatches,
  sha256Hex,
} from "./payload.ts";
const AK = "AKIDEXAMPLE";
const SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const secretFor = (ak: string) => (ak === AK ? SECRET : null);

/** Signs a capture-shaped h2 converse request with our signer and returns its facts. */
async function h2Request(over: { body?: string; amzDate?: string; service?: string } = {}) {
  const body = over.body ?? '{"messages":[{"role":"user","content":[{"text":"hi"}]}]}';
  const amzDate = over.amzDate ?? "20261122T013418Z";
  const headers: Record<string, string> = {
    ":authority": "127.0.0.1:18081",
    "content-type": "application/json",
    "content-length": String(body.length),
    "x-amz-date": amzDate,
    "x-amz-content-sha256": await sha256Hex(body),
  };
  const rawPath = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse";
  const s = await signSigV4({
    method: "POST",
    rawPath,
    headers,
    payloadHash: headers["x-amz-content-sha256"]!,
    accessKeyId: AK,
    secretAccessKey: SECRET,
    region: "us-east-1",
    service: over.service ?? "bedrock",
    amzDate,
  });
  const all: Record<string, string | undefined> = { ...headers, authorization: s.authorization };
  return { method: "POST", rawPath, headers: all };
}

const NOW = Date.UTC(2026, 10, 22, 1, 34, 18);
const verify = (request: Parameters<typeof verifySigV4>[0]["request"], nowMs = NOW) =>
  verifySigV4({ request, secretFor, nowMs, expectedService: "bedrock" });

Deno.test("verifySigV4: each failure gets its code", async () => {
  const req = await h2Request();
  const ok = await verify(req);
  assert.ok(ok.ok && ok.payloadHashPending === req.headers["x-amz-content-sha256"]);
  const sig = req.headers.authorization!.slice(-64);
  const flipped = (sig[0] === "0" ? "1" : "0") + sig.slice(1);
  const cases: [string, Parameters<typeof verify>[0], string, string?, number?][] = [
    [
      "no auth",
      { ...req, headers: { ...req.headers, authorization: "" } },
      "MissingAuthenticationTokenException",
    ],
    [
      "garbled",
      { ...req, headers: { ...req.headers, authorization: "AWS4-HMAC-SHA256 x" } },
      "IncompleteSignatureException",
    ],
    [
      "tampered signature",
      {
        ...req,
        headers: {
          ...req.headers,
          authorization: req.headers.authorization!.slice(0, -64) + flipped,
        },
      },
      "InvalidSignatureException",
      "mismatch",
    ],
    [
      "tampered declared hash",
      { ...req, headers: { ...req.headers, "x-amz-content-sha256": EMPTY_SHA256 } },
      "InvalidSignatureException",
      "mismatch",
    ],
    [
      "body differs from declared hash",
      { ...req, payloadHash: EMPTY_SHA256 },
      "InvalidSignatureException",
      "payload",
    ],
    [
      "tampered path",
      { ...req, rawPath: req.rawPath.replace("converse", "invoke") },
      "InvalidSignatureException",
      "mismatch",
    ],
    [
      "tampered signed header",
      { ...req, headers: { ...req.headers, "content-length": "1" } },
      "InvalidSignatureException",
      "mismatch",
    ],
    ["16 min late", req, "InvalidSignatureException", "skew", NOW + 16 * 60_000],
    ["16 min early", req, "InvalidSignatureException", "skew", NOW - 16 * 60_000],
    ["unknown key", {
      ...req,
      headers: {
        ...req.headers,
        authorization: req.headers.authorization!.replace(AK, "AKIDOTHER"),
      },
    }, "UnrecognizedClientException"],
    [
      "missing signed header",
      { ...req, headers: { ...req.headers, "content-length": undefined } },
      "IncompleteSignatureException",
    ],
    ["h2 authority sent as host", {
      ...req,
      headers: { ...req.headers, ":authority": undefined, host: "127.0.0.1:18081" },
    }, "IncompleteSignatureException"],
    [
      "bad x-amz-date",
      { ...req, headers: { ...req.headers, "x-amz-date": "20261122T253418Z" } },
      "IncompleteSignatureException",
    ],
    ["streaming payload", {
      ...req,
      headers: { ...req.headers, "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" },
    }, "IncompleteSignatureException"],
    ["unsigned payload", {
      ...req,
      headers: { ...req.headers, "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
    }, "IncompleteSignatureException"],
  ];
  for (const [name, request, code, reason, nowMs] of cases) {
    const r = await verify(request, nowMs);
    assert.equal(r.ok, false, name);
    if (!r.ok) assert.deepEqual([r.code, r.reason], [code, reason], `${name}: ${r.message}`);
  }
  const withinSkew = await verify(req, NOW + 14 * 60_000);
  assert.ok(withinSkew.ok);
  const s3 = await h2Request({ service: "s3" });
  const wrong = await verify(s3);
  assert.deepEqual(!wrong.ok && [wrong.code, wrong.reason], ["InvalidSignatureException", "scope"]);
  assert.ok((await verifySigV4({ request: s3, secretFor, nowMs: NOW })).ok, "no expectedService");
  const nextDay = await h2Request({ amzDate: "20261123T000500Z" });
  nextDay.headers["x-amz-date"] = "20261122T235500Z";
  const scope = await verify(nextDay, Date.UTC(2026, 10, 22, 23, 55));
  assert.deepEqual(!scope.ok && scope.reason, "scope");
});

Deno.test("verifySigV4: without x-amz-content-sha256 the caller's body hash is signed", async () => {
  const body = new TextEncoder().encode('{"x":1}');
  const h = createSha256();
  h.update(body.subarray(0, 3));
  h.update(body.subarray(3));
  const actual = h.digestHex();
  assert.equal(actual, await sha256Hex(body));
  const headers = { host: "hub:443", "x-amz-date": "20261122T013418Z" };
  const s = await signSigV4({
    method: "POST",
    rawPath: "/x",
    headers,
    payloadHash: actual,
    accessKeyId: AK,
    secretAccessKey: SECRET,
    region: "eu-central-1",
    service: "bedrock",
    amzDate: headers["x-amz-date"],
  });
  const request = {
    method: "POST",
    rawPath: "/x",
    headers: { ...headers, authorization: s.authorization },
  };
  assert.ok((await verify({ ...request, payloadHash: actual })).ok);
  const tampered = await verify({ ...request, payloadHash: EMPTY_SHA256 });
  assert.deepEqual(!tampered.ok && tampered.reason, "mismatch");
  const none = await verify(request);
  assert.deepEqual(!none.ok && none.code, "IncompleteSignatureException");
  assert.ok(payloadHashMatches(actual, actual.toUpperCase()));
  assert.ok(!payloadHashMatches("UNSIGNED-PAYLOAD", actual));
  assert.ok(payloadHashMatches("UNSIGNED-PAYLOAD", actual, { allowUnsigned: true }));
  assert.ok(!constantTimeEqualHex("abc", "abcd") && !constantTimeEqualHex("abd", "abc"));
});

Deno.test("aws4fetch signatures (service bedrock, fixed datetime) verify, incl. %3A and %2F", async () => {
  const aws = new AwsClient({
    accessKeyId: AK,
    secretAccessKey: SECRET,
    service: "bedrock",
    region: "us-east-1",
  });
  const host = "bedrock-runtime.us-east-1.amazonaws.com";
  const ids = [
    "anthropic.claude-3-haiku-20240307-v1%3A0",
    "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-sonnet-4-5-20250929-v1%3A0",
  ];
  for (const id of ids) {
    for (const query of ["", "?b=2&a=x%20y"]) {
      const body = '{"messages":[{"role":"user","content":[{"text":"hi"}]}]}';
      const signed = await aws.sign(`https://${host}/model/${id}/converse${query}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        aws: { datetime: "20261122T013418Z" },
      });
      const url = new URL(signed.url);
      assert.equal(url.pathname, `/model/${id}/converse`, "aws4fetch keeps the wire encoding");
      const headers: Record<string, string> = {};
      signed.headers.forEach((v, k) => (headers[k] = v));
      headers.host = host;
      const request = {
        method: "POST",
        rawPath: url.pathname,
        rawQuery: url.search.slice(1),
        headers,
      };
      const r = await verify({ ...request, payloadHash: await sha256Hex(body) });
      assert.ok(r.ok, `${id}${query}: ${!r.ok && r.message}`);
      const decoded = await verify({
        ...request,
        rawPath: decodeURIComponent(url.pathname),
        payloadHash: await sha256Hex(body),
      });
      assert.equal(decoded.ok, false, "a decoded path must not verify");
    }
  }
});

Deno.test("the aws4fetch signature recorded in deno-on-these-machines §7 verifies", async () => {
  const body =
    '{"anthropic_version":"bedrock-2023-05-31","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}';
  const r = await verifySigV4({
    request: {
      method: "POST",
      rawPath: "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke",
      headers: {
        host: "bedrock-runtime.us-east-1.amazonaws.com",
        "x-amz-date": "20250101T000000Z",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/bedrock/" +
          "aws4_request, SignedHeaders=host;x-amz-date, " +
          "Signature=4bdfa5942ac4657b899a6024331aafc400dd9908dc7cb98856d3c9873d5c0aa0",
      },
      payloadHash: await sha256Hex(body),
    },
    secretFor,
    nowMs: Date.UTC(2025, 0, 1, 0, 5),
    expectedService: "bedrock",
  });
  assert.ok(r.ok, !r.ok ? r.message : "");
});
