/**
 * The two durable copies of the agent's ledger: a SQLite database (WAL, synchronous=FULL) and
 * an append-only JSON-lines log, fsync'd (fdatasync) per append. The log is written first, so
 * after a crash it is at most one entry ahead of SQLite; `mod.ts` reconciles the two on open.
 */
import { DatabaseSync } from "node:sqlite";
import type { LedgerEntry } from "../../protocol/chain.ts";
import type { Usage } from "../../protocol/usage.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS entries (
  seq INTEGER NOT NULL UNIQUE, request_id TEXT NOT NULL UNIQUE, agent_id TEXT NOT NULL,
  vendor TEXT NOT NULL, model TEXT NOT NULL, usage TEXT NOT NULL, price_version INTEGER NOT NULL,
  official TEXT NOT NULL, user_charge TEXT NOT NULL, agent_payout TEXT NOT NULL,
  completed_at_ms INTEGER NOT NULL, settled_at_ms INTEGER NOT NULL,
  prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS disputes (
  id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL, reason TEXT NOT NULL,
  hub_entry TEXT, recorded_at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS own_usage (
  request_id TEXT PRIMARY KEY, vendor TEXT NOT NULL, model TEXT, usage TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL, service_tier TEXT, completed_at_ms INTEGER NOT NULL,
  end_sent INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'pending', reason TEXT);
CREATE TABLE IF NOT EXISTS checkpoints (
  seq INTEGER PRIMARY KEY, note TEXT NOT NULL, hub_signed INTEGER NOT NULL,
  created_at_ms INTEGER NOT NULL);`;

const COLUMNS = "seq, request_id, agent_id, vendor, model, usage, price_version, official, " +
  "user_charge, agent_payout, completed_at_ms, settled_at_ms, prev_hash, hash";

function toRow(e: LedgerEntry): (string | number)[] {
  return [
    e.seq,
    e.requestId,
    e.agentId,
    e.vendor,
    e.model,
    JSON.stringify(e.usage),
    e.priceVersion,
    e.official,
    e.userCharge,
    e.agentPayout,
    e.completedAtMs,
    e.settledAtMs,
    e.prevHash,
    e.hash,
  ];
}

/** A `ledger` row as node:sqlite returns it. */
interface LedgerRow {
  agent_id: string;
  seq: number;
  request_id: string;
  vendor: string;
  model: string;
  usage: string;
  price_version: number;
  official: string;
  user_charge: string;
  agent_payout: string;
  completed_at_ms: number;
  settled_at_ms: number;
  prev_hash: string;
  hash: string;
}

/** Rows come back untyped from node:sqlite; this is the one place that reads their columns. */
function fromRow(row: Record<string, unknown>): LedgerEntry {
  const r = row as unknown as LedgerRow;
  return {
    agentId: r.agent_id,
    seq: r.seq,
    requestId: r.request_id,
    vendor: r.vendor,
    model: r.model,
    usage: JSON.parse(r.usage) as Usage,
    priceVersion: r.price_version,
    official: r.official,
    userCharge: r.user_charge,
    agentPayout: r.agent_payout,
    completedAtMs: r.completed_at_ms,
    settledAtMs: r.settled_at_ms,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

export interface DisputeRecord {
  requestId: string;
  reason: string;
  hubEntry: unknown;
  recordedAtMs: number;
}

export class SqlStore {
  readonly db: DatabaseSync;
  #insert;
  constructor(path: string) {
    this.db = new DatabaseSync(path, { timeout: 5000 });
    this.db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
    this.db.exec(SCHEMA);
    this.#insert = this.db.prepare(
      `INSERT INTO entries (${COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
    );
  }
  /**
   * Inserts entries in one transaction (one fsync'd commit); the agent's own counts of those
   * requests (own_usage) are deleted in the same commit, so a count is pending exactly until
   * its settlement is stored.
   */
  insert(entries: readonly LedgerEntry[]): void {
    const settled = this.db.prepare("DELETE FROM own_usage WHERE request_id = ?");
    this.db.exec("BEGIN IMMEDIATE");
    try {
      for (const e of entries) this.#insert.run(...toRow(e)), settled.run(e.requestId);
      this.db.exec("COMMIT");
    } catch (err) {
      this.db.exec("ROLLBACK");
      throw err;
    }
  }
  all(): LedgerEntry[] {
    return this.db.prepare(`SELECT ${COLUMNS} FROM entries ORDER BY seq`).all().map(fromRow);
  }
  from(seq: number, limit: number): LedgerEntry[] {
    const sql = `SELECT ${COLUMNS} FROM entries WHERE seq >= ? ORDER BY seq LIMIT ?`;
    return this.db.prepare(sql).all(seq, limit).map(fromRow);
  }
  bySeq(seq: number): LedgerEntry | null {
    const row = this.db.prepare(`SELECT ${COLUMNS} FROM entries WHERE seq = ?`).get(seq);
    return row ? fromRow(row) : null;
  }
  byRequest(requestId: string): LedgerEntry | null {
    const sql = `SELECT ${COLUMNS} FROM entries WHERE request_id = ?`;
    const row = this.db.prepare(sql).get(requestId);
    return row ? fromRow(row) : null;
  }
  addDispute(d: DisputeRecord): void {
    this.db.prepare(
      "INSERT INTO disputes (request_id, reason, hub_entry, recorded_at_ms) VALUES (?,?,?,?)",
    ).run(d.requestId, d.reason, JSON.stringify(d.hubEntry ?? null), d.recordedAtMs);
  }
  disputes(): DisputeRecord[] {
    const sql = "SELECT request_id, reason, hub_entry, recorded_at_ms FROM disputes ORDER BY id";
    return this.db.prepare(sql).all().map((r) => ({
      requestId: r.request_id as string,
      reason: r.reason as string,
      hubEntry: JSON.parse(r.hub_entry as string),
      recordedAtMs: r.recorded_at_ms as number,
    }));
  }
  close(): void {
    if (this.db.isOpen) this.db.close();
  }
}

