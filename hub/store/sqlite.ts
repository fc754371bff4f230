/**
 * The embedded store: one `node:sqlite` connection per process, WAL journal.
 *
 * `DatabaseSync` is synchronous, so each method runs to completion before any other JS does;
 * that (plus single statements per write) is what makes every write atomic here.
 */
import { immediate } from "./_sqlite_tx.ts";
import { dirname } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { Capabilities } from "../../protocol/capabilities.ts";
import type { UsageRecord } from "../../protocol/usage.ts";
import {
  AGENT_COLUMNS,
  type AgentRow,
  conflictField,
  newAgentRecord,
  rowToAgent,
} from "./_rows.ts";
import type { ChainHead, LedgerEntry } from "../../protocol/chain.ts";
import { SqliteAccounts } from "./_sqlite_accounts.ts";
import { SqliteBilling } from "./_sqlite_billing.ts";
import { SqliteQuotas } from "./_sqlite_quotas.ts";
import { SqliteLedgerSync } from "./_sqlite_ledger_sync.ts";
import { SqliteSettleBatch } from "./_sqlite_settle_batch.ts";
import { SqlitePrices } from "./_sqlite_prices.ts";
import type { PriceVersionRecord, PriceVersionSummary } from "./_prices.ts";
import type {
  NewReservation,
  Posting,
  ReservationRecord,
  Settlement,
  SettleOutcome,
} from "./_billing_types.ts";
import { SqliteUsage } from "./_sqlite_usage.ts";
import type { StoredUsage } from "./_usage.ts";
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

/** How long a writer waits for another process's lock before failing with "database is locked". */
const BUSY_TIMEOUT_MS = 5000;

/** Opens (creating if needed) the database at `path` or `:memory:`, migrated to the latest version. */
export async function openSqliteStore(path: string): Promise<HubStore> {
  if (path !== ":memory:") Deno.mkdirSync(dirname(path), { recursive: true });
  const db = new DatabaseSync(path, { timeout: BUSY_TIMEOUT_MS });
  try {
    // WAL lets readers run beside the writer; FULL makes each commit durable across power loss
    // (money will live here), at ~12k commits/s on this hardware.
    await enableWal(db);
    db.exec("PRAGMA synchronous = FULL");
    db.exec("PRAGMA foreign_keys = ON");
    migrate(db, Date.now());
    return new SqliteStore(db);
  } catch (e) {
    db.close();
    throw e;
  }
}

/**
 * Switches the file to WAL. Processes opening a fresh file at the same moment race for the
 * switch, and SQLite answers the loser SQLITE_BUSY without waiting on the busy timeout; so the
 * loser tries again (backing off, within that timeout) until the winner's switch is visible.
 */
async function enableWal(db: DatabaseSync): Promise<void> {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (let waitMs = 1;; waitMs = Math.min(waitMs * 2, 50)) {
    try {
      db.exec("PRAGMA journal_mode = WAL");
      return;
    } catch (e) {
      // node:sqlite in Deno reports only ERR_SQLITE_ERROR; SQLITE_BUSY's text tells it apart.
      const busy = e instanceof Error && e.message === "database is locked";
      if (!busy || Date.now() > deadline) throw e;
    }
    await new Promise((r) => setTimeout(r, waitMs));
  }
}

/**
 * Applies pending migrations in one transaction. `BEGIN IMMEDIATE` takes the write lock before
 * reading the version, so a second process starting at the same time waits, then sees the
 * work done and applies nothing.
 */
function migrate(db: DatabaseSync, nowMs: number): void {
  immediate(db, () => {
    db.exec(SCHEMA_MIGRATIONS_DDL.sqlite);
    const record = db.prepare(
      "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (?, ?, ?)",
    );
    for (const m of pendingMigrations(readVersion(db))) {
      for (const sql of m.sqlite) db.exec(sql);
      record.run(m.version, m.name, nowMs);
    }
  });
}

function readVersion(db: DatabaseSync): number {
  const row = db.prepare("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations").get();
  return Number(row?.v ?? 0);
}

