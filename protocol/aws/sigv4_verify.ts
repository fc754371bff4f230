/**
 * Server-side SigV4 verification (MinIO's checklist: ±15 min skew checked before the key lookup,
 * host/`:authority` and `x-amz-date` must be signed, trim-all header values, constant-time
 * compare, the declared payload hash checked against the bytes actually received).
 *
 * Failure `code`s are AWS error types the hub can put in `x-amzn-ErrorType` (HTTP 403, except
 * `IncompleteSignatureException`/`MissingAuthenticationTokenException` which AWS sends as 400/403);
 * `reason` distinguishes the `InvalidSignatureException` cases for logs and tests.
 */
import {
  canonicalRequest,
  type HeaderFacts,
  parseAuthorization,
  type ParsedAuthorization,
  signingKey,
  SigV4ParseError,
  sigV4SkewMsMax,
  stringToSign,
} from "./sigv4.ts";
import { constantTimeEqualHex, hex, hmacSha256, UNSIGNED_PAYLOAD } from "./payload.ts";

export interface SigV4RequestFacts {
  method: string;
  /** The path exactly as on the wire (h2 `:path` / request-target), before any decoding. */
  rawPath: string;
  /** The query exactly as on the wire, without `?`. */
  rawQuery?: string;
  /** Lower-cased names. Over HTTP/2 put the authority under `:authority` (and no `host`). */
  headers: HeaderFacts;
  /** Hex SHA-256 of the body; required when `x-amz-content-sha256` is absent. */
  payloadHash?: string;
}

export interface VerifyInput {
  request: SigV4RequestFacts;
  /** The secret for a hub-issued access key id, or null when the key is unknown or revoked. */
  secretFor: (accessKeyId: string) => string | null | Promise<string | null>;
  nowMs: number;
  maxSkewMs?: number;
  /** e.g. "bedrock": a signature scoped to another service is rejected. */
  expectedService?: string;
  /** Accept `x-amz-content-sha256: UNSIGNED-PAYLOAD` (default: no). */
  allowUnsignedPayload?: boolean;
}

export type VerifyFailure = {
  ok: false;
  code:
    | "MissingAuthenticationTokenException"
    | "IncompleteSignatureException"
    | "UnrecognizedClientException"
    | "InvalidSignatureException";
  reason?: "skew" | "scope" | "payload" | "mismatch";
  message: string;
};

export type VerifyResult =
  | {
    ok: true;
    accessKeyId: string;
    region: string;
    service: string;
    signedHeaders: string[];
    /**
     * The hex hash the client declared and signed, which the caller must still compare with the
     * hash of the received body (`payloadHashMatches`); null when already checked or unsigned.
     */
    payloadHashPending: string | null;
  }
  | VerifyFailure;

const fail = (
  code: VerifyFailure["code"],
  message: string,
  reason?: VerifyFailure["reason"],
): VerifyFailure => (reason ? { ok: false, code, reason, message } : { ok: false, code, message });

function header(h: HeaderFacts, name: string): string | undefined {
  const v = h[name];
  return v === undefined ? undefined : typeof v === "string" ? v : v.join(",");
}

/** `yyyymmddThhmmssZ` → epoch ms, or null. */
export function parseAmzDate(s: string): number | null {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return null;
  const [y, mo, d, h, mi, se] = m.slice(1).map(Number) as number[];
  const ms = Date.UTC(y!, mo! - 1, d!, h!, mi!, se!);
  const back = new Date(ms);
  return back.getUTCDate() === d && back.getUTCMonth() === mo! - 1 ? ms : null;
}

