// Price versions on node:sqlite; `SqliteStore` (sqlite.ts) forwards to this.
import type { DatabaseSync, StatementSync } from "node:sqlite";
import {
  newPriceRecord,
  PRICE_COLUMNS,
  type PriceVersionRecord,
  type PriceVersionSummary,
  replayedPrice,
  rowToPriceVersion,
} from "./_prices.ts";

/** Synchronous, like `DatabaseSync`; the store wraps each call in `Promise.try`. */
export class SqlitePrices {
  #insert: StatementSync;
  #get: StatementSync;
  #latest: StatementSync;
  #list: StatementSync;

  constructor(db: DatabaseSync) {
    // DO NOTHING only for a taken version: any other constraint failure still throws.
    this.#insert = db.prepare(
      `INSERT INTO price_versions (${PRICE_COLUMNS}) VALUES (?, ?, ?, ?)
       ON CONFLICT (version) DO NOTHING`,
    );
    this.#get = db.prepare(`SELECT ${PRICE_COLUMNS} FROM price_versions WHERE version = ?`);
    this.#latest = db.prepare("SELECT COALESCE(MAX(version), 0) AS v FROM price_versions");
    this.#list = db.prepare(
      "SELECT version, published_at_ms, sha256 FROM price_versions ORDER BY version",
    );
  }

  publishPriceVersion(
    p: { version: number; publishedAtMs: number; canonical: string },
  ): { outcome: "inserted" | "duplicate"; record: PriceVersionRecord } {
    const r = newPriceRecord(p);
    if (Number(this.#insert.run(r.version, r.publishedAtMs, r.canonical, r.sha256).changes) > 0) {
      return { outcome: "inserted", record: r };
    }
    // Rows are never changed or deleted: the row that blocked the insert is there to compare.
    return replayedPrice(this.getPriceVersion(r.version), r);
  }

  getPriceVersion(version: number): PriceVersionRecord | null {
    const row = this.#get.get(version);
    return row ? rowToPriceVersion(row) : null;
  }

  latestPriceVersion(): number {
    return Number(this.#latest.get()?.v ?? 0);
  }

  listPriceVersions(): PriceVersionSummary[] {
    return this.#list.all().map((row) => ({
      version: Number(row.version),
      publishedAtMs: Number(row.published_at_ms),
      sha256: String(row.sha256),
    }));
  }
}
