/**
 * AWS Signature Version 4 (header auth, `AWS4-HMAC-SHA256`) for the Bedrock surface: the parts of
 * a request the signature covers, the signer, and the server-side verifier.
 *
 * Canonical URI: the RAW wire path (as received, never decoded) is normalised (empty and dot
 * segments removed, like the AWS SDK) and URI-encoded once more, so `v1%3A0` is signed as
 * `v1%253A0` and an ARN's `%2F` as `%252F`; a raw `:` (Anthropic Bedrock SDK) becomes `%3A`.
 * Over HTTP/2 the client signs `:authority` instead of `host`: pass it under that name.
 *
 * The payload: clients that send `x-amz-content-sha256` signed that value, so verification uses
 * it as declared; the verifier then returns `payloadHashPending`, and the caller MUST hash the
 * bytes it actually receives (`createSha256`, see `payload.ts`) and compare at EOF
 * (`payloadHashMatches`) before acting on them. Without the header, pass `payloadHash` (hex of the
 * whole body) in the request facts.
 *
 * The signer is for the agent's re-signing toward AWS; unlike aws4fetch it can sign any header
 * set (including `content-length`/`content-type`) and the h2 `:authority` form.
 */
import { hex, hmacSha256, sha256Hex } from "./payload.ts";

export const SIGV4_ALGORITHM = "AWS4-HMAC-SHA256";
/** MinIO's `globalMaxSkewTime`. */
export const sigV4SkewMsMax = 15 * 60 * 1000;

/** A malformed Authorization header or request part; `message` says which. */
export class SigV4ParseError extends SyntaxError {
  override name = "SigV4ParseError";
}

export interface ParsedAuthorization {
  accessKeyId: string;
  /** `yyyymmdd` from the credential scope. */
  date: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
}

/** Parses `AWS4-HMAC-SHA256 Credential=AK/date/region/service/aws4_request, SignedHeaders=…, Signature=…`. */
export function parseAuthorization(header: string): ParsedAuthorization {
  const fail = (why: string): never => {
    throw new SigV4ParseError(`Cannot parse Authorization: ${why}`);
  };
  const prefix = SIGV4_ALGORITHM + " ";
  if (!header.startsWith(prefix)) fail(`algorithm is not ${SIGV4_ALGORITHM}`);
  const fields = new Map<string, string>();
  for (const part of header.slice(prefix.length).split(",")) {
    const p = part.trim();
    const eq = p.indexOf("=");
    if (eq <= 0) fail(`component "${p.slice(0, 40)}" is not key=value`);
    const key = p.slice(0, eq);
    if (!["Credential", "SignedHeaders", "Signature"].includes(key)) fail(`unknown key ${key}`);
    if (fields.has(key)) fail(`duplicate ${key}`);
    fields.set(key, p.slice(eq + 1));
  }
  const credential = fields.get("Credential") ?? fail("Credential is missing");
  const signed = fields.get("SignedHeaders") ?? fail("SignedHeaders is missing");
  const signature = fields.get("Signature") ?? fail("Signature is missing");
  const scope = credential.split("/");
  if (scope.length !== 5) fail("Credential must be AK/date/region/service/aws4_request");
  const [accessKeyId, date, region, service, terminator] = scope as [
    string,
    string,
    string,
    string,
    string,
  ];
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(accessKeyId)) fail("access key id is malformed");
  if (!/^\d{8}$/.test(date)) fail(`credential date "${date}" is not yyyymmdd`);
  if (!/^[a-z0-9-]{1,64}$/.test(region)) fail(`region "${region}" is malformed`);
  if (!/^[a-z0-9-]{1,64}$/.test(service)) fail(`service "${service}" is malformed`);
  if (terminator !== "aws4_request") fail("credential scope must end with aws4_request");
  const signedHeaders = signed.split(";");
  for (const [i, h] of signedHeaders.entries()) {
    if (!/^:?[a-z0-9!#$%&'*+.^_`|~-]+$/.test(h)) {
      fail(`signed header "${h}" is not a lower-case name`);
    }
    if (i > 0 && !(signedHeaders[i - 1]! < h)) fail("SignedHeaders are not sorted and unique");
  }
  if (!/^[0-9a-f]{64}$/.test(signature)) fail("Signature is not 64 lower-case hex digits");
  return { accessKeyId, date, region, service, signedHeaders, signature };
}

/** RFC 3986 encoding of every byte except unreserved characters (AWS `UriEncode`). */
export function uriEncode(s: string): string {
  let out: string;
  try {
    out = encodeURIComponent(s);
  } catch {
    throw new SigV4ParseError(`Cannot encode "${s.slice(0, 40)}": not valid Unicode`);
  }
  return out.replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
}

