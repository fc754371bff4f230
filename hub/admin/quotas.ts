/**
 * Admin API inputs for quotas: a key's spend caps (`budget`, `dailyCap`, `monthlyCap` on
 * `POST /admin/keys` and `PATCH /admin/keys/:id`) and a top-up's idempotency key.
 */
import { HttpError } from "../http.ts";
import { type KeyCaps, parseUsd, USD_MAX } from "../store/mod.ts";

const CAP_FIELDS = ["budget", "dailyCap", "monthlyCap"] as const;
const NO_CAPS: KeyCaps = { budget: null, dailyCap: null, monthlyCap: null };
const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The caps `body` sets over `base` (absent fields keep `base`'s, `null` removes one), or
 * `undefined` when it names none. Each cap is a decimal USD string ≥ 0 with ≤ 12 decimals,
 * never a JSON number (it would have lost precision already). 400 otherwise.
 */
export function capsFrom(
  body: Record<string, unknown>,
  base: KeyCaps = NO_CAPS,
): KeyCaps | undefined {
  if (!CAP_FIELDS.some((f) => f in body)) return undefined;
  const caps = { ...base };
  for (const field of CAP_FIELDS) {
    if (field in body) caps[field] = capValue(field, body[field]);
  }
  return caps;
}

function capValue(field: string, value: unknown): string | null {
  if (value === null) return null;
  const help = `${field} must be a decimal USD string such as "10" or "0.50" (or null: no cap)`;
  if (typeof value === "number") {
    throw invalid(`${help}, not a JSON number: send it as a string so that no precision is lost`);
  }
  if (typeof value !== "string") throw invalid(help);
  let pico: bigint;
  try {
    pico = parseUsd(value);
  } catch (e) {
    throw invalid(`${field}: ${(e as Error).message}`);
  }
  if (pico < 0n) throw invalid(`${field} must not be negative`);
  if (pico > parseUsd(USD_MAX)) throw invalid(`${field} must be at most ${USD_MAX}`);
  return value;
}

/** The top-up's idempotency key from the `Idempotency-Key` header or the body; null if none. */
export function idempotencyKeyOf(header: string | undefined, field: unknown): string | null {
  if (field !== undefined && typeof field !== "string") {
    throw invalid("idempotencyKey must be a string");
  }
  if (header !== undefined && field !== undefined && header !== field) {
    throw invalid("The Idempotency-Key header and idempotencyKey differ");
  }
  const key = header ?? (field as string | undefined);
  if (key === undefined) return null;
  if (!IDEMPOTENCY_KEY.test(key)) {
    throw invalid("Idempotency-Key must be 1–128 chars of A-Z, a-z, 0-9, '.', '_', ':' and '-'");
  }
  return key;
}

function invalid(message: string): HttpError {
  return new HttpError(400, "invalid_request", message);
}
