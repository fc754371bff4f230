/**
 * Hub-issued AWS credentials for Bedrock SigV4 clients. Each virtual key gets an access key id and
 * a secret access key when it is created (shown once, with the key). Verifying a SigV4 signature
 * needs the secret itself (HMAC), so unlike the virtual key it cannot be kept as a hash: it is
 * sealed with AES-256-GCM (random 96-bit IV, the access key id as additional data so a sealed
 * secret cannot be moved to another id) under the hub's credentials key — `HUB_CREDENTIALS_KEY`,
 * or when unset a key derived from the hub identity (SHA-256 of the identity's deterministic
 * Ed25519 signature over a fixed label), so replicas sharing the identity file agree. Opened
 * secrets are cached for `cacheTtlMs` (a disabled key stops working within that time, as for
 * virtual keys). Secrets are never logged.
 */
import type { Signer } from "../../protocol/identity.ts";
import type { Clock } from "../../protocol/clock.ts";
import type { HubStore, KeyWithUser } from "../store/mod.ts";

const CACHE_ENTRIES_MAX = 10_000;
const SEALING_LABEL = "aqueduct/aws-credential-sealing-key/v1";
const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const enc = new TextEncoder();

/** What `POST /admin/keys` shows once. */
export interface IssuedAwsCredential {
  accessKeyId: string;
  secretAccessKey: string;
}

const b64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));
const unb64 = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

/** `HUB_CREDENTIALS_KEY`: 32 bytes as 64 hex digits or base64. */
export function parseCredentialsKey(text: string): Uint8Array {
  const t = text.trim();
  let bytes: Uint8Array | null = null;
  if (/^[0-9a-fA-F]{64}$/.test(t)) {
    bytes = Uint8Array.from(t.match(/../g)!, (h) => parseInt(h, 16));
  } else {
    try {
      bytes = unb64(t);
    } catch {
      bytes = null;
    }
  }
  if (!bytes || bytes.length !== 32) {
    throw new TypeError("HUB_CREDENTIALS_KEY must be 32 bytes (64 hex digits or base64)");
  }
  return bytes;
}

/** The sealing key when no `HUB_CREDENTIALS_KEY` is configured: bound to the hub identity. */
export async function credentialsKeyFromIdentity(identity: Signer): Promise<Uint8Array> {
  const signature = await identity.sign(enc.encode(SEALING_LABEL));
  return new Uint8Array(await crypto.subtle.digest("SHA-256", signature));
}

export class AwsCredentialVault {
  readonly #cache = new Map<
    string,
    { found: { key: KeyWithUser; secret: string } | null; exp: number }
  >();

  private constructor(
    readonly store: HubStore,
    readonly clock: Clock,
    readonly aes: CryptoKey,
    readonly cacheTtlMs: number,
  ) {}

  static async create(
    store: HubStore,
    clock: Clock,
    keyBytes: Uint8Array,
    cacheTtlMs = 5_000,
  ): Promise<AwsCredentialVault> {
    const aes = await crypto.subtle.importKey("raw", keyBytes as BufferSource, "AES-GCM", false, [
      "encrypt",
      "decrypt",
    ]);
    return new AwsCredentialVault(store, clock, aes, cacheTtlMs);
  }

  /** Creates and stores a credential for `keyId`; the secret exists in clear only in the answer. */
  async issue(keyId: string): Promise<IssuedAwsCredential> {
    const id = crypto.getRandomValues(new Uint8Array(16));
    const accessKeyId = "AQIA" + Array.from(id, (b) => BASE32[b & 31]).join("");
    // 30 random bytes → 40 base64 characters, the shape of an AWS secret access key.
    const secretAccessKey = b64(crypto.getRandomValues(new Uint8Array(30)));
    await this.store.addAwsCredential(
      { accessKeyId, keyId, secretSealed: await this.#seal(accessKeyId, secretAccessKey) },
      this.clock.nowMs(),
    );
    return { accessKeyId, secretAccessKey };
  }

  /** The key and clear secret behind `accessKeyId`, or null when unknown (or unreadable). */
  async lookup(accessKeyId: string): Promise<{ key: KeyWithUser; secret: string } | null> {
    const now = this.clock.nowMs();
    const hit = this.#cache.get(accessKeyId);
    if (hit && hit.exp > now) return hit.found;
    const row = await this.store.findKeyByAwsAccessKeyId(accessKeyId);
    let found: { key: KeyWithUser; secret: string } | null = null;
    if (row) {
      const secret = await this.#open(accessKeyId, row.secretSealed);
      // A secret sealed under another key (HUB_CREDENTIALS_KEY changed) is as good as unknown.
      if (secret !== null) found = { key: row.key, secret };
    }
    if (this.#cache.size >= CACHE_ENTRIES_MAX) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(accessKeyId, { found, exp: now + this.cacheTtlMs });
    return found;
  }

  async #seal(accessKeyId: string, secret: string): Promise<string> {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const sealed = new Uint8Array(
      await crypto.subtle.encrypt(
        { name: "AES-GCM", iv, additionalData: enc.encode(accessKeyId) },
        this.aes,
        enc.encode(secret),
      ),
    );
    const out = new Uint8Array(iv.length + sealed.length);
    out.set(iv);
    out.set(sealed, iv.length);
    return "v1:" + b64(out);
  }

  async #open(accessKeyId: string, sealed: string): Promise<string | null> {
    if (!sealed.startsWith("v1:")) return null;
    try {
      const bytes = unb64(sealed.slice(3));
      const clear = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: bytes.subarray(0, 12), additionalData: enc.encode(accessKeyId) },
        this.aes,
        bytes.subarray(12),
      );
      return new TextDecoder().decode(clear);
    } catch {
      return null;
    }
  }
}
