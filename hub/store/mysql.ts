/**
 * The MySQL/MariaDB store: a `mysql2` connection pool, one statement per write, so each write
 * is atomic on its own (InnoDB autocommit).
 */
import { mysqlCode } from "./_mysql_tx.ts";
import mysql from "mysql2/promise";
import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from "mysql2/promise";
import type { Capabilities } from "../../protocol/capabilities.ts";
import type { UsageRecord } from "../../protocol/usage.ts";
import {
  AGENT_COLUMNS,
  type AgentRow,
  conflictField,
  newAgentRecord,
  rowToAgent,
} from "./_rows.ts";
import type { StoreLocation } from "./dsn.ts";
import type { ChainHead, LedgerEntry } from "../../protocol/chain.ts";
import { MysqlAccounts } from "./_mysql_accounts.ts";
import { MysqlBilling } from "./_mysql_billing.ts";
import { MysqlQuotas } from "./_mysql_quotas.ts";
import { MysqlLedgerSync } from "./_mysql_ledger_sync.ts";
import { MysqlSettleBatch } from "./_mysql_settle_batch.ts";
import { MysqlPrices } from "./_mysql_prices.ts";
import type { PriceVersionRecord, PriceVersionSummary } from "./_prices.ts";
import type {
  NewReservation,
  Posting,
  ReservationRecord,
  Settlement,
  SettleOutcome,
} from "./_billing_types.ts";
import { MysqlUsage } from "./_mysql_usage.ts";
import { StoreConflictError } from "./errors.ts";
import { pendingMigrations, SCHEMA_MIGRATIONS_DDL } from "./migrations.ts";
import type {
  AgentRecord,
  AwsCredentialRow,
  CreatedKey,
  HubStore,
  KeyRecord,
  KeyWithUser,
  NewAgent,
  NewKey,
  NewUser,
  UsageContext,
  UsageFilter,
  UsageItem,
  UsageOutcome,
  UserRecord,
} from "./mod.ts";

type MysqlLocation = Extract<StoreLocation, { kind: "mysql" }>;

/** Server-wide advisory lock held while migrating, so concurrent hubs apply each step once. */
const MIGRATION_LOCK = "aqueduct_migrate";
const MIGRATION_LOCK_WAIT_S = 30;
const POOL_CONNECTIONS_MAX = 10;

