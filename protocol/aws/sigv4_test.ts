/** SigV4 building blocks against AWS published vectors; Authorization parsing. */
import assert from "node:assert/strict";
import {
  canonicalQuery,
  canonicalRequest,
  canonicalUri,
  parseAuthorization,
  signingKey,
  signSigV4,
  SigV4ParseError,
  verifySigV4,
} from "./sigv4.ts";
import { EMPTY_SHA256, hex, sha256Hex } from "./payload.ts";

const AK = "AKIDEXAMPLE";
const SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const secretFor = (ak: string) => (ak === AK ? SECRET : null);
const T2015 = Date.UTC(2015, 7, 30, 12, 36, 0);

Deno.test("AWS published vectors: key derivation, get-vanilla, query order, IAM ListUsers", async () => {
  const key = await signingKey(SECRET, { date: "20150830", region: "us-east-1", service: "iam" });
  assert.equal(hex(key), "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
  const base = { host: "example.amazonaws.com", "x-amz-date": "20150830T123600Z" };
  const sign = (rawQuery: string, service = "service", headers: Record<string, string> = base) =>
    signSigV4({
      method: "GET",
      rawPath: "/",
      rawQuery,
      headers,
      payloadHash: EMPTY_SHA256,
      accessKeyId: AK,
      secretAccessKey: SECRET,
      region: "us-east-1",
      service,
      amzDate: "20150830T123600Z",
    });
  assert.equal(
    (await sign("")).signature,
    "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
  );
  assert.equal(
    (await sign("Param2=value2&Param1=value1")).signature,
    "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
  );
  const iam = await sign("Action=ListUsers&Version=2010-05-08", "iam", {
    "content-type": "application/x-www-form-urlencoded; charset=utf-8",
    host: "iam.amazonaws.com",
    "x-amz-date": "20150830T123600Z",
  });
  assert.equal(
    await sha256Hex(iam.canonicalRequest),
    "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59",
  );
  assert.equal(iam.signature, "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
  const r = await verifySigV4({
    request: {
      method: "GET",
      rawPath: "/",
      headers: { ...base, authorization: (await sign("")).authorization },
      payloadHash: EMPTY_SHA256,
    },
    secretFor,
    nowMs: T2015,
  });
  assert.deepEqual(r.ok && [r.accessKeyId, r.service, r.payloadHashPending], [AK, "service", null]);
});

Deno.test("canonical URI double-encodes the wire path; query is sorted and re-encoded", () => {
  assert.equal(canonicalUri("/model/a.b-v1%3A0/converse"), "/model/a.b-v1%253A0/converse");
  assert.equal(canonicalUri("/model/a.b-v1:0/invoke"), "/model/a.b-v1%3A0/invoke");
  assert.equal(canonicalUri("/model/arn%3Ax%2Fy/converse"), "/model/arn%253Ax%252Fy/converse");
  assert.equal(canonicalUri("/a//b/./c/../d/"), "/a/b/d/");
  assert.equal(canonicalUri(""), "/");
  assert.equal(canonicalUri("/x y*'()!~"), "/x%20y%2A%27%28%29%21~");
  assert.equal(canonicalQuery("b=2&a=1&A=0&a=0&k&sp=a+b&e=%7e"), "A=0&a=0&a=1&b=2&e=~&k=&sp=a%20b");
  assert.throws(() => canonicalQuery("a=%zz"), SigV4ParseError);
  assert.throws(
    () =>
      canonicalRequest({
        method: "POST",
        rawPath: "/",
        headers: {},
        signedHeaders: ["host"],
        payloadHash: EMPTY_SHA256,
      }),
    /Signed header "host" is not in the request/,
  );
  const creq = canonicalRequest({
    method: "post",
    rawPath: "/",
    headers: { ":authority": "h:1", "x-multi": ["  a   b ", "c"] },
    signedHeaders: [":authority", "x-multi"],
    payloadHash: EMPTY_SHA256,
  });
  assert.equal(
    creq,
    `POST\n/\n\n:authority:h:1\nx-multi:a b ,c\n\n:authority;x-multi\n${EMPTY_SHA256}`,
  );
});

Deno.test("parseAuthorization is strict with clear messages", () => {
  const good = `AWS4-HMAC-SHA256 Credential=${AK}/20261122/us-east-1/bedrock/aws4_request, ` +
    `SignedHeaders=:authority;content-length;x-amz-date, Signature=${"ab".repeat(32)}`;
  assert.deepEqual(parseAuthorization(good), {
    accessKeyId: AK,
    date: "20261122",
    region: "us-east-1",
    service: "bedrock",
    signedHeaders: [":authority", "content-length", "x-amz-date"],
    signature: "ab".repeat(32),
  });
  const bad: [string, RegExp][] = [
    ["Bearer x", /algorithm/],
    [good.replace("/aws4_request", "/aws5_request"), /aws4_request/],
    [good.replace("20261122/", "2026112/"), /yyyymmdd/],
    [good.replace(`${AK}/`, ""), /AK\/date/],
    [good.replace(":authority;content-length", "content-length;:authority"), /sorted/],
    [good.replace("content-length;", "Content-Length;"), /lower-case/],
    [good.replace("Signature=ab", "Signature=AB"), /hex/],
    [good.replace(", Signature=", ", Sig="), /unknown key Sig/],
    [good + ", Signature=" + "0".repeat(64), /duplicate Signature/],
    [good.replace(/, Signature=.*/, ""), /Signature is missing/],
    [good.replace("SignedHeaders=", "SignedHeaders"), /not key=value/],
  ];
  for (const [h, re] of bad) assert.throws(() => parseAuthorization(h), re, h);
});
