/**
 * Virtual-key authentication. Keys are looked up by SHA-256 of the secret; answers are cached
 * briefly (`cacheTtlMs`) so the store is not hit on every request — a disabled key stops working
 * within that time.
 */
import type { Clock } from "../../protocol/clock.ts";
import { type HubStore, keySecretHash, type KeyWithUser } from "../store/mod.ts";
import { GatewayError } from "./errors.ts";

const CACHE_ENTRIES_MAX = 10_000;

export class KeyAuthenticator {
  readonly #cache = new Map<string, { key: KeyWithUser | null; expiresAtMs: number }>();

  constructor(readonly store: HubStore, readonly clock: Clock, readonly cacheTtlMs = 5_000) {}

  /** The key behind `secret`, or a 401/403 `GatewayError`. */
  async authenticate(secret: string | null): Promise<KeyWithUser> {
    if (!secret) {
      throw new GatewayError(
        401,
        "invalid_request_error",
        "You didn't provide an API key.",
        null,
        "missing_api_key",
      );
    }
    const hash = keySecretHash(secret);
    const now = this.clock.nowMs();
    let entry = this.#cache.get(hash);
    if (!entry || entry.expiresAtMs <= now) {
      entry = {
        key: await this.store.findKeyBySecretHash(hash),
        expiresAtMs: now + this.cacheTtlMs,
      };
      if (this.#cache.size >= CACHE_ENTRIES_MAX) {
        this.#cache.delete(this.#cache.keys().next().value!);
      }
      this.#cache.set(hash, entry);
    }
    const key = entry.key;
    if (!key) {
      throw new GatewayError(
        401,
        "invalid_request_error",
        `Incorrect API key provided: ${mask(secret)}.`,
        null,
        "invalid_api_key",
      );
    }
    return this.assertUsable(key);
  }

  /** Throws the 401/403 for a disabled or expired key (also for keys found another way). */
  assertUsable(key: KeyWithUser): KeyWithUser {
    const now = this.clock.nowMs();
    if (key.disabled || key.user.disabled) {
      throw new GatewayError(
        403,
        "permission_denied",
        "This API key is disabled.",
        null,
        "key_disabled",
      );
    }
    if (key.expiresAtMs !== null && key.expiresAtMs <= now) {
      throw new GatewayError(
        401,
        "invalid_request_error",
        "This API key has expired.",
        null,
        "key_expired",
      );
    }
    return key;
  }
}

/** `aq-Abcd…wxyz` → `aq-Ab***yz`: enough to recognise, never enough to use. */
export function mask(secret: string): string {
  return secret.length <= 8 ? "***" : `${secret.slice(0, 5)}***${secret.slice(-2)}`;
}
