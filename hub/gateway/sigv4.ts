/**
 * SigV4 client authentication for AWS-signed vendor surfaces (Bedrock): the signature over the
 * headers and the declared `x-amz-content-sha256` is verified first (an unauthenticated request
 * never gets its body buffered); then the body is read whole (bounded by the hub's request size
 * limit), hashed as it streams in and held to the declared hash. The check itself is
 * `protocol/aws/sigv4_verify.ts` (±15 min skew, host or HTTP/2 `:authority`, double-encoded raw
 * path, constant-time compare) with the key's hub-issued secret.
 * Nothing is dispatched before the signature and the body hash check out. Errors are AWS's
 * (`InvalidSignatureException`, …), rendered by the vendor's error envelope.
 */
import { createSha256, payloadHashMatches } from "../../protocol/aws/payload.ts";
import { type VerifyFailure, verifySigV4 } from "../../protocol/aws/sigv4.ts";
import type { Clock } from "../../protocol/clock.ts";
import { concatBytes } from "../../protocol/http.ts";
import type { KeyWithUser } from "../store/mod.ts";
import type { KeyAuthenticator } from "./auth.ts";
import { GatewayError } from "./errors.ts";
import type { AwsCredentialVault } from "./sigv4_credentials.ts";

export interface SigV4Deps {
  vault?: AwsCredentialVault;
  auth: KeyAuthenticator;
  clock: Clock;
  maxRequestBytes: number;
}

/** Whether a request must be verified as SigV4 (anything but a Bearer API key). */
export function wantsSigV4(headers: Headers): boolean {
  return !/^bearer\s/i.test(headers.get("authorization") ?? "");
}

const STATUS: Record<VerifyFailure["code"], number> = {
  MissingAuthenticationTokenException: 403,
  IncompleteSignatureException: 400,
  UnrecognizedClientException: 403,
  InvalidSignatureException: 403,
};

/** Reads the body (bounded), hashing it as it arrives. */
async function readBody(
  req: Request,
  maxBytes: number,
): Promise<{ bytes: Uint8Array; hash: string }> {
  const hash = createSha256();
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (req.body) {
    const reader = req.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > maxBytes) {
        await reader.cancel().catch(() => {});
        throw new GatewayError(
          413,
          "invalid_request_error",
          `Request body exceeds ${maxBytes} bytes`,
          null,
          "ValidationException",
        );
      }
      hash.update(value);
      chunks.push(value);
    }
  }
  return { bytes: concatBytes(chunks, size), hash: hash.digestHex() };
}

/**
 * Verifies `req` for `service`; returns the key and a request carrying the body already read.
 * Throws a `GatewayError` with the AWS error type as its code.
 */
export async function authenticateSigV4(
  deps: SigV4Deps,
  service: string,
  req: Request,
): Promise<{ key: KeyWithUser; request: Request }> {
  const url = new URL(req.url);
  const headers: Record<string, string> = {};
  req.headers.forEach((value, name) => void (headers[name] = value));
  // Over HTTP/2 the client signs `:authority`, which the server exposes only through the URL.
  headers[":authority"] = url.host;
  headers.host ??= url.host;
  let key: KeyWithUser | null = null;
  const verify = (payloadHash?: string) =>
    verifySigV4({
      request: {
        method: req.method,
        rawPath: url.pathname,
        rawQuery: url.search.slice(1),
        headers,
        payloadHash,
      },
      secretFor: async (accessKeyId) => {
        const found = await deps.vault?.lookup(accessKeyId) ?? null;
        key = found?.key ?? null;
        return found?.secret ?? null;
      },
      nowMs: deps.clock.nowMs(),
      expectedService: service,
    });
  const refuse = (f: VerifyFailure): never => {
    throw new GatewayError(STATUS[f.code], "authentication_error", f.message, null, f.code);
  };
  let body: { bytes: Uint8Array; hash: string };
  if (headers["x-amz-content-sha256"] !== undefined) {
    // The signature covers the declared hash: check it before reading (and buffering) anything,
    // then hold the body to the hash it declared.
    const verdict = await verify();
    if (!verdict.ok) refuse(verdict);
    body = await readBody(req, deps.maxRequestBytes);
    const declared = (verdict as { payloadHashPending: string | null }).payloadHashPending;
    if (declared !== null && !payloadHashMatches(declared, body.hash)) {
      refuse({
        ok: false,
        code: "InvalidSignatureException",
        reason: "payload",
        message: "The provided x-amz-content-sha256 header does not match what was computed.",
      });
    }
  } else {
    body = await readBody(req, deps.maxRequestBytes);
    const verdict = await verify(body.hash);
    if (!verdict.ok) refuse(verdict);
  }
  const { bytes } = body;
  const verified = key as KeyWithUser | null;
  if (!verified) throw new Error("unreachable: a verified signature has a key");
  deps.auth.assertUsable(verified);
  const request = new Request(req.url, {
    method: req.method,
    headers: req.headers,
    body: bytes.length > 0 ? bytes as Uint8Array<ArrayBuffer> : null,
    signal: req.signal,
  });
  return { key: verified, request };
}
