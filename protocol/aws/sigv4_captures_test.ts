/**
 * The 13 SigV4-signed Bedrock requests in shared/reference/sdk-captured-requests.txt (AWS SDK over
 * h2c, HTTP/1.1 and TLS h2, plus the Anthropic Bedrock SDK), reconstructed in
 * `testdata/bedrock_sigv4_captures.json`. The capture file truncates every `Signature=`, so each
 * entry carries the signature that `@smithy/signature-v4` (the AWS SDK's own signer) computes for
 * the captured method, wire path, signed headers and date; its prefix must equal the capture's.
 */
import assert from "node:assert/strict";
import { canonicalUri, parseAuthorization, signSigV4, verifySigV4 } from "./sigv4.ts";
import { sha256Hex } from "./payload.ts";
import { parseAmzDate } from "./sigv4_verify.ts";

interface Capture {
  name: string;
  method: string;
  rawPath: string;
  headers: Record<string, string>;
  body: string;
  capturedAuthorizationPrefix: string;
  smithyAuthorization: string;
}
const { captures } = JSON.parse(
  await Deno.readTextFile(new URL("./testdata/bedrock_sigv4_captures.json", import.meta.url)),
) as { captures: Capture[] };
const SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

Deno.test("captured Bedrock requests: body hash, SDK-signer signature verifies, ours is identical", async (t) => {
  assert.equal(captures.length, 13);
  for (const c of captures) {
    await t.step(c.name, async () => {
      const bodyHash = await sha256Hex(c.body);
      assert.equal(c.headers["x-amz-content-sha256"], bodyHash, "captured body hash");
      assert.ok(c.smithyAuthorization.startsWith(c.capturedAuthorizationPrefix));
      const a = parseAuthorization(c.smithyAuthorization);
      const h2 = c.headers[":authority"] !== undefined;
      assert.equal(a.signedHeaders.includes(":authority"), h2);
      assert.equal(a.signedHeaders.includes("host"), !h2);
      if (c.rawPath.includes("%3A")) assert.match(canonicalUri(c.rawPath), /%253A/);
      if (c.rawPath.includes("%2F")) assert.match(canonicalUri(c.rawPath), /%252F/);
      const nowMs = parseAmzDate(c.headers["x-amz-date"]!)! + 2_000;
      const request = {
        method: c.method,
        rawPath: c.rawPath,
        headers: { ...c.headers, authorization: c.smithyAuthorization },
      };
      const secretFor = (ak: string) => (ak === "AKIDEXAMPLE" ? SECRET : null);
      const r = await verifySigV4({ request, secretFor, nowMs, expectedService: "bedrock" });
      assert.ok(r.ok, !r.ok ? r.message : "");
      assert.equal(r.payloadHashPending, bodyHash, "the caller still checks the streamed body");
      const checked = await verifySigV4({
        request: { ...request, payloadHash: bodyHash },
        secretFor,
        nowMs,
      });
      assert.ok(checked.ok && checked.payloadHashPending === null);
      const tampered = await verifySigV4({
        request: { ...request, payloadHash: await sha256Hex(c.body + " ") },
        secretFor,
        nowMs,
      });
      assert.deepEqual(!tampered.ok && [tampered.code, tampered.reason], [
        "InvalidSignatureException",
        "payload",
      ]);
      const ours = await signSigV4({
        method: c.method,
        rawPath: c.rawPath,
        headers: c.headers,
        payloadHash: bodyHash,
        accessKeyId: a.accessKeyId,
        secretAccessKey: SECRET,
        region: a.region,
        service: a.service,
        amzDate: c.headers["x-amz-date"]!,
      });
      assert.equal(ours.authorization, c.smithyAuthorization);
    });
  }
});
