// Users and virtual keys on MySQL/MariaDB; `MysqlStore` (mysql.ts) forwards to this.
import type { Pool, ResultSetHeader, RowDataPacket } from "mysql2/promise";
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
  USD_MAX,
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

// DECIMAL arithmetic needs both operands DECIMAL: `balance + ?` with a string parameter is
// evaluated as DOUBLE by MariaDB and loses digits. The bounds are checked in the same
// statement, so a refused credit changes nothing and a concurrent one cannot slip between.
const CREDIT_SQL = `UPDATE users SET balance = balance + CAST(? AS DECIMAL(38,12))
  WHERE id = ? AND balance + CAST(? AS DECIMAL(38,12)) BETWEEN 0 AND ${USD_MAX}`;

export class MysqlAccounts {
  #pool: Pool;

  constructor(pool: Pool) {
    this.#pool = pool;
  }

  async createUser(user: NewUser, nowMs: number): Promise<UserRecord> {
    const u = newUserRecord(user, nowMs);
    await this.#pool.execute(
      "INSERT INTO users (id, name, balance, disabled, created_at_ms) VALUES (?, ?, ?, 0, ?)",
      [u.id, u.name, u.balance, u.createdAtMs],
    );
    return u;
  }

  async getUser(id: string): Promise<UserRecord | null> {
    const [rows] = await this.#pool.execute<RowDataPacket[]>(
      `SELECT ${USER_COLUMNS} FROM users WHERE id = ?`,
      [id],
    );
    const row = rows[0];
    return row ? rowToUser(row as UserRow) : null;
  }

  /**
   * One UPDATE does the exact DECIMAL addition and the bounds check; the SELECT in the same
   * transaction (the row still locked) reads the balance that UPDATE produced.
   */
  async creditUser(id: string, amount: string): Promise<string> {
    const credit = parseCredit(amount);
    const conn = await this.#pool.getConnection();
    try {
      await conn.beginTransaction();
      let balance: string | undefined;
      let updated = 0;
      try {
        const [res] = await conn.execute<ResultSetHeader>(CREDIT_SQL, [
          credit.text,
          id,
          credit.text,
        ]);
        updated = res.affectedRows;
        const [rows] = await conn.execute<RowDataPacket[]>(
          "SELECT balance FROM users WHERE id = ?",
          [id],
        );
        balance = (rows[0] as { balance: string } | undefined)?.balance;
        await conn.commit();
      } catch (e) {
        await conn.rollback();
        throw e;
      }
      if (balance === undefined) throw new StoreNotFoundError("user", id);
      const current = parseUsd(balance);
      if (updated === 0) {
        // Refused by the WHERE clause: the shared check names the reason. (Matched rows
        // count even when unchanged, so a credit of 0 is not refused.)
        creditedBalance(id, current, credit.pico);
        throw new RangeError(`Cannot credit ${credit.text} USD to ${id}: balance out of range`);
      }
      return formatUsd(current);
    } finally {
      conn.release();
    }
  }

  async setUserLimits(id: string, limits: unknown | null): Promise<boolean> {
    // affectedRows counts matched rows (mysql2 sets FOUND_ROWS), so an unchanged value is true.
    const [res] = await this.#pool.execute<ResultSetHeader>(
      "UPDATE users SET limits = ? WHERE id = ?",
      [toJson(limits), id],
    );
    return res.affectedRows > 0;
  }

  async createKey(key: NewKey, nowMs: number): Promise<CreatedKey> {
    const { record: k, secret, secretHash, policyJson, limitsJson } = newKeyDraft(key, nowMs);
    // INSERT … SELECT: an unknown user inserts no row (the foreign key is a second guard).
    const [res] = await this.#pool.execute<ResultSetHeader>(
      `INSERT INTO virtual_keys (id, user_id, secret_hash, prefix, zone, policy, limits,
         disabled, created_at_ms, expires_at_ms, budget, daily_cap, monthly_cap)
       SELECT ?, id, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ? FROM users WHERE id = ?`,
      [
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
      ],
    );
    if (res.affectedRows === 0) throw new StoreNotFoundError("user", k.userId);
    return { record: k, secret };
  }

  async getKey(id: string): Promise<KeyRecord | null> {
    const [rows] = await this.#pool.execute<RowDataPacket[]>(
      `SELECT ${KEY_COLUMNS} FROM virtual_keys WHERE id = ?`,
      [id],
    );
    const row = rows[0];
    return row ? rowToKey(row as KeyRow) : null;
  }

  async listKeys(userId: string): Promise<KeyRecord[]> {
    const [rows] = await this.#pool.execute<RowDataPacket[]>(
      `SELECT ${KEY_COLUMNS} FROM virtual_keys WHERE user_id = ? ORDER BY created_at_ms, id`,
      [userId],
    );
    return rows.map((row) => rowToKey(row as KeyRow));
  }

  async findKeyBySecretHash(hashHex: string): Promise<KeyWithUser | null> {
    const [rows] = await this.#pool.execute<RowDataPacket[]>(
      `${KEY_WITH_USER_SELECT} WHERE k.secret_hash = ?`,
      [hashHex],
    );
    const row = rows[0];
    return row ? rowToKeyWithUser(row as KeyWithUserRow) : null;
  }

  async addAwsCredential(c: AwsCredentialRow, nowMs: number): Promise<void> {
    await this.#pool.execute(
      `INSERT INTO aws_credentials (access_key_id, key_id, secret_sealed, created_at_ms)
       VALUES (?, ?, ?, ?)`,
      [c.accessKeyId, c.keyId, c.secretSealed, nowMs],
    );
  }

  async findKeyByAwsAccessKeyId(
    accessKeyId: string,
  ): Promise<{ key: KeyWithUser; secretSealed: string } | null> {
    const [rows] = await this.#pool.execute<RowDataPacket[]>(
      `${KEY_WITH_USER_SELECT.replace(" FROM", ", a.secret_sealed AS secret_sealed FROM")}
       JOIN aws_credentials a ON a.key_id = k.id WHERE a.access_key_id = ?`,
      [accessKeyId],
    );
    const row = rows[0] as (KeyWithUserRow & { secret_sealed: string }) | undefined;
    return row ? { key: rowToKeyWithUser(row), secretSealed: row.secret_sealed } : null;
  }

  async setKeyRouting(
    id: string,
    policy: unknown | null,
    limits: unknown | null,
  ): Promise<boolean> {
    const [res] = await this.#pool.execute<ResultSetHeader>(
      "UPDATE virtual_keys SET policy = ?, limits = ? WHERE id = ?",
      [toJson(policy), toJson(limits), id],
    );
    return res.affectedRows > 0;
  }

  async setKeyDisabled(id: string, disabled: boolean): Promise<boolean> {
    // affectedRows counts matched rows (mysql2 sets FOUND_ROWS), so re-disabling returns true.
    const [res] = await this.#pool.execute<ResultSetHeader>(
      "UPDATE virtual_keys SET disabled = ? WHERE id = ?",
      [disabled ? 1 : 0, id],
    );
    return res.affectedRows > 0;
  }
}
