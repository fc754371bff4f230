// The one way the MariaDB store runs a write transaction (billing, quotas, ledger sync, batches).
import type { Pool, PoolConnection } from "mysql2/promise";

/** A deadlock victim is retried this many times in all before the error reaches the caller. */
const ATTEMPTS = 5;

/** The MySQL error code (`ER_DUP_ENTRY`, `ER_LOCK_DEADLOCK`, …) of a mysql2 error, if any. */
export const mysqlCode = (e: unknown): string | undefined => (e as { code?: string })?.code;

/**
 * Runs `fn` in a READ COMMITTED transaction on a pooled connection: committed when `fn` resolves,
 * rolled back when it throws, and run again from the start when InnoDB picks it as a deadlock
 * victim (`fn` must therefore only touch the database through `c`).
 */
export async function readCommitted<T>(
  pool: Pool,
  fn: (c: PoolConnection) => Promise<T>,
): Promise<T> {
  for (let attempt = 1;; attempt++) {
    const conn = await pool.getConnection();
    try {
      await conn.query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED");
      await conn.beginTransaction();
      try {
        const out = await fn(conn);
        await conn.commit();
        return out;
      } catch (e) {
        await conn.rollback();
        throw e;
      }
    } catch (e) {
      if (mysqlCode(e) !== "ER_LOCK_DEADLOCK" || attempt >= ATTEMPTS) throw e;
    } finally {
      conn.release();
    }
  }
}
