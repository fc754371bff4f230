/**
 * Google service-account credentials for Vertex AI (reference/vendor-wire.md §5.3), agent side:
 * the channel key IS the service-account JSON (`agent channel add --vendor vertex --key @sa.json`
 * reads the file once and stores its content in channels.json, 0600, like any vendor key). From
 * it the agent mints an OAuth2 access token: an RS256 JWT (`iss` = `client_email`, scope
 * cloud-platform, `aud` = the token URL, one hour) signed with the SA's PKCS#8 private key via Web
 * Crypto, exchanged at Google's hard-coded token endpoint (the JSON's `token_uri` is ignored, as
 * google-auth-library does), cached until five minutes before it expires. Concurrent requests
 * share one exchange. Error messages never contain the key, the JWT or the token.
 */
import type { CredentialFetch } from "./types.ts";

export const GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token";
export const CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform";
export const JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/** JWT lifetime (Google's maximum). */
export const ASSERTION_LIFETIME_S = 3600;
/** A cached token is replaced this long before it expires. */
export const TOKEN_REFRESH_MARGIN_MS = 5 * 60_000;
/** A token exchange that takes longer fails (the request then fails or tries the next key). */
export const TOKEN_TIMEOUT_MS = 30_000;

export interface ServiceAccount {
  clientEmail: string;
  privateKeyPem: string;
  privateKeyId?: string;
  /** The project the SA belongs to: the agent calls Vertex in this project. */
  projectId: string;
}

/** A GCP project id (or number): what may stand in the `projects/{…}` path segment. */
export const GCP_PROJECT = /^[a-z0-9][a-z0-9.:-]{0,62}$/;

/** Parses a service-account JSON key; throws a TypeError that never quotes the key. */
export function parseServiceAccount(key: string): ServiceAccount {
  let parsed: unknown;
  try {
    parsed = JSON.parse(key);
  } catch {
    throw new TypeError("a vertex channel key must be a service-account JSON key (not JSON)");
  }
  const sa = parsed as Record<string, unknown>;
  if (typeof sa !== "object" || sa === null || sa.type !== "service_account") {
    throw new TypeError(
      'a vertex channel key must be a service-account JSON key (type is not "service_account")',
    );
  }
  if (typeof sa.client_email !== "string" || !/^[^\s@]+@[^\s@]+$/.test(sa.client_email)) {
    throw new TypeError("the service-account JSON has no client_email");
  }
  if (
    typeof sa.private_key !== "string" ||
    !sa.private_key.includes("-----BEGIN PRIVATE KEY-----")
  ) {
    throw new TypeError("the service-account JSON has no PKCS#8 private_key");
  }
  if (typeof sa.project_id !== "string" || !GCP_PROJECT.test(sa.project_id)) {
    throw new TypeError("the service-account JSON has no valid project_id");
  }
  const out: ServiceAccount = {
    clientEmail: sa.client_email,
    privateKeyPem: sa.private_key,
    projectId: sa.project_id,
  };
  if (typeof sa.private_key_id === "string") out.privateKeyId = sa.private_key_id;
  return out;
}

export function base64url(bytes: Uint8Array | string): string {
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  let binary = "";
  for (let i = 0; i < data.length; i += 0x8000) {
    binary += String.fromCharCode(...data.subarray(i, i + 0x8000));
  }
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The DER bytes of a PEM block (`-----BEGIN …-----`). */
export function pemBody(pem: string): Uint8Array<ArrayBuffer> {
  const b64 = pem.replace(/-----(BEGIN|END)[^-]*-----/g, "").replace(/\s+/g, "");
  try {
    return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  } catch {
    throw new TypeError("the service-account private_key is not valid PEM");
  }
}

async function importPrivateKey(pem: string): Promise<CryptoKey> {
  try {
    return await crypto.subtle.importKey(
      "pkcs8",
      pemBody(pem),
      { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
      false,
      ["sign"],
    );
  } catch {
    throw new TypeError("the service-account private_key is not an RSA PKCS#8 key");
  }
}

/** The signed JWT assertion for `sa`, issued at `nowS` (seconds). */
export async function signAssertion(sa: ServiceAccount, nowS: number): Promise<string> {
  const header = { alg: "RS256", typ: "JWT" };
  const claims = {
    iss: sa.clientEmail,
    scope: CLOUD_PLATFORM_SCOPE,
    aud: GOOGLE_TOKEN_URL,
    iat: nowS,
    exp: nowS + ASSERTION_LIFETIME_S,
  };
  const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  const key = await importPrivateKey(sa.privateKeyPem);
  const signature = await crypto.subtle.sign(
    "RSASSA-PKCS1-v1_5",
    key,
    new TextEncoder().encode(input),
  );
  return `${input}.${base64url(new Uint8Array(signature))}`;
}

export interface AccessToken {
  token: string;
  expiresAtMs: number;
}

/** Exchanges a fresh assertion for an access token at Google's token endpoint. */
export async function exchangeAssertion(
  sa: ServiceAccount,
  fetcher: CredentialFetch,
  nowMs: number,
): Promise<AccessToken> {
  const assertion = await signAssertion(sa, Math.floor(nowMs / 1000));
  const res = await fetcher(GOOGLE_TOKEN_URL, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
    body: new URLSearchParams({ grant_type: JWT_BEARER_GRANT, assertion }).toString(),
    signal: AbortSignal.timeout(TOKEN_TIMEOUT_MS),
  });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(text);
    if (typeof parsed === "object" && parsed !== null) body = parsed;
  } catch {
    // reported below
  }
  if (!res.ok) {
    // Google's `{"error":"invalid_grant","error_description":"…"}`: no secrets in either.
    const why = [body.error, body.error_description].filter((v) => typeof v === "string")
      .join(": ").slice(0, 200);
    throw new Error(
      `the Google token endpoint refused the service account ${sa.clientEmail} (HTTP ${res.status}${
        why ? `, ${why}` : ""
      })`,
    );
  }
  const token = body.access_token;
  const expiresIn = body.expires_in;
  if (typeof token !== "string" || !/^[\x21-\x7e]{1,4096}$/.test(token)) {
    throw new Error("the Google token endpoint answered without a usable access_token");
  }
  const seconds = typeof expiresIn === "number" && expiresIn > 0 ? expiresIn : 3600;
  return { token, expiresAtMs: nowMs + seconds * 1000 };
}

/**
 * Access tokens by channel key, minted on first use and reused until
 * {@link TOKEN_REFRESH_MARGIN_MS} before they expire; one exchange in flight per key.
 */
export class AccessTokenCache {
  readonly #entries = new Map<string, Promise<AccessToken>>();
  readonly #settled = new Map<string, AccessToken>();

  async get(key: string, fetcher: CredentialFetch, nowMs: number): Promise<string> {
    const held = this.#settled.get(key);
    if (held && nowMs < held.expiresAtMs - TOKEN_REFRESH_MARGIN_MS) return held.token;
    let pending = this.#entries.get(key);
    if (!pending || held) {
      // Nothing cached, or the cached token is (nearly) stale: one fresh exchange.
      this.#settled.delete(key);
      pending = exchangeAssertion(parseServiceAccount(key), fetcher, nowMs);
      this.#entries.set(key, pending);
      pending.then(
        (token) => {
          if (this.#entries.get(key) === pending) this.#settled.set(key, token);
        },
        () => {
          if (this.#entries.get(key) === pending) this.#entries.delete(key);
        },
      );
    }
    return (await pending).token;
  }

  /** Drops a key's token (e.g. after the upstream refused it). */
  forget(key: string): void {
    this.#entries.delete(key);
    this.#settled.delete(key);
  }
}
