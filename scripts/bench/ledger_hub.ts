/**
 * Hub side of `deno task bench ledger`: settlements/s through the real store (SQLite file or
 * MariaDB, their production durability settings), in four ways per round:
 *   - `settle, 1 in flight`: `store.settle` one after another — the baseline (one commit each);
 *   - `settle, N in flight`: `store.settle` from N concurrent callers (no batching);
 *   - `batched, 1 in flight`: `SettleBatcher` with a lone caller (what a quiet hub pays);
 *   - `batched, N in flight`: `SettleBatcher` from N concurrent callers (group commit).
 * Holds are placed before each timed run (untimed). Settlements spread over 64 users and 16
 * agents. Latency is per `settle` call, from the call to its durable result.
 */
import mysql from "mysql2/promise";
import type { EntryFields } from "../../protocol/chain.ts";
import { formatUsd, parseUsd } from "../../protocol/money.ts";
import { emptyUsage } from "../../protocol/usage.ts";
import { SettleBatcher } from "../../hub/billing/settle_batcher.ts";
import { type HubStore, openStore, type Settlement } from "../../hub/store/mod.ts";

export const USERS = 64, AGENTS = 16;
const HOLD = parseUsd("0.05"), CHARGE = parseUsd("0.03"), PAYOUT = parseUsd("0.024");

export type Mode = "settle" | "batched";

export interface HubRun {
  mode: Mode;
  inFlight: number;
  settlements: number;
  perSec: number;
  /** Transactions the store committed (settleMany calls for `batched`). */
  transactions: number;
  latenciesMs: Float64Array;
}

/** A store on a fresh database, with users and agents, and what its durability is. */
export interface HubSetup {
  backend: "sqlite" | "mariadb";
  store: HubStore;
  durability: string;
  userIds: string[];
  agentIds: string[];
  dispose(): Promise<void>;
}

export async function sqliteSetup(): Promise<HubSetup> {
  const dir = await Deno.makeTempDir({ prefix: "aq_bench_ledger_" });
  const store = await openStore(`sqlite:${dir}/hub.db`);
  // synchronous is per connection: hub/store/sqlite.ts sets FULL on the store's own connection.
  const durability = "journal_mode=WAL, synchronous=FULL (hub/store/sqlite.ts), one fsync per " +
    "commit";
  return await populate("sqlite", store, durability, async () => {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  });
}

export async function mariadbSetup(dsn: string): Promise<HubSetup> {
  const admin = await mysql.createConnection({ uri: dsn });
  const db = `aq_bench_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const [vars] = await admin.query(
    "SELECT @@version AS v, @@innodb_flush_log_at_trx_commit AS f, @@sync_binlog AS s, " +
      "@@log_bin AS b, @@innodb_doublewrite AS d, @@innodb_flush_method AS m",
  ) as unknown as [Record<string, unknown>[]];
  const v = vars[0]!;
  const durability = `MariaDB ${v.v}: innodb_flush_log_at_trx_commit=${v.f} (redo log ` +
    `flushed at every commit), innodb_doublewrite=${v.d}, flush_method=${v.m}, log_bin=${v.b}, ` +
    `sync_binlog=${v.s}; READ COMMITTED transactions`;
  await admin.query(`CREATE DATABASE ${db}`);
  const url = new URL(dsn);
  url.pathname = `/${db}`;
  let store: HubStore;
  try {
    store = await openStore(url.href);
  } catch (e) {
    await admin.query(`DROP DATABASE IF EXISTS ${db}`);
    await admin.end();
    throw e;
  }
  return await populate("mariadb", store, durability, async () => {
    await store.close();
    await admin.query(`DROP DATABASE IF EXISTS ${db}`);
    await admin.end();
  });
}

async function populate(
  backend: HubSetup["backend"],
  store: HubStore,
  durability: string,
  dispose: () => Promise<void>,
): Promise<HubSetup> {
  const userIds: string[] = [], agentIds: string[] = [];
  try {
    for (let i = 0; i < USERS; i++) {
      const u = await store.createUser({ name: `bench ${i}` }, 1);
      await store.creditUser(u.id, "1000000");
      userIds.push(u.id);
    }
    for (let i = 0; i < AGENTS; i++) {
      const publicKey = `ed25519:${"L".repeat(39)}${String(i).padStart(4, "0")}`;
      const a = await store.createAgent(
        { name: `bench ${i}`, publicKey, keyId: `k${i}`, tier: 2 },
        1,
      );
      agentIds.push(a.id);
    }
  } catch (e) {
    await dispose();
    throw e;
  }
  return { backend, store, durability, userIds, agentIds, dispose };
}

let serial = 0;

function settlementFor(id: string, agentId: string, n: number): Settlement {
  const entry: EntryFields = {
    agentId,
    requestId: `q_${id}`,
    vendor: "openai",
    model: "gpt-4o-mini",
    usage: { ...emptyUsage(), inputTokens: 1000 + (n % 500), outputTokens: 200 },
    priceVersion: 1,
    official: formatUsd(PAYOUT),
    userCharge: formatUsd(CHARGE),
    agentPayout: formatUsd(PAYOUT),
    completedAtMs: 1_700_000_000_000 + n,
    settledAtMs: 1_700_000_000_100 + n,
  };
  return { reservationId: id, entry, userCharge: CHARGE, agentPayout: PAYOUT };
}

/** Places `count` holds (untimed, 32 at a time) and returns their settlements. */
async function prepare(setup: HubSetup, count: number): Promise<Settlement[]> {
  const out: Settlement[] = [];
  for (let i = 0; i < count; i++) {
    const n = serial++;
    out.push(settlementFor(`b${n}`, setup.agentIds[n % AGENTS]!, n));
  }
  let next = 0;
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (next < out.length) {
      const n = next++;
      const userId = setup.userIds[n % USERS]!;
      await setup.store.reserve(
        { reservationId: out[n]!.reservationId, userId, amount: HOLD, expiresAtMs: 1e13 },
        1,
      );
    }
  }));
  return out;
}

/** One timed run: `count` settlements from `inFlight` concurrent callers. */
export async function runHub(
  setup: HubSetup,
  mode: Mode,
  inFlight: number,
  count: number,
): Promise<HubRun> {
  const work = await prepare(setup, count);
  let transactions = 0;
  const store = setup.store;
  const counting = {
    settleMany: (items: readonly Settlement[]) => (transactions++, store.settleMany(items)),
  };
  const batcher = new SettleBatcher(counting);
  const settle = mode === "batched"
    ? (s: Settlement) => batcher.settle(s)
    : (s: Settlement) => (transactions++, store.settle(s));
  const latenciesMs = new Float64Array(count);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < work.length) {
      const n = next++;
      const start = performance.now();
      await settle(work[n]!);
      latenciesMs[n] = performance.now() - start;
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  return { mode, inFlight, settlements: count, perSec: count / seconds, transactions, latenciesMs };
}

/** The chain of every agent is still gapless and verifiable after the runs (a sanity check). */
export async function checkChains(setup: HubSetup): Promise<number> {
  const { verifyChain } = await import("../../protocol/chain.ts");
  let entries = 0;
  for (const agentId of setup.agentIds) {
    const chain = [];
    for (;;) {
      const page = await setup.store.ledgerEntries(agentId, chain.length + 1, 1000);
      if (page.length === 0) break;
      chain.push(...page);
    }
    const v = await verifyChain(chain);
    if (!v.ok) throw new Error(`chain of ${agentId} broken at ${v.firstBadSeq}: ${v.reason}`);
    entries += chain.length;
  }
  return entries;
}
