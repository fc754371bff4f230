// The one way the SQLite store runs a write transaction (accounts, billing, quotas, usage,
// ledger sync, settlement batches, migrations).
import type { DatabaseSync } from "node:sqlite";

/**
 * Runs `fn` inside `BEGIN IMMEDIATE`: the file's write lock is taken up front, so another
 * process sharing the file waits for it (busy timeout) instead of failing at COMMIT, and no read
 * inside `fn` can go stale. Committed when `fn` returns, rolled back when it throws.
 */
export function immediate<T>(db: DatabaseSync, fn: () => T): T {
  db.exec("BEGIN IMMEDIATE");
  try {
    const out = fn();
    db.exec("COMMIT");
    return out;
  } catch (e) {
    // SQLite may already have rolled back by itself (e.g. disk full); a second ROLLBACK throws.
    if (db.isTransaction) db.exec("ROLLBACK");
    throw e;
  }
}
