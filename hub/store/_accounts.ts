// Users and virtual keys: the parts both engines share (ids, secrets, row shapes, money bounds),
// so that both map rows and refuse credits the same way.
import { createHash } from "node:crypto";
import { toBase64Url } from "../../protocol/encoding.ts";
import { formatUsd, parseUsd } from "./_money.ts";
import { randomHex } from "./_rows.ts";
import type { KeyRecord, KeyWithUser, NewKey, NewUser, UserRecord } from "./mod.ts";

/** The pricing zone of a key created without one. */
export const DEFAULT_ZONE = "standard";

/** The largest balance (and credit) either engine holds: MySQL's `DECIMAL(38,12)` maximum. */
export const USD_MAX = "99999999999999999999999999.999999999999";
const USD_MAX_PICO = parseUsd(USD_MAX);

/** What a client key starts with; the rest is base64url(32 random bytes). */
const SECRET_PREFIX = "aq-";
const SECRET_BYTES = 32;
const DISPLAY_PREFIX_CHARS = 8;

/** Lowercase hex SHA-256 of a key secret: the only form of it the store keeps or looks up. */
export function keySecretHash(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

export const USER_COLUMNS = "id, name, balance, disabled, created_at_ms, limits";
export const KEY_COLUMNS =
  "id, user_id, prefix, zone, policy, limits, disabled, created_at_ms, expires_at_ms";

/**
 * The key-with-user join; callers append `WHERE k.secret_hash = ?`. The gateway runs it on
 * every request, so everything it needs of the user (limits included) comes from this one query.
 */
export const KEY_WITH_USER_SELECT = `SELECT ${
  KEY_COLUMNS.split(", ").map((c) => `k.${c}`).join(", ")
}, u.name AS user_name, u.balance AS user_balance, u.disabled AS user_disabled,
  u.created_at_ms AS user_created_at_ms, u.limits AS user_limits
  FROM virtual_keys k JOIN users u ON u.id = k.user_id`;

/** Rows as both drivers return them (balance: SQLite TEXT, or mysql2's DECIMAL string). */
export interface UserRow {
  id: string;
  name: string;
  balance: string;
  disabled: number;
  created_at_ms: number;
  limits: string | null;
}

export interface KeyRow {
  id: string;
  user_id: string;
  prefix: string;
  zone: string;
  policy: string | null;
  limits: string | null;
  disabled: number;
  created_at_ms: number;
  expires_at_ms: number | null;
}

export interface KeyWithUserRow extends KeyRow {
  user_name: string;
  user_balance: string;
  user_disabled: number;
  user_created_at_ms: number;
  user_limits: string | null;
}

export function newUserRecord(user: NewUser, nowMs: number): UserRecord {
  return {
    id: "usr_" + randomHex(10),
    name: user.name,
    balance: "0.00",
    createdAtMs: nowMs,
    disabled: false,
    limits: null,
  };
}

/** A new key's record, its one-time secret, and the two columns derived from them. */
export interface KeyDraft {
  record: KeyRecord;
  secret: string;
  secretHash: string;
  policyJson: string | null;
  limitsJson: string | null;
}

export function newKeyDraft(key: NewKey, nowMs: number): KeyDraft {
  const secret = SECRET_PREFIX +
    toBase64Url(crypto.getRandomValues(new Uint8Array(SECRET_BYTES)));
  const policyJson = toJson(key.policy);
  const limitsJson = toJson(key.limits);
  return {
    record: {
      id: "key_" + randomHex(10),
      userId: key.userId,
      prefix: secret.slice(SECRET_PREFIX.length, SECRET_PREFIX.length + DISPLAY_PREFIX_CHARS),
      zone: key.zone ?? DEFAULT_ZONE,
      // Stored as JSON text and parsed back, so the record equals what later reads return.
      policy: policyJson === null ? null : JSON.parse(policyJson),
      limits: limitsJson === null ? null : JSON.parse(limitsJson),
      disabled: false,
      createdAtMs: nowMs,
      expiresAtMs: key.expiresAtMs ?? null,
    },
    secret,
    secretHash: keySecretHash(secret),
    policyJson,
    limitsJson,
  };
}

/** A JSON column value: null stays SQL NULL. */
export function toJson(value: unknown): string | null {
  return value === undefined || value === null ? null : JSON.stringify(value);
}

/** A JSON column's value: SQL NULL is `null`. */
function fromJson(text: string | null): unknown | null {
  return text === null ? null : JSON.parse(text);
}

export function rowToUser(row: UserRow): UserRecord {
  return {
    id: row.id,
    name: row.name,
    balance: formatUsd(parseUsd(row.balance)),
    createdAtMs: row.created_at_ms,
    disabled: row.disabled === 1,
    limits: fromJson(row.limits),
  };
}

export function rowToKey(row: KeyRow): KeyRecord {
  return {
    id: row.id,
    userId: row.user_id,
    prefix: row.prefix,
    zone: row.zone,
    policy: fromJson(row.policy),
    limits: fromJson(row.limits),
    disabled: row.disabled === 1,
    createdAtMs: row.created_at_ms,
    expiresAtMs: row.expires_at_ms,
  };
}

export function rowToKeyWithUser(row: KeyWithUserRow): KeyWithUser {
  return {
    ...rowToKey(row),
    user: rowToUser({
      id: row.user_id,
      name: row.user_name,
      balance: row.user_balance,
      disabled: row.user_disabled,
      created_at_ms: row.user_created_at_ms,
      limits: row.user_limits,
    }),
  };
}

/**
 * Parses a credit amount: `TypeError` when malformed, `RangeError` when no balance could
 * absorb it. Returns picodollars and the canonical text (what MySQL's `CAST` receives).
 */
export function parseCredit(amount: string): { pico: bigint; text: string } {
  const pico = parseUsd(amount);
  if (pico > USD_MAX_PICO || -pico > USD_MAX_PICO) {
    throw new RangeError(`Cannot credit ${amount} USD: the amount exceeds ${USD_MAX}`);
  }
  return { pico, text: formatUsd(pico) };
}

/** `balance + credit`, or a `RangeError` when that leaves 0 … `USD_MAX`. */
export function creditedBalance(userId: string, balance: bigint, credit: bigint): bigint {
  const next = balance + credit;
  if (next < 0n) {
    throw new RangeError(
      `Cannot credit ${formatUsd(credit)} USD to ${userId}: the balance ` +
        `${formatUsd(balance)} would go below 0`,
    );
  }
  if (next > USD_MAX_PICO) {
    throw new RangeError(
      `Cannot credit ${formatUsd(credit)} USD to ${userId}: the balance would exceed ${USD_MAX}`,
    );
  }
  return next;
}