/** The raw wire path, normalised like the AWS SDK and encoded once more (non-S3 services). */
export function canonicalUri(rawPath: string): string {
  const segments: string[] = [];
  for (const seg of rawPath.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") segments.pop();
    else segments.push(uriEncode(seg));
  }
  const trailing = segments.length > 0 && rawPath.endsWith("/") ? "/" : "";
  return "/" + segments.join("/") + trailing;
}

/** The raw query (without `?`), decoded, `+` read as a space, re-encoded and sorted. */
export function canonicalQuery(rawQuery: string): string {
  const pairs: [string, string][] = [];
  for (const part of rawQuery.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const [k, v] = eq < 0 ? [part, ""] : [part.slice(0, eq), part.slice(eq + 1)];
    const dec = (s: string) => {
      try {
        return decodeURIComponent(s.replace(/\+/g, " "));
      } catch {
        throw new SigV4ParseError(`Cannot decode query component "${s.slice(0, 40)}"`);
      }
    };
    pairs.push([uriEncode(dec(k)), uriEncode(dec(v))]);
  }
  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  pairs.sort((a, b) => cmp(a[0], b[0]) || cmp(a[1], b[1]));
  return pairs.map(([k, v]) => `${k}=${v}`).join("&");
}

/** Header map with lower-cased names; repeated headers as arrays (joined with `,`). */
export type HeaderFacts = Record<string, string | readonly string[] | undefined>;

export interface CanonicalRequestParts {
  method: string;
  rawPath: string;
  rawQuery?: string;
  headers: HeaderFacts;
  signedHeaders: readonly string[];
  payloadHash: string;
}

/** Throws `SigV4ParseError` when a signed header is absent. */
export function canonicalRequest(p: CanonicalRequestParts): string {
  const lines = p.signedHeaders.map((name) => {
    const v = p.headers[name];
    if (v === undefined) throw new SigV4ParseError(`Signed header "${name}" is not in the request`);
    const joined = typeof v === "string" ? v : v.join(",");
    return `${name}:${joined.trim().replace(/\s+/g, " ")}\n`;
  });
  return [
    p.method.toUpperCase(),
    canonicalUri(p.rawPath),
    canonicalQuery(p.rawQuery ?? ""),
    lines.join(""),
    p.signedHeaders.join(";"),
    p.payloadHash,
  ].join("\n");
}

export async function stringToSign(amzDate: string, scope: string, creq: string): Promise<string> {
  return `${SIGV4_ALGORITHM}\n${amzDate}\n${scope}\n${await sha256Hex(creq)}`;
}

/** HMAC chain `"AWS4"+secret → date → region → service → "aws4_request"`. */
export async function signingKey(
  secret: string,
  scope: { date: string; region: string; service: string },
): Promise<Uint8Array> {
  let k = await hmacSha256(new TextEncoder().encode("AWS4" + secret), scope.date);
  for (const part of [scope.region, scope.service, "aws4_request"]) k = await hmacSha256(k, part);
  return k;
}

export interface SignInput extends Omit<CanonicalRequestParts, "signedHeaders"> {
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  service: string;
  /** `yyyymmddThhmmssZ`; must equal the `x-amz-date` header when that header is signed. */
  amzDate: string;
  /** Defaults to every header in `headers`, sorted. Must include host or `:authority`. */
  signedHeaders?: readonly string[];
}

export interface Signed {
  authorization: string;
  signature: string;
  signedHeaders: string[];
  canonicalRequest: string;
}

/** Signs a request; `headers` should already carry `x-amz-date` (and `x-amz-content-sha256`). */
export async function signSigV4(input: SignInput): Promise<Signed> {
  const signedHeaders = [...(input.signedHeaders ?? Object.keys(input.headers))]
    .map((h) => h.toLowerCase()).sort();
  const creq = canonicalRequest({ ...input, signedHeaders });
  const date = input.amzDate.slice(0, 8);
  const scope = `${date}/${input.region}/${input.service}/aws4_request`;
  const key = await signingKey(input.secretAccessKey, { ...input, date });
  const signature = hex(await hmacSha256(key, await stringToSign(input.amzDate, scope, creq)));
  const authorization = `${SIGV4_ALGORITHM} Credential=${input.accessKeyId}/${scope}, ` +
    `SignedHeaders=${signedHeaders.join(";")}, Signature=${signature}`;
  return { authorization, signature, signedHeaders, canonicalRequest: creq };
}

export { verifySigV4 } from "./sigv4_verify.ts";
export type { VerifyFailure, VerifyInput, VerifyResult } from "./sigv4_verify.ts";