/** Connects, applies pending migrations, and returns the store. The database must exist. */
export async function openMysqlStore(location: MysqlLocation): Promise<HubStore> {
  const { host, port, user, password, database } = location;
  const pool = mysql.createPool({
    host,
    port,
    user,
    password,
    database,
    connectionLimit: POOL_CONNECTIONS_MAX,
  });
  try {
    await migrate(pool, Date.now());
    return new MysqlStore(pool);
  } catch (e) {
    await pool.end();
    // Name the server (never the password) so an operator knows which DSN failed.
    const where = `mysql://${user}@${host}:${port}/${database}`;
    throw new Error(`Cannot open store ${where}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Applies pending migrations on one connection while holding `GET_LOCK`: a second process
 * waits for the lock, then reads the new version and applies nothing.
 */
async function migrate(pool: Pool, nowMs: number): Promise<void> {
  const conn = await pool.getConnection();
  let healthy = false;
  try {
    const [locked] = await conn.query<RowDataPacket[]>("SELECT GET_LOCK(?, ?) AS got", [
      MIGRATION_LOCK,
      MIGRATION_LOCK_WAIT_S,
    ]);
    if (locked[0]?.got !== 1) {
      throw new Error(
        `lock "${MIGRATION_LOCK}" still held by another process after ${MIGRATION_LOCK_WAIT_S} s`,
      );
    }
    try {
      await conn.query(SCHEMA_MIGRATIONS_DDL.mysql);
      for (const m of pendingMigrations(await readVersion(conn))) {
        // DDL commits implicitly (see migrations.ts); the transaction still keeps a data
        // migration and its bookkeeping row together.
        await conn.beginTransaction();
        try {
          for (const sql of m.mysql) await conn.query(sql);
          await conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (?, ?, ?)",
            [m.version, m.name, nowMs],
          );
          await conn.commit();
        } catch (e) {
          await conn.rollback();
          throw e;
        }
      }
    } finally {
      await conn.query("DO RELEASE_LOCK(?)", [MIGRATION_LOCK]);
    }
    healthy = true;
  } finally {
    // A connection that failed midway may be broken; closing it also frees any lock it held.
    if (healthy) conn.release();
    else conn.destroy();
  }
}

async function readVersion(conn: Pool | PoolConnection): Promise<number> {
  const [rows] = await conn.query<RowDataPacket[]>(
    "SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations",
  );
  return Number(rows[0]?.v ?? 0);
}

class MysqlStore implements HubStore {
  readonly kind = "mysql" as const;
  #pool: Pool;
  #closed = false;
  #accounts: MysqlAccounts;
  #usage: MysqlUsage;
  #billing: MysqlBilling;
  /** Ledger sync: dispatch records, claims, checkpoints, divergences. */
  readonly ledgerSync: MysqlLedgerSync;
  /** Key spend caps and idempotent top-ups. */
  readonly quotas: MysqlQuotas;
  #settleBatch: MysqlSettleBatch;
  #prices: MysqlPrices;

  constructor(pool: Pool) {
    this.#pool = pool;
    this.#accounts = new MysqlAccounts(pool);
    this.#usage = new MysqlUsage(pool);
    this.#billing = new MysqlBilling(pool);
    this.ledgerSync = new MysqlLedgerSync(pool);
    this.quotas = new MysqlQuotas(pool);
    this.#settleBatch = new MysqlSettleBatch(pool, (s) => this.#billing.settle(s));
    this.#prices = new MysqlPrices(pool);
  }

  async createAgent(agent: NewAgent, nowMs: number): Promise<AgentRecord> {
    const a = newAgentRecord(agent, nowMs);
    try {
      await this.#pool.execute(
        `INSERT INTO agents (id, name, public_key, key_id, tier, disabled, created_at_ms)
         VALUES (?, ?, ?, ?, ?, 0, ?)`,
        [a.id, a.name, a.publicKey, a.keyId, a.tier, a.createdAtMs],
      );
    } catch (e) {
      throw asConflict(e) ?? e;
    }
    return a;
  }

  async getAgent(id: string): Promise<AgentRecord | null> {
    const [rows] = await this.#pool.execute<RowDataPacket[]>(
      `SELECT ${AGENT_COLUMNS} FROM agents WHERE id = ?`,
      [id],
    );
    const row = rows[0];
    return row ? rowToAgent(row as AgentRow) : null;
  }

  async listAgents(): Promise<AgentRecord[]> {
    const [rows] = await this.#pool.query<RowDataPacket[]>(
      `SELECT ${AGENT_COLUMNS} FROM agents ORDER BY created_at_ms, id`,
    );
    return rows.map((row) => rowToAgent(row as AgentRow));
  }

  async recordAgentSeen(
    id: string,
    seen: { atMs: number; capabilities?: Capabilities },
  ): Promise<void> {
    const caps = seen.capabilities === undefined ? null : JSON.stringify(seen.capabilities);
    await this.#pool.execute(
      "UPDATE agents SET last_seen_at_ms = ?, capabilities = COALESCE(?, capabilities) WHERE id = ?",
      [seen.atMs, caps, id],
    );
  }

  async setAgentDisabled(id: string, disabled: boolean): Promise<boolean> {
    // affectedRows counts matched rows (mysql2 sets FOUND_ROWS), so re-disabling returns true.
    const [res] = await this.#pool.execute<ResultSetHeader>(
      "UPDATE agents SET disabled = ? WHERE id = ?",
      [disabled ? 1 : 0, id],
    );
    return res.affectedRows > 0;
  }

  createUser(user: NewUser, nowMs: number): Promise<UserRecord> {
    return withConflicts(this.#accounts.createUser(user, nowMs));
  }

  getUser(id: string): Promise<UserRecord | null> {
    return this.#accounts.getUser(id);
  }

  creditUser(id: string, amount: string): Promise<string> {
    return this.#accounts.creditUser(id, amount);
  }

  setUserLimits(id: string, limits: unknown | null): Promise<boolean> {
    return this.#accounts.setUserLimits(id, limits);
  }

  createKey(key: NewKey, nowMs: number): Promise<CreatedKey> {
    return withConflicts(this.#accounts.createKey(key, nowMs));
  }

  getKey(id: string): Promise<KeyRecord | null> {
    return this.#accounts.getKey(id);
  }

  listKeys(userId: string): Promise<KeyRecord[]> {
    return this.#accounts.listKeys(userId);
  }

  findKeyBySecretHash(hashHex: string): Promise<KeyWithUser | null> {
    return this.#accounts.findKeyBySecretHash(hashHex);
  }

  addAwsCredential(credential: AwsCredentialRow, nowMs: number): Promise<void> {
    return withConflicts(this.#accounts.addAwsCredential(credential, nowMs));
  }

  findKeyByAwsAccessKeyId(
    accessKeyId: string,
  ): Promise<{ key: KeyWithUser; secretSealed: string } | null> {
    return this.#accounts.findKeyByAwsAccessKeyId(accessKeyId);
  }

  setKeyRouting(id: string, policy: unknown | null, limits: unknown | null): Promise<boolean> {
    return this.#accounts.setKeyRouting(id, policy, limits);
  }

  setKeyDisabled(id: string, disabled: boolean): Promise<boolean> {
    return this.#accounts.setKeyDisabled(id, disabled);
  }

  recordUsageBatch(items: readonly UsageItem[]): Promise<UsageOutcome[]> {
    return this.#usage.recordUsageBatch(items);
  }

  recordUsage(record: UsageRecord, context: UsageContext): Promise<"inserted" | "duplicate"> {
    return this.#usage.recordUsage(record, context);
  }

  getUsage(requestId: string): Promise<(UsageRecord & UsageContext) | null> {
    return this.#usage.getUsage(requestId);
  }

  listUsage(filter: UsageFilter): Promise<(UsageRecord & UsageContext)[]> {
    return this.#usage.listUsage(filter);
  }

  reserve(reservation: NewReservation, nowMs: number): Promise<ReservationRecord> {
    return this.#billing.reserve(reservation, nowMs);
  }

  getReservation(id: string): Promise<ReservationRecord | null> {
    return this.#billing.getReservation(id);
  }

  settle(settlement: Settlement): Promise<LedgerEntry> {
    return this.#billing.settle(settlement);
  }

  settleMany(settlements: readonly Settlement[]): Promise<SettleOutcome[]> {
    return this.#settleBatch.settleMany(settlements);
  }

  release(id: string, nowMs = Date.now()): Promise<boolean> {
    return this.#billing.release(id, nowMs);
  }

  releaseExpired(nowMs: number, limit = 100): Promise<number> {
    return this.#billing.releaseExpired(nowMs, limit);
  }

  ledgerHead(agentId: string): Promise<ChainHead | null> {
    return this.#billing.ledgerHead(agentId);
  }

  ledgerEntries(agentId: string, fromSeq: number, limit: number): Promise<LedgerEntry[]> {
    return this.#billing.ledgerEntries(agentId, fromSeq, limit);
  }

  ledgerHashAt(agentId: string, seq: number): Promise<string | null> {
    return this.#billing.ledgerHashAt(agentId, seq);
  }

  agentBalance(agentId: string): Promise<string> {
    return this.#billing.agentBalance(agentId);
  }

  postings(requestId: string): Promise<Posting[]> {
    return this.#billing.postings(requestId);
  }

  publishPriceVersion(
    p: { version: number; publishedAtMs: number; canonical: string },
  ): Promise<{ outcome: "inserted" | "duplicate"; record: PriceVersionRecord }> {
    return this.#prices.publishPriceVersion(p);
  }

  getPriceVersion(version: number): Promise<PriceVersionRecord | null> {
    return this.#prices.getPriceVersion(version);
  }

  latestPriceVersion(): Promise<number> {
    return this.#prices.latestPriceVersion();
  }

  listPriceVersions(): Promise<PriceVersionSummary[]> {
    return this.#prices.listPriceVersions();
  }

  schemaVersion(): Promise<number> {
    return readVersion(this.#pool);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }
}

async function withConflicts<T>(write: Promise<T>): Promise<T> {
  try {
    return await write;
  } catch (e) {
    throw asConflict(e) ?? e;
  }
}

/** Maps "Duplicate entry '…' for key 'agents_public_key'" (ER_DUP_ENTRY) to a conflict. */
function asConflict(e: unknown): StoreConflictError | undefined {
  if (mysqlCode(e) !== "ER_DUP_ENTRY") return undefined;
  // Anchored at the end: the duplicate value itself is caller-supplied text. MySQL 8 prefixes
  // the index with "table.".
  const key = /for key '(?:[^']*\.)?([^'.]*)'$/.exec((e as Error).message)?.[1];
  const field = key === undefined ? undefined : conflictField(key);
  return field === undefined ? undefined : new StoreConflictError(field, { cause: e });
}
