/**
 * The agent's durable ledger (DESIGN §4; tunnel-trust §3.5 item 8).
 *
 * Durability: each append first writes the entry as one JSON line to `ledger.log` and
 * fdatasyncs it, then inserts it into `ledger.db` (SQLite WAL, synchronous=FULL, so the commit
 * is fsync'd too) — appends made together share one fdatasync and one commit (group commit), and
 * each resolves only once both are done. `open` verifies both copies as hash chains and reconciles a torn tail:
 * a partial last log line is truncated, entries in the log but not in SQLite are replayed
 * into SQLite, entries in SQLite but not in the log are re-appended to the log. Anything else
 * (a bad hash, a broken link, the copies disagreeing on a shared seq) throws
 * `LedgerCorruptError` naming the first bad seq; nothing is repaired silently.
 */
import { join } from "node:path";
import {
  addTotals,
  appendEntry,
  type ChainHead,
  type EntryFields,
  firstDivergence,
  GENESIS_HASH,
  type LedgerEntry,
  verifyChain,
} from "../../protocol/chain.ts";
import { type Clock, systemClock } from "../../protocol/clock.ts";
import { USAGE_FIELDS } from "../../protocol/usage.ts";
import { GroupCommit } from "../../runtime/group_commit.ts";
import { type DisputeRecord, LogCorruptError, LogFile, SqlStore } from "./store.ts";

export type { DisputeRecord } from "./store.ts";

/** Fields for `append`: agentId defaults to the ledger's, settledAtMs to the clock. */
export type AppendFields = Omit<EntryFields, "agentId" | "settledAtMs"> & {
  agentId?: string;
  settledAtMs?: number;
};

export class LedgerCorruptError extends Error {
  constructor(readonly seq: number, readonly source: "sqlite" | "log" | "both", reason: string) {
    super(`Ledger chain break at seq ${seq} (${source}): ${reason}`);
    this.name = "LedgerCorruptError";
  }
}

export class LedgerConflictError extends Error {
  constructor(readonly requestId: string, readonly existing: LedgerEntry) {
    super(`Request ${requestId} is already settled as seq ${existing.seq} with different content`);
    this.name = "LedgerConflictError";
  }
}

export interface OpenOptions {
  clock?: Clock;
  /** The agent this ledger belongs to; otherwise taken from the chain or the first append. */
  agentId?: string;
}

/** What `open` repaired, for logs. */
export interface Repairs {
  replayedIntoSqlite: number;
  reappendedToLog: number;
}

