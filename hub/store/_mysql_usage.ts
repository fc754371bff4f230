// Usage records on MySQL/MariaDB; `MysqlStore` (mysql.ts) forwards to this.
import { mysqlCode } from "./_mysql_tx.ts";
import type { Pool, RowDataPacket } from "mysql2/promise";
import type { UsageRecord } from "../../protocol/usage.ts";
import {
  rowToUsage,
  sameUsage,
  type StoredUsage,
  USAGE_INSERT,
  USAGE_SELECT,
  usageListQuery,
  type UsageRow,
  usageValues,
} from "./_usage.ts";
import { StoreConflictError } from "./errors.ts";
import type { UsageContext, UsageFilter, UsageItem, UsageOutcome } from "./mod.ts";

export class MysqlUsage {
  #pool: Pool;

  constructor(pool: Pool) {
    this.#pool = pool;
  }

  /**
   * A plain INSERT: the primary key lets exactly one of any concurrent inserts of an id win
   * (InnoDB makes the others wait for it, then fail with ER_DUP_ENTRY). A loser reads the
   * winner's row, which is committed and never changes, to tell a replay from a conflict.
   * (Not INSERT IGNORE, which would also swallow other errors.)
   */
  async recordUsage(record: UsageRecord, context: UsageContext): Promise<"inserted" | "duplicate"> {
    const values = usageValues(record, context);
    try {
      await this.#pool.execute(USAGE_INSERT, values);
      return "inserted";
    } catch (e) {
      if (mysqlCode(e) !== "ER_DUP_ENTRY") throw e;
      const stored = await this.#read(values[0] as string);
      if (stored && sameUsage(stored, values)) return "duplicate";
      throw new StoreConflictError("requestId", { cause: e });
    }
  }

  /** Many records in one transaction (one log flush at commit); each item's outcome, or its error. */
  async recordUsageBatch(items: readonly UsageItem[]): Promise<UsageOutcome[]> {
    const conn = await this.#pool.getConnection();
    try {
      await conn.beginTransaction();
      const out: UsageOutcome[] = [];
      for (const { record, context } of items) {
        let values;
        try {
          values = usageValues(record, context);
        } catch (e) {
          if (!(e instanceof RangeError)) throw e;
          out.push(e);
          continue;
        }
        try {
          await conn.execute(USAGE_INSERT, values);
          out.push("inserted");
        } catch (e) {
          // InnoDB rolls back only the failed statement; the transaction goes on.
          if (mysqlCode(e) !== "ER_DUP_ENTRY") throw e;
          const [rows] = await conn.execute<RowDataPacket[]>(
            `${USAGE_SELECT} WHERE request_id = ?`,
            [values[0] as string],
          );
          const stored = rows[0] as UsageRow | undefined;
          out.push(
            stored && sameUsage(stored, values)
              ? "duplicate"
              : new StoreConflictError("requestId", { cause: e }),
          );
        }
      }
      await conn.commit();
      return out;
    } catch (e) {
      await conn.rollback().catch(() => {});
      throw e;
    } finally {
      conn.release();
    }
  }

  async getUsage(requestId: string): Promise<StoredUsage | null> {
    const row = await this.#read(requestId);
    return row ? rowToUsage(row) : null;
  }

  async listUsage(filter: UsageFilter): Promise<StoredUsage[]> {
    const { sql, params } = usageListQuery(filter);
    // query (client-side placeholders), not execute: some servers refuse `LIMIT ?` prepared.
    const [rows] = await this.#pool.query<RowDataPacket[]>(sql, params);
    return rows.map((row) => rowToUsage(row as UsageRow));
  }

  async #read(requestId: string): Promise<UsageRow | undefined> {
    const [rows] = await this.#pool.execute<RowDataPacket[]>(
      `${USAGE_SELECT} WHERE request_id = ?`,
      [requestId],
    );
    return rows[0] as UsageRow | undefined;
  }
}
