// Price versions on MySQL/MariaDB; `MysqlStore` (mysql.ts) forwards to this.
import { mysqlCode } from "./_mysql_tx.ts";
import type { Pool, RowDataPacket } from "mysql2/promise";
import {
  newPriceRecord,
  PRICE_COLUMNS,
  type PriceVersionRecord,
  type PriceVersionSummary,
  replayedPrice,
  rowToPriceVersion,
} from "./_prices.ts";

export class MysqlPrices {
  #pool: Pool;

  constructor(pool: Pool) {
    this.#pool = pool;
  }

  /**
   * A plain INSERT: the primary key lets exactly one of concurrent publishes of a version win
   * (hubs seeding the defaults at the same moment); a loser reads the winner's committed row to
   * tell a replay from a conflict.
   */
  async publishPriceVersion(
    p: { version: number; publishedAtMs: number; canonical: string },
  ): Promise<{ outcome: "inserted" | "duplicate"; record: PriceVersionRecord }> {
    const r = newPriceRecord(p);
    try {
      await this.#pool.execute(
        `INSERT INTO price_versions (${PRICE_COLUMNS}) VALUES (?, ?, ?, ?)`,
        [r.version, r.publishedAtMs, r.canonical, r.sha256],
      );
      return { outcome: "inserted", record: r };
    } catch (e) {
      if (mysqlCode(e) !== "ER_DUP_ENTRY") throw e;
      return replayedPrice(await this.getPriceVersion(r.version), r, e);
    }
  }

  async getPriceVersion(version: number): Promise<PriceVersionRecord | null> {
    const [rows] = await this.#pool.execute<RowDataPacket[]>(
      `SELECT ${PRICE_COLUMNS} FROM price_versions WHERE version = ?`,
      [version],
    );
    return rows[0] ? rowToPriceVersion(rows[0]) : null;
  }

  async latestPriceVersion(): Promise<number> {
    const [rows] = await this.#pool.query<RowDataPacket[]>(
      "SELECT COALESCE(MAX(version), 0) AS v FROM price_versions",
    );
    return Number(rows[0]?.v ?? 0);
  }

  async listPriceVersions(): Promise<PriceVersionSummary[]> {
    const [rows] = await this.#pool.query<RowDataPacket[]>(
      "SELECT version, published_at_ms, sha256 FROM price_versions ORDER BY version",
    );
    return rows.map((row) => ({
      version: Number(row.version),
      publishedAtMs: Number(row.published_at_ms),
      sha256: String(row.sha256),
    }));
  }
}