export class AgentLedger {
  #last: LedgerEntry | null;
  #head: ChainHead;
  readonly #appends = new GroupCommit<AppendFields, LedgerEntry>(
    (batch) => this.#appendBatch(batch),
    { batchMax: 256, gather: true }, // the SETTLED checker feeds it one frame at a time
  );
  #closed = false;

  private constructor(
    private readonly sql: SqlStore,
    private readonly log: LogFile,
    private readonly clock: Clock,
    head: ChainHead,
    last: LedgerEntry | null,
    readonly repairs: Repairs,
    /** `ledger.db`, for the own-count store (own_counts.ts) that shares it. */
    readonly dbPath: string,
  ) {
    this.#head = head;
    this.#last = last;
  }

  static async open(dir: string, opts: OpenOptions = {}): Promise<AgentLedger> {
    Deno.mkdirSync(dir, { recursive: true });
    const sql = new SqlStore(join(dir, "ledger.db"));
    const log = new LogFile(join(dir, "ledger.log"));
    try {
      const repairs = { replayedIntoSqlite: 0, reappendedToLog: 0 };
      const { head, last } = await reconcile(sql, log, repairs);
      if (opts.agentId && head.seq > 0 && head.agentId !== opts.agentId) {
        throw new TypeError(`Ledger in ${dir} belongs to ${head.agentId}, not ${opts.agentId}`);
      }
      if (head.seq === 0) head.agentId = opts.agentId ?? "";
      const dbPath = join(dir, "ledger.db");
      return new AgentLedger(sql, log, opts.clock ?? systemClock, head, last, repairs, dbPath);
    } catch (err) {
      sql.close(), log.close();
      throw err;
    }
  }

  /**
   * Appends the settlement of `fields.requestId`; a replay with identical content returns it.
   * Group commit: appends made while a write is in progress are written together (one log
   * fdatasync, one SQLite commit); each resolves only once its entry is durable in both.
   */
  append(fields: AppendFields): Promise<LedgerEntry> {
    return this.#appends.add(fields);
  }

  /** One batch of appends, in order; a refused one (conflict, wrong agent) only fails itself. */
  async #appendBatch(batch: AppendFields[]): Promise<(LedgerEntry | Error)[]> {
    if (this.#closed) throw new Error("Ledger is closed");
    let last = this.#last, head = this.#head;
    const fresh = new Map<string, LedgerEntry>(); // booked earlier in this batch
    const out: (LedgerEntry | Error)[] = [];
    for (const fields of batch) {
      try {
        const agentId = fields.agentId ?? head.agentId;
        if (!agentId) throw new TypeError("append: agentId is required for the first entry");
        if (head.agentId && agentId !== head.agentId) {
          throw new TypeError(`append: agentId ${agentId} is not this ledger's (${head.agentId})`);
        }
        const existing = fresh.get(fields.requestId) ?? this.sql.byRequest(fields.requestId);
        if (existing) {
          if (!sameContent(existing, fields)) {
            throw new LedgerConflictError(fields.requestId, existing);
          }
          out.push(existing);
          continue;
        }
        const settledAtMs = fields.settledAtMs ?? this.clock.nowMs();
        const entry = await appendEntry(last, { ...fields, agentId, settledAtMs });
        fresh.set(entry.requestId, entry);
        last = entry;
        head = { agentId, seq: entry.seq, hash: entry.hash, totals: addTotals(head.totals, entry) };
        out.push(entry);
      } catch (err) {
        out.push(err instanceof Error ? err : new Error(String(err)));
      }
    }
    const entries = [...fresh.values()];
    if (entries.length === 0) return out;
    this.log.append(entries); // durable first: the log is the write-ahead copy
    try {
      this.sql.insert(entries);
    } catch (err) {
      this.#closed = true; // log is now ahead of SQLite: only `open` may reconcile them
      throw err;
    }
    this.#last = last;
    this.#head = head;
    return out;
  }

  head(): ChainHead {
    return structuredClone(this.#head);
  }

  entriesFrom(seq: number, limit = 1000): LedgerEntry[] {
    return this.sql.from(Math.max(1, seq), limit);
  }

  hashAt(seq: number): string | null {
    if (seq === 0) return GENESIS_HASH;
    return this.sql.bySeq(seq)?.hash ?? null;
  }

  entryFor(requestId: string): LedgerEntry | null {
    return this.sql.byRequest(requestId);
  }

  /** Keeps a pending dispute (e.g. the hub's entry disagrees with ours) for later resolution. */
  recordDispute(d: { requestId: string; reason: string; hubEntry?: unknown }): void {
    this.sql.addDispute({ ...d, hubEntry: d.hubEntry ?? null, recordedAtMs: this.clock.nowMs() });
  }

  disputes(): DisputeRecord[] {
    return this.sql.disputes();
  }

  async close(): Promise<void> {
    await this.#appends.idle();
    this.#closed = true;
    this.sql.close();
    this.log.close();
  }
}

function sameContent(e: LedgerEntry, f: AppendFields): boolean {
  const plain: (keyof AppendFields & keyof LedgerEntry)[] = [
    "requestId",
    "vendor",
    "model",
    "priceVersion",
    "official",
    "userCharge",
    "agentPayout",
    "completedAtMs",
  ];
  if (f.agentId !== undefined && f.agentId !== e.agentId) return false;
  if (f.settledAtMs !== undefined && f.settledAtMs !== e.settledAtMs) return false;
  return plain.every((k) => e[k] === f[k]) && USAGE_FIELDS.every((u) => e.usage[u] === f.usage[u]);
}

async function reconcile(sql: SqlStore, log: LogFile, repairs: Repairs) {
  let logged: LedgerEntry[];
  try {
    logged = log.read();
  } catch (err) {
    if (err instanceof LogCorruptError) throw new LedgerCorruptError(err.line, "log", err.message);
    throw err;
  }
  const stored = sql.all();
  const vs = await verifyChain(stored);
  if (!vs.ok) throw new LedgerCorruptError(vs.firstBadSeq, "sqlite", vs.reason);
  const vl = await verifyChain(logged);
  if (!vl.ok) throw new LedgerCorruptError(vl.firstBadSeq, "log", vl.reason);
  const shared = Math.min(stored.length, logged.length);
  if (shared > 0 && stored[0]!.agentId !== logged[0]!.agentId) {
    throw new LedgerCorruptError(1, "both", "log and SQLite name different agents");
  }
  const at = (list: LedgerEntry[]) => (seq: number) => Promise.resolve(list[seq - 1]?.hash ?? null);
  const diverged = await firstDivergence(at(logged), at(stored), shared);
  if (diverged !== null) {
    throw new LedgerCorruptError(diverged, "both", "log and SQLite hold different entries");
  }
  if (logged.length > shared) {
    sql.insert(logged.slice(shared));
    repairs.replayedIntoSqlite = logged.length - shared;
  }
  if (stored.length > shared) {
    log.append(stored.slice(shared));
    repairs.reappendedToLog = stored.length - shared;
  }
  const vhead = logged.length >= stored.length ? vl.head : vs.head;
  const last = (logged.length >= stored.length ? logged : stored).at(-1) ?? null;
  return { head: vhead, last };
}
