import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { appendEntry, verifyChain } from "../../protocol/chain.ts";
import { emptyUsage } from "../../protocol/usage.ts";
import { AgentLedger, type AppendFields, LedgerConflictError, LedgerCorruptError } from "./mod.ts";

const clock = { nowMs: () => 1_700_000_999_000, monoMs: () => 0 };

function fields(i: number, over: Partial<AppendFields> = {}): AppendFields {
  return {
    requestId: `req-${i}`,
    vendor: "openai",
    model: "gpt-x",
    usage: { ...emptyUsage(), inputTokens: 10 * i, outputTokens: i },
    priceVersion: 2,
    official: "0.0012",
    userCharge: "0.00144",
    agentPayout: "0.00102",
    completedAtMs: 1_700_000_000_000 + i,
    ...over,
  };
}

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = Deno.makeTempDirSync({ prefix: "ledger-test-" });
  try {
    await fn(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

async function filled(dir: string, n: number) {
  const ledger = await AgentLedger.open(dir, { clock, agentId: "agent-1" });
  for (let i = 1; i <= n; i++) await ledger.append(fields(i));
  await ledger.close();
}

Deno.test("append, head, entriesFrom, hashAt and persistence across reopen", async () => {
  await withDir(async (dir) => {
    const ledger = await AgentLedger.open(dir, { clock, agentId: "agent-1" });
    assert.equal(ledger.head().seq, 0);
    const e1 = await ledger.append(fields(1));
    assert.equal(e1.seq, 1);
    assert.equal(e1.settledAtMs, clock.nowMs());
    // concurrent appends still make a gapless chain
    await Promise.all([2, 3, 4, 5].map((i) => ledger.append(fields(i))));
    const head = ledger.head();
    assert.equal(head.seq, 5);
    assert.equal(head.totals.official, "0.006");
    assert.deepEqual(ledger.entriesFrom(2, 2).map((e) => e.seq), [2, 3]);
    assert.equal(ledger.hashAt(5), head.hash);
    assert.equal(ledger.hashAt(9), null);
    assert.ok((await verifyChain(ledger.entriesFrom(1, 100))).ok);
    await ledger.close();
    const again = await AgentLedger.open(dir, { clock });
    assert.deepEqual(again.head(), head);
    assert.deepEqual(again.repairs, { replayedIntoSqlite: 0, reappendedToLog: 0 });
    await again.close();
    await assert.rejects(() => AgentLedger.open(dir, { agentId: "someone-else" }), TypeError);
  });
});

Deno.test("append is idempotent by requestId; a conflicting replay throws", async () => {
  await withDir(async (dir) => {
    const ledger = await AgentLedger.open(dir, { clock, agentId: "agent-1" });
    const e = await ledger.append(fields(1));
    assert.deepEqual(await ledger.append(fields(1)), e);
    assert.deepEqual(await ledger.append(fields(1, { settledAtMs: e.settledAtMs })), e);
    await assert.rejects(
      () => ledger.append(fields(1, { agentPayout: "0.5" })),
      LedgerConflictError,
    );
    await assert.rejects(
      () => ledger.append(fields(1, { usage: { ...emptyUsage(), inputTokens: 11 } })),
      LedgerConflictError,
    );
    assert.equal(ledger.head().seq, 1);
    await assert.rejects(() => ledger.append(fields(2, { agentId: "other" })), TypeError);
    await ledger.close();
  });
});

Deno.test("disputes are kept in their own table", async () => {
  await withDir(async (dir) => {
    const ledger = await AgentLedger.open(dir, { clock, agentId: "agent-1" });
    ledger.recordDispute({ requestId: "req-9", reason: "payout differs", hubEntry: { seq: 9 } });
    await ledger.close();
    const again = await AgentLedger.open(dir, { clock });
    assert.deepEqual(again.disputes(), [{
      requestId: "req-9",
      reason: "payout differs",
      hubEntry: { seq: 9 },
      recordedAtMs: clock.nowMs(),
    }]);
    await again.close();
  });
});

Deno.test("a partial last log line is truncated", async () => {
  await withDir(async (dir) => {
    await filled(dir, 3);
    const log = join(dir, "ledger.log");
    const good = Deno.readTextFileSync(log);
    Deno.writeTextFileSync(log, '{"agentId":"agent-1","seq":4,"req', { append: true });
    const ledger = await AgentLedger.open(dir, { clock });
    assert.equal(ledger.head().seq, 3);
    assert.equal(Deno.readTextFileSync(log), good);
    assert.equal((await ledger.append(fields(4))).seq, 4);
    await ledger.close();
  });
});

Deno.test("an entry in the log but not in SQLite is replayed into SQLite", async () => {
  await withDir(async (dir) => {
    await filled(dir, 3);
    const db = new DatabaseSync(join(dir, "ledger.db"));
    db.exec("DELETE FROM entries WHERE seq = 3"); // as if the crash hit before the commit
    db.close();
    const ledger = await AgentLedger.open(dir, { clock });
    assert.deepEqual(ledger.repairs, { replayedIntoSqlite: 1, reappendedToLog: 0 });
    assert.equal(ledger.head().seq, 3);
    assert.equal(ledger.entriesFrom(3, 1)[0]?.requestId, "req-3");
    await ledger.close();
  });
});

Deno.test("an entry in SQLite but missing from the log is re-appended to the log", async () => {
  await withDir(async (dir) => {
    await filled(dir, 3);
    const log = join(dir, "ledger.log");
    const full = Deno.readTextFileSync(log);
    const lines = full.split("\n");
    Deno.writeTextFileSync(log, lines.slice(0, 2).join("\n") + "\n");
    const ledger = await AgentLedger.open(dir, { clock });
    assert.deepEqual(ledger.repairs, { replayedIntoSqlite: 0, reappendedToLog: 1 });
    await ledger.close();
    const relog = Deno.readTextFileSync(log).trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(relog.map((e) => e.seq), [1, 2, 3]);
  });
});

Deno.test("a hand-tampered SQLite row is reported with its seq, not repaired", async () => {
  await withDir(async (dir) => {
    await filled(dir, 6);
    const db = new DatabaseSync(join(dir, "ledger.db"));
    db.exec("UPDATE entries SET agent_payout = '9.99' WHERE seq = 4");
    db.close();
    const err = await AgentLedger.open(dir, { clock }).catch((e) => e);
    assert.ok(err instanceof LedgerCorruptError, String(err));
    assert.equal(err.seq, 4);
    assert.equal(err.source, "sqlite");
    // still broken on the next open: nothing was silently fixed
    const again = await AgentLedger.open(dir, { clock }).catch((e) => e);
    assert.equal(again.seq, 4);
  });
});

Deno.test("a tampered log line and a log/SQLite fork are reported with their seq", async () => {
  await withDir(async (dir) => {
    await filled(dir, 5);
    const log = join(dir, "ledger.log");
    const original = Deno.readTextFileSync(log);
    Deno.writeTextFileSync(log, original.replace('"req-2"', '"req-X"'));
    const a = await AgentLedger.open(dir, { clock }).catch((e) => e);
    assert.ok(a instanceof LedgerCorruptError && a.seq === 2 && a.source === "log", String(a));
    // a consistent but different chain in the log from seq 3 on
    const lines = original.trim().split("\n").map((l) => JSON.parse(l));
    let prev = lines[1];
    const forked = [lines[0], lines[1]];
    for (let i = 3; i <= 5; i++) {
      prev = await appendEntry(prev, { ...lines[i - 1], model: "other-model" });
      forked.push(prev);
    }
    Deno.writeTextFileSync(log, forked.map((e) => JSON.stringify(e) + "\n").join(""));
    const b = await AgentLedger.open(dir, { clock }).catch((e) => e);
    assert.ok(b instanceof LedgerCorruptError && b.seq === 3 && b.source === "both", String(b));
  });
});
