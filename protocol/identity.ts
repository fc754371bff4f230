/**
 * Ed25519 identities of hubs and agents (Web Crypto: ~20× faster verify than pure JS here).
 *
 * Public keys travel as `ed25519:<base64url of the raw 32 bytes>`; private keys are stored as
 * PKCS#8 PEM, which `openssl pkey` also reads. A key id is the first 8 bytes of SHA-256 of the
 * raw public key, hex: short enough for logs, long enough to tell keys apart.
 */
import { fromBase64Url, sha256, toHex } from "./encoding.ts";

const ALG = { name: "Ed25519" } as const;
const PUBLIC_PREFIX = "ed25519:";
const PEM_LABEL = "PRIVATE KEY";

/** A private key ready to sign, with its public identity. */
export interface Signer {
  publicKey: string;
  keyId: string;
  sign(data: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>>;
}

/** Creates a new identity; returns the PEM to store (0600) and the signer. */
export async function generateIdentity(): Promise<{ pem: string; signer: Signer }> {
  const pair = await crypto.subtle.generateKey(ALG, true, ["sign", "verify"]) as CryptoKeyPair;
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const pem = toPem(pkcs8);
  return { pem, signer: await signerFromPem(pem) };
}

/** Loads a PKCS#8 PEM Ed25519 private key. */
export async function signerFromPem(pem: string): Promise<Signer> {
  const der = fromPem(pem);
  const privateKey = await crypto.subtle.importKey("pkcs8", der, ALG, true, ["sign"]);
  // Web Crypto cannot derive the public key from a private one directly; the JWK export has `x`.
  const jwk = await crypto.subtle.exportKey("jwk", privateKey);
  if (typeof jwk.x !== "string") throw new TypeError("Cannot load key: not an Ed25519 private key");
  const raw = fromBase64Url(jwk.x);
  return {
    publicKey: PUBLIC_PREFIX + jwk.x,
    keyId: await keyIdOf(raw),
    sign: async (data) => new Uint8Array(await crypto.subtle.sign(ALG, privateKey, data)),
  };
}

/** Parses `ed25519:<base64url>` into the raw 32-byte key. */
export function parsePublicKey(text: string): Uint8Array<ArrayBuffer> {
  if (!text.startsWith(PUBLIC_PREFIX)) {
    throw new TypeError(`Invalid public key: expected "${PUBLIC_PREFIX}<base64url>"`);
  }
  let raw: Uint8Array<ArrayBuffer>;
  try {
    raw = fromBase64Url(text.slice(PUBLIC_PREFIX.length));
  } catch {
    throw new TypeError("Invalid public key: not base64url");
  }
  if (raw.length !== 32) {
    throw new TypeError(`Invalid public key: ${raw.length} bytes, expected 32`);
  }
  return raw;
}

/** A public key imported once and reused (import costs about as much as a verify). */
export interface Verifier {
  publicKey: string;
  keyId: string;
  verify(signature: Uint8Array<ArrayBuffer>, data: Uint8Array<ArrayBuffer>): Promise<boolean>;
}

export async function verifierFor(publicKey: string): Promise<Verifier> {
  const raw = parsePublicKey(publicKey);
  const key = await crypto.subtle.importKey("raw", raw, ALG, false, ["verify"]);
  return {
    publicKey,
    keyId: await keyIdOf(raw),
    verify: async (signature, data) => {
      if (signature.length !== 64) return false;
      return await crypto.subtle.verify(ALG, key, signature, data);
    },
  };
}

export async function keyIdOf(raw: Uint8Array<ArrayBuffer>): Promise<string> {
  return toHex((await sha256(raw)).subarray(0, 8));
}

/** Key id of a textual public key. */
export async function keyIdOfPublicKey(publicKey: string): Promise<string> {
  return await keyIdOf(parsePublicKey(publicKey));
}

function toPem(der: Uint8Array): string {
  const b64 = btoa(String.fromCharCode(...der));
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${PEM_LABEL}-----\n${lines.join("\n")}\n-----END ${PEM_LABEL}-----\n`;
}

function fromPem(pem: string): Uint8Array<ArrayBuffer> {
  const match = pem.match(
    /-----BEGIN PRIVATE KEY-----([A-Za-z0-9+/=\s]+)-----END PRIVATE KEY-----/,
  );
  if (!match?.[1]) throw new TypeError("Cannot load key: no PKCS#8 PRIVATE KEY block in the file");
  const bin = atob(match[1].replace(/\s+/g, ""));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}
