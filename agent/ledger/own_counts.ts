/**
 * The agent's own counts, durable: every completion it measured (request id, vendor, model,
 * usage, prompt tokens, service tier, completion time, whether RESPONSE_END could be sent) is
 * kept in `ledger.db` (table own_usage) until its settlement is stored — the ledger deletes the
 * row in the same commit that appends the entry (store.ts `insert`). After a crash or a tunnel
 * drop the rows still pending are what the agent verifies catch-up settlements against and what
 * it CLAIMs (sync.ts). Also the agent's checkpoint notes (table checkpoints).
 *
 * Durability: this is a second connection to the same WAL database with synchronous=NORMAL.
 * In WAL mode a NORMAL commit is written to the WAL file (the OS page cache) before the call
 * returns but not fsync'd, so it survives a killed process (kill -9, a crash, OOM): the kernel
 * still writes the page cache out. Only an OS crash or power loss can lose the last few counts,
 * and then the hub's dispatch record still settles what it saw complete; the ledger entries
 * themselves stay synchronous=FULL (plus the fsync'd log) on the main connection. NORMAL saves
 * an fsync per request on the hot path.
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { emptyUsage, type Usage } from "../../protocol/usage.ts";
import type { OwnCounts, OwnUsage } from "./verify.ts";

export type CountStatus = "pending" | "claimed" | "rejected";

export interface PendingCount extends OwnUsage {
  requestId: string;
  endSent: boolean;
  status: CountStatus;
  reason: string | null;
}

export interface StoredCheckpoint {
  seq: number;
  note: string;
  hubSigned: boolean;
  createdAtMs: number;
}

export class OwnCountStore implements OwnCounts {
  readonly #db: DatabaseSync;

  /** `path` is the ledger's `ledger.db`, already created by `AgentLedger.open`. */
  constructor(path: string) {
    this.#db = new DatabaseSync(path, { timeout: 5000 });
    this.#db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
  }

  /** Records (or replaces) a measured completion; `endSent`: RESPONSE_END went to an open tunnel. */
  put(requestId: string, u: OwnUsage, endSent = true): void {
    this.#db.prepare(
      `INSERT INTO own_usage (request_id, vendor, model, usage, prompt_tokens, service_tier,
         completed_at_ms, end_sent, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending')
       ON CONFLICT (request_id) DO UPDATE SET vendor = excluded.vendor, model = excluded.model,
         usage = excluded.usage, prompt_tokens = excluded.prompt_tokens,
         service_tier = excluded.service_tier, completed_at_ms = excluded.completed_at_ms,
         end_sent = excluded.end_sent`,
    ).run(
      requestId,
      u.vendor,
      u.model ?? null,
      JSON.stringify(u.usage),
      u.promptTokens,
      u.serviceTier ?? null,
      u.atMs,
      endSent ? 1 : 0,
    );
  }

  get(requestId: string): OwnUsage | undefined {
    const row = this.#db.prepare("SELECT * FROM own_usage WHERE request_id = ?").get(requestId);
    return row ? fromRow(row).usage : undefined;
  }

  delete(requestId: string): void {
    this.#db.prepare("DELETE FROM own_usage WHERE request_id = ?").run(requestId);
  }

  /** Counts not settled yet, oldest first. */
  pending(limit = 1000): PendingCount[] {
    return this.#db.prepare(
      "SELECT * FROM own_usage ORDER BY completed_at_ms, request_id LIMIT ?",
    ).all(limit).map((r) => fromRow(r).pending);
  }

  setStatus(requestId: string, status: CountStatus, reason: string | null = null): void {
    this.#db.prepare("UPDATE own_usage SET status = ?, reason = ? WHERE request_id = ?")
      .run(status, reason, requestId);
  }

  get size(): number {
    return Number(this.#db.prepare("SELECT COUNT(*) AS n FROM own_usage").get()!.n);
  }

  saveCheckpoint(c: StoredCheckpoint): void {
    this.#db.prepare(
      `INSERT INTO checkpoints (seq, note, hub_signed, created_at_ms) VALUES (?, ?, ?, ?)
       ON CONFLICT (seq) DO UPDATE SET note = excluded.note, hub_signed = excluded.hub_signed`,
    ).run(c.seq, c.note, c.hubSigned ? 1 : 0, c.createdAtMs);
  }

  checkpoints(): StoredCheckpoint[] {
    return this.#db.prepare("SELECT * FROM checkpoints ORDER BY seq").all().map((r) => ({
      seq: Number(r.seq),
      note: String(r.note),
      hubSigned: Number(r.hub_signed) === 1,
      createdAtMs: Number(r.created_at_ms),
    }));
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }
}

function fromRow(r: Record<string, unknown>): { usage: OwnUsage; pending: PendingCount } {
  const usage: OwnUsage = {
    vendor: String(r.vendor),
    usage: { ...emptyUsage(), ...JSON.parse(String(r.usage)) as Usage },
    promptTokens: Number(r.prompt_tokens),
    model: r.model === null ? undefined : String(r.model),
    serviceTier: r.service_tier === null ? undefined : String(r.service_tier),
    atMs: Number(r.completed_at_ms),
    claimed: r.status === "claimed",
  };
  return {
    usage,
    pending: {
      ...usage,
      requestId: String(r.request_id),
      endSent: Number(r.end_sent) === 1,
      status: r.status as CountStatus,
      reason: r.reason === null ? null : String(r.reason),
    },
  };
}