class SqliteStore implements HubStore {
  readonly kind = "sqlite" as const;
  #db: DatabaseSync;
  #insertAgent: StatementSync;
  #getAgent: StatementSync;
  #listAgents: StatementSync;
  #seen: StatementSync;
  #disable: StatementSync;
  #accounts: SqliteAccounts;
  #usage: SqliteUsage;
  #billing: SqliteBilling;
  /** Ledger sync: dispatch records, claims, checkpoints, divergences. */
  readonly ledgerSync: SqliteLedgerSync;
  /** Key spend caps and idempotent top-ups. */
  readonly quotas: SqliteQuotas;
  #settleBatch: SqliteSettleBatch;
  #prices: SqlitePrices;

  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#accounts = new SqliteAccounts(db);
    this.#usage = new SqliteUsage(db);
    // One quota store, also used inside the billing, batch and claim transactions.
    this.quotas = new SqliteQuotas(db);
    this.#billing = new SqliteBilling(db, this.quotas);
    this.ledgerSync = new SqliteLedgerSync(db, this.quotas);
    this.#settleBatch = new SqliteSettleBatch(db, this.quotas);
    this.#prices = new SqlitePrices(db);
    this.#insertAgent = db.prepare(
      `INSERT INTO agents (id, name, public_key, key_id, tier, disabled, created_at_ms)
       VALUES (?, ?, ?, ?, ?, 0, ?)`,
    );
    this.#getAgent = db.prepare(`SELECT ${AGENT_COLUMNS} FROM agents WHERE id = ?`);
    this.#listAgents = db.prepare(`SELECT ${AGENT_COLUMNS} FROM agents ORDER BY created_at_ms, id`);
    this.#seen = db.prepare(
      "UPDATE agents SET last_seen_at_ms = ?, capabilities = COALESCE(?, capabilities) WHERE id = ?",
    );
    this.#disable = db.prepare("UPDATE agents SET disabled = ? WHERE id = ?");
  }

  // Promise.try turns a synchronous throw into a rejection, as the async interface promises.
  createAgent(agent: NewAgent, nowMs: number): Promise<AgentRecord> {
    return Promise.try(() => {
      const a = newAgentRecord(agent, nowMs);
      withConflicts(() =>
        this.#insertAgent.run(a.id, a.name, a.publicKey, a.keyId, a.tier, a.createdAtMs)
      );
      return a;
    });
  }

  getAgent(id: string): Promise<AgentRecord | null> {
    return Promise.try(() => {
      const row = this.#getAgent.get(id);
      return row ? rowToAgent(row as unknown as AgentRow) : null;
    });
  }

  listAgents(): Promise<AgentRecord[]> {
    return Promise.try(() =>
      this.#listAgents.all().map((row) => rowToAgent(row as unknown as AgentRow))
    );
  }

  recordAgentSeen(id: string, seen: { atMs: number; capabilities?: Capabilities }): Promise<void> {
    return Promise.try(() => {
      const caps = seen.capabilities === undefined ? null : JSON.stringify(seen.capabilities);
      this.#seen.run(seen.atMs, caps, id);
    });
  }

  setAgentDisabled(id: string, disabled: boolean): Promise<boolean> {
    return Promise.try(() => Number(this.#disable.run(disabled ? 1 : 0, id).changes) > 0);
  }

  createUser(user: NewUser, nowMs: number): Promise<UserRecord> {
    return Promise.try(() => withConflicts(() => this.#accounts.createUser(user, nowMs)));
  }

  getUser(id: string): Promise<UserRecord | null> {
    return Promise.try(() => this.#accounts.getUser(id));
  }

  creditUser(id: string, amount: string): Promise<string> {
    return Promise.try(() => this.#accounts.creditUser(id, amount));
  }

  setUserLimits(id: string, limits: unknown | null): Promise<boolean> {
    return Promise.try(() => this.#accounts.setUserLimits(id, limits));
  }

  createKey(key: NewKey, nowMs: number): Promise<CreatedKey> {
    return Promise.try(() => withConflicts(() => this.#accounts.createKey(key, nowMs)));
  }

  getKey(id: string): Promise<KeyRecord | null> {
    return Promise.try(() => this.#accounts.getKey(id));
  }

  listKeys(userId: string): Promise<KeyRecord[]> {
    return Promise.try(() => this.#accounts.listKeys(userId));
  }

  findKeyBySecretHash(hashHex: string): Promise<KeyWithUser | null> {
    return Promise.try(() => this.#accounts.findKeyBySecretHash(hashHex));
  }

  addAwsCredential(credential: AwsCredentialRow, nowMs: number): Promise<void> {
    return Promise.try(() =>
      withConflicts(() => this.#accounts.addAwsCredential(credential, nowMs))
    );
  }

  findKeyByAwsAccessKeyId(
    accessKeyId: string,
  ): Promise<{ key: KeyWithUser; secretSealed: string } | null> {
    return Promise.try(() => this.#accounts.findKeyByAwsAccessKeyId(accessKeyId));
  }

  setKeyRouting(id: string, policy: unknown | null, limits: unknown | null): Promise<boolean> {
    return Promise.try(() => this.#accounts.setKeyRouting(id, policy, limits));
  }

  setKeyDisabled(id: string, disabled: boolean): Promise<boolean> {
    return Promise.try(() => this.#accounts.setKeyDisabled(id, disabled));
  }

  recordUsageBatch(items: readonly UsageItem[]): Promise<UsageOutcome[]> {
    return Promise.try(() => this.#usage.recordUsageBatch(items));
  }

  recordUsage(record: UsageRecord, context: UsageContext): Promise<"inserted" | "duplicate"> {
    return Promise.try(() => this.#usage.recordUsage(record, context));
  }

  getUsage(requestId: string): Promise<StoredUsage | null> {
    return Promise.try(() => this.#usage.getUsage(requestId));
  }

  listUsage(filter: UsageFilter): Promise<StoredUsage[]> {
    return Promise.try(() => this.#usage.listUsage(filter));
  }

  reserve(reservation: NewReservation, nowMs: number): Promise<ReservationRecord> {
    return Promise.try(() => this.#billing.reserve(reservation, nowMs));
  }

  getReservation(id: string): Promise<ReservationRecord | null> {
    return Promise.try(() => this.#billing.getReservation(id));
  }

  settle(settlement: Settlement): Promise<LedgerEntry> {
    return Promise.try(() => this.#billing.settle(settlement));
  }

  settleMany(settlements: readonly Settlement[]): Promise<SettleOutcome[]> {
    return Promise.try(() => this.#settleBatch.settleMany(settlements));
  }

  release(id: string, nowMs = Date.now()): Promise<boolean> {
    return Promise.try(() => this.#billing.release(id, nowMs));
  }

  releaseExpired(nowMs: number, limit = 100): Promise<number> {
    return Promise.try(() => this.#billing.releaseExpired(nowMs, limit));
  }

  ledgerHead(agentId: string): Promise<ChainHead | null> {
    return Promise.try(() => this.#billing.ledgerHead(agentId));
  }

  ledgerEntries(agentId: string, fromSeq: number, limit: number): Promise<LedgerEntry[]> {
    return Promise.try(() => this.#billing.ledgerEntries(agentId, fromSeq, limit));
  }

  ledgerHashAt(agentId: string, seq: number): Promise<string | null> {
    return Promise.try(() => this.#billing.ledgerHashAt(agentId, seq));
  }

  agentBalance(agentId: string): Promise<string> {
    return Promise.try(() => this.#billing.agentBalance(agentId));
  }

  postings(requestId: string): Promise<Posting[]> {
    return Promise.try(() => this.#billing.postings(requestId));
  }

  publishPriceVersion(
    p: { version: number; publishedAtMs: number; canonical: string },
  ): Promise<{ outcome: "inserted" | "duplicate"; record: PriceVersionRecord }> {
    return Promise.try(() => this.#prices.publishPriceVersion(p));
  }

  getPriceVersion(version: number): Promise<PriceVersionRecord | null> {
    return Promise.try(() => this.#prices.getPriceVersion(version));
  }

  latestPriceVersion(): Promise<number> {
    return Promise.try(() => this.#prices.latestPriceVersion());
  }

  listPriceVersions(): Promise<PriceVersionSummary[]> {
    return Promise.try(() => this.#prices.listPriceVersions());
  }

  schemaVersion(): Promise<number> {
    return Promise.try(() => readVersion(this.#db));
  }

  close(): Promise<void> {
    return Promise.try(() => {
      if (this.#db.isOpen) this.#db.close();
    });
  }
}

function withConflicts<T>(write: () => T): T {
  try {
    return write();
  } catch (e) {
    throw asConflict(e) ?? e;
  }
}

/** Maps "UNIQUE constraint failed: agents.public_key" to a StoreConflictError. */
function asConflict(e: unknown): StoreConflictError | undefined {
  const column = /^UNIQUE constraint failed: \w+\.(\w+)/.exec((e as Error)?.message ?? "")?.[1];
  const field = column === undefined ? undefined : conflictField(column);
  return field === undefined ? undefined : new StoreConflictError(field, { cause: e });
}
