// Usage records on node:sqlite; `SqliteStore` (sqlite.ts) forwards to this.
import { immediate } from "./_sqlite_tx.ts";
import type { DatabaseSync, StatementSync } from "node:sqlite";
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

/** Synchronous, like `DatabaseSync`; the store wraps each call in `Promise.try`. */
export class SqliteUsage {
  #db: DatabaseSync;
  #insert: StatementSync;
  #get: StatementSync;
  /** One prepared statement per filter combination (at most 16). */
  #lists = new Map<string, StatementSync>();

  constructor(db: DatabaseSync) {
    this.#db = db;
    // DO NOTHING only for a taken request id: any other constraint failure still throws.
    this.#insert = db.prepare(`${USAGE_INSERT} ON CONFLICT (request_id) DO NOTHING`);
    this.#get = db.prepare(`${USAGE_SELECT} WHERE request_id = ?`);
  }

  /**
   * Insert-or-nothing, then (on a taken id) read the stored row to compare. Rows are never
   * deleted or changed, so a row that blocked the insert is still there to be read.
   */
  recordUsage(record: UsageRecord, context: UsageContext): "inserted" | "duplicate" {
    const values = usageValues(record, context);
    if (Number(this.#insert.run(...values).changes) > 0) return "inserted";
    const stored = this.#get.get(values[0]!) as UsageRow | undefined;
    if (stored && sameUsage(stored, values)) return "duplicate";
    throw new StoreConflictError("requestId");
  }

  /** Many records in one transaction (one disk sync); each item's outcome, or its error. */
  recordUsageBatch(items: readonly UsageItem[]): UsageOutcome[] {
    return immediate(this.#db, () =>
      items.map(({ record, context }): UsageOutcome => {
        try {
          return this.recordUsage(record, context);
        } catch (e) {
          if (e instanceof StoreConflictError || e instanceof RangeError) return e;
          throw e;
        }
      }));
  }

  getUsage(requestId: string): StoredUsage | null {
    const row = this.#get.get(requestId) as UsageRow | undefined;
    return row ? rowToUsage(row) : null;
  }

  listUsage(filter: UsageFilter): StoredUsage[] {
    const { sql, params } = usageListQuery(filter);
    let statement = this.#lists.get(sql);
    if (!statement) this.#lists.set(sql, statement = this.#db.prepare(sql));
    return statement.all(...params).map((row) => rowToUsage(row as UsageRow));
  }
}