/** Append-only JSON-lines log. `read` truncates a torn (partial) last line. */
export class LogFile {
  #file: Deno.FsFile;
  constructor(readonly path: string) {
    this.#file = Deno.openSync(path, { read: true, append: true, create: true });
  }
  /** Parsed lines; throws `LogCorruptError` for an unparseable line that is not the last. */
  read(): LedgerEntry[] {
    const bytes = Deno.readFileSync(this.path);
    let end = bytes.lastIndexOf(0x0a) + 1; // drop a partial last line (no "\n" yet)
    const lines = new TextDecoder().decode(bytes.subarray(0, end)).split("\n").slice(0, -1);
    const out: LedgerEntry[] = [];
    for (const [i, line] of lines.entries()) {
      try {
        out.push(JSON.parse(line) as LedgerEntry);
      } catch {
        if (i < lines.length - 1) throw new LogCorruptError(i + 1);
        end -= new TextEncoder().encode(line).length + 1; // torn but newline-terminated
      }
    }
    if (end !== bytes.length) {
      Deno.truncateSync(this.path, end);
      this.#file.syncSync();
    }
    return out;
  }
  append(entries: readonly LedgerEntry[]): void {
    if (entries.length === 0) return;
    const data = new TextEncoder().encode(entries.map((e) => JSON.stringify(e) + "\n").join(""));
    let at = 0;
    while (at < data.length) at += this.#file.writeSync(data.subarray(at));
    this.#file.syncDataSync();
  }
  close(): void {
    try {
      this.#file.close();
    } catch { /* already closed */ }
  }
}

export class LogCorruptError extends Error {
  constructor(readonly line: number) {
    super(`Ledger log line ${line} is not valid JSON`);
  }
}
