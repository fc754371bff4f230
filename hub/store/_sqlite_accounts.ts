// Users and virtual keys on node:sqlite; `SqliteStore` (sqlite.ts) forwards to this.
import { immediate } from "./_sqlite_tx.ts";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { toJson } from "./_accounts.ts";
import {
  creditedBalance,
  KEY_COLUMNS,
  KEY_WITH_USER_SELECT,
  type KeyRow,
  type KeyWithUserRow,
  newKeyDraft,
  newUserRecord,
  parseCredit,
  rowToKey,
  rowToKeyWithUser,
  rowToUser,
  USER_COLUMNS,
  type UserRow,
} from "./_accounts.ts";
import { formatUsd, parseUsd } from "./_money.ts";
import { StoreNotFoundError } from "./errors.ts";
import { capColumns } from "./_key_spend.ts";
import type {
  AwsCredentialRow,
  CreatedKey,
  KeyRecord,
  KeyWithUser,
  NewKey,
  NewUser,
  UserRecord,
} from "./mod.ts";

/** Synchronous, like `DatabaseSync`; the store wraps each call in `Promise.try`. */
export class SqliteAccounts {
  #db: DatabaseSync;
  #insertUser: StatementSync;
  #getUser: StatementSync;
  #getBalance: StatementSync;
  #setBalance: StatementSync;
  #setUserLimits: StatementSync;
  #insertKey: StatementSync;
  #getKey: StatementSync;
  #listKeys: StatementSync;
  #findKey: StatementSync;
  #disableKey: StatementSync;
  #setKeyRouting: StatementSync;

  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#insertUser = db.prepare(
      "INSERT INTO users (id, name, balance, disabled, created_at_ms) VALUES (?, ?, ?, 0, ?)",
    );
    this.#getUser = db.prepare(`SELECT ${USER_COLUMNS} FROM users WHERE id = ?`);
    this.#getBalance = db.prepare("SELECT balance FROM users WHERE id = ?");
    this.#setBalance = db.prepare("UPDATE users SET balance = ? WHERE id = ?");
    this.#setUserLimits = db.prepare("UPDATE users SET limits = ? WHERE id = ?");
    // INSERT … SELECT: an unknown user inserts no row (the foreign key is a second guard).
    this.#insertKey = db.prepare(
      `INSERT INTO virtual_keys (id, user_id, secret_hash, prefix, zone, policy, limits,
         disabled, created_at_ms, expires_at_ms, budget, daily_cap, monthly_cap)
       SELECT ?, id, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ? FROM users WHERE id = ?`,
    );
    this.#getKey = db.prepare(`SELECT ${KEY_COLUMNS} FROM virtual_keys WHERE id = ?`);
    this.#listKeys = db.prepare(
      `SELECT ${KEY_COLUMNS} FROM virtual_keys WHERE user_id = ? ORDER BY created_at_ms, id`,
    );
    this.#findKey = db.prepare(`${KEY_WITH_USER_SELECT} WHERE k.secret_hash = ?`);
    this.#disableKey = db.prepare("UPDATE virtual_keys SET disabled = ? WHERE id = ?");
    this.#setKeyRouting = db.prepare("UPDATE virtual_keys SET policy = ?, limits = ? WHERE id = ?");
  }

  createUser(user: NewUser, nowMs: number): UserRecord {
    const u = newUserRecord(user, nowMs);
    this.#insertUser.run(u.id, u.name, u.balance, u.createdAtMs);
    return u;
  }

  getUser(id: string): UserRecord | null {
    const row = this.#getUser.get(id);
    return row ? rowToUser(row as unknown as UserRow) : null;
  }

  /**
   * Read, add in BigInt, write: inside `BEGIN IMMEDIATE`, so another process sharing the
   * file cannot credit the same user between the read and the write.
   */
  creditUser(id: string, amount: string): string {
    const credit = parseCredit(amount);
    return immediate(this.#db, () => {
      const row = this.#getBalance.get(id) as { balance: string } | undefined;
      if (!row) throw new StoreNotFoundError("user", id);
      const balance = formatUsd(creditedBalance(id, parseUsd(row.balance), credit.pico));
      this.#setBalance.run(balance, id);
      return balance;
    });
  }

  setUserLimits(id: string, limits: unknown | null): boolean {
    return Number(this.#setUserLimits.run(toJson(limits), id).changes) > 0;
  }

  createKey(key: NewKey, nowMs: number): CreatedKey {
    const { record: k, secret, secretHash, policyJson, limitsJson } = newKeyDraft(key, nowMs);
    const { changes } = this.#insertKey.run(
      k.id,
      secretHash,
      k.prefix,
      k.zone,
      policyJson,
      limitsJson,
      k.createdAtMs,
      k.expiresAtMs,
      ...capColumns(key.caps),
      k.userId,
    );
    if (Number(changes) === 0) throw new StoreNotFoundError("user", k.userId);
    return { record: k, secret };
  }

  getKey(id: string): KeyRecord | null {
    const row = this.#getKey.get(id);
    return row ? rowToKey(row as unknown as KeyRow) : null;
  }

  listKeys(userId: string): KeyRecord[] {
    return this.#listKeys.all(userId).map((row) => rowToKey(row as unknown as KeyRow));
  }

  findKeyBySecretHash(hashHex: string): KeyWithUser | null {
    const row = this.#findKey.get(hashHex);
    return row ? rowToKeyWithUser(row as unknown as KeyWithUserRow) : null;
  }

  addAwsCredential(c: AwsCredentialRow, nowMs: number): void {
    this.#db.prepare(
      `INSERT INTO aws_credentials (access_key_id, key_id, secret_sealed, created_at_ms)
       VALUES (?, ?, ?, ?)`,
    ).run(c.accessKeyId, c.keyId, c.secretSealed, nowMs);
  }

  findKeyByAwsAccessKeyId(
    accessKeyId: string,
  ): { key: KeyWithUser; secretSealed: string } | null {
    const row = this.#db.prepare(
      `${KEY_WITH_USER_SELECT.replace(" FROM", ", a.secret_sealed AS secret_sealed FROM")}
       JOIN aws_credentials a ON a.key_id = k.id WHERE a.access_key_id = ?`,
    ).get(accessKeyId) as unknown as (KeyWithUserRow & { secret_sealed: string }) | undefined;
    return row ? { key: rowToKeyWithUser(row), secretSealed: row.secret_sealed } : null;
  }

  setKeyDisabled(id: string, disabled: boolean): boolean {
    return Number(this.#disableKey.run(disabled ? 1 : 0, id).changes) > 0;
  }

  setKeyRouting(id: string, policy: unknown | null, limits: unknown | null): boolean {
    return Number(this.#setKeyRouting.run(toJson(policy), toJson(limits), id).changes) > 0;
  }
}