export async function verifySigV4(input: VerifyInput): Promise<VerifyResult> {
  const { request: req } = input;
  const auth = header(req.headers, "authorization");
  if (auth === undefined || auth === "") {
    return fail("MissingAuthenticationTokenException", "Missing Authentication Token");
  }
  let parsed: ParsedAuthorization;
  try {
    parsed = parseAuthorization(auth);
  } catch (e) {
    return fail("IncompleteSignatureException", (e as Error).message);
  }
  const signed = parsed.signedHeaders;
  if (input.expectedService !== undefined && parsed.service !== input.expectedService) {
    return fail(
      "InvalidSignatureException",
      `Credential should be scoped to correct service: '${input.expectedService}'.`,
      "scope",
    );
  }
  if (!signed.includes("host") && !signed.includes(":authority")) {
    return fail("IncompleteSignatureException", "SignedHeaders must include host or :authority");
  }
  if (!signed.includes("x-amz-date")) {
    return fail("IncompleteSignatureException", "SignedHeaders must include x-amz-date");
  }
  const missing = signed.filter((h) => req.headers[h] === undefined);
  if (missing.length > 0) {
    return fail("IncompleteSignatureException", `Signed header(s) absent: ${missing.join(", ")}`);
  }
  const amzDate = header(req.headers, "x-amz-date")!;
  const dateMs = parseAmzDate(amzDate);
  if (dateMs === null) {
    return fail("IncompleteSignatureException", `x-amz-date "${amzDate}" is not yyyymmddThhmmssZ`);
  }
  if (amzDate.slice(0, 8) !== parsed.date) {
    return fail("InvalidSignatureException", "Credential date does not match x-amz-date", "scope");
  }
  const skewMax = input.maxSkewMs ?? sigV4SkewMsMax;
  if (Math.abs(input.nowMs - dateMs) > skewMax) {
    return fail(
      "InvalidSignatureException",
      `Signature expired or not yet valid: ${amzDate} is more than ${skewMax / 1000} s from ` +
        new Date(input.nowMs).toISOString(),
      "skew",
    );
  }

  const declared = header(req.headers, "x-amz-content-sha256");
  let payloadHash: string;
  let pending: string | null = null;
  if (declared !== undefined) {
    if (declared === UNSIGNED_PAYLOAD) {
      if (!input.allowUnsignedPayload) {
        return fail("IncompleteSignatureException", "UNSIGNED-PAYLOAD is not accepted");
      }
    } else if (!/^[0-9a-f]{64}$/.test(declared)) {
      return fail(
        "IncompleteSignatureException",
        `x-amz-content-sha256 "${
          declared.slice(0, 40)
        }" is not a hex SHA-256 (chunked signing is not supported)`,
      );
    } else if (req.payloadHash !== undefined) {
      if (!constantTimeEqualHex(declared, req.payloadHash.toLowerCase())) {
        return fail(
          "InvalidSignatureException",
          "The provided x-amz-content-sha256 header does not match what was computed.",
          "payload",
        );
      }
    } else {
      pending = declared;
    }
    payloadHash = declared;
  } else if (req.payloadHash !== undefined) {
    payloadHash = req.payloadHash.toLowerCase();
  } else {
    return fail("IncompleteSignatureException", "No x-amz-content-sha256 and no body hash");
  }

  const secret = await input.secretFor(parsed.accessKeyId);
  if (secret === null) {
    return fail(
      "UnrecognizedClientException",
      "The security token included in the request is invalid.",
    );
  }
  let creq: string;
  try {
    creq = canonicalRequest({ ...req, signedHeaders: signed, payloadHash });
  } catch (e) {
    if (e instanceof SigV4ParseError) return fail("IncompleteSignatureException", e.message);
    throw e;
  }
  const scope = `${parsed.date}/${parsed.region}/${parsed.service}/aws4_request`;
  const key = await signingKey(secret, parsed);
  const expected = hex(await hmacSha256(key, await stringToSign(amzDate, scope, creq)));
  if (!constantTimeEqualHex(expected, parsed.signature)) {
    return fail(
      "InvalidSignatureException",
      "The request signature we calculated does not match the signature you provided.",
      "mismatch",
    );
  }
  return {
    ok: true,
    accessKeyId: parsed.accessKeyId,
    region: parsed.region,
    service: parsed.service,
    signedHeaders: signed,
    payloadHashPending: pending,
  };
}
