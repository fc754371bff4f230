// Group commit of the agent ledger (SettlementChecker verifying ahead, AgentLedger.append
// batching the log fdatasync and the SQLite commit): batch semantics, and SIGKILL at random
// moments never loses an acknowledged entry or breaks the chain.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { verifyChain } from "../../protocol/chain.ts";
import { emptyUsage } from "../../protocol/usage.ts";
import { seededRandom } from "../../protocol/prng.ts";
import { runUntilKilled } from "../../tests/support/crash_child.ts";
import { AgentLedger, type AppendFields, LedgerConflictError } from "./mod.ts";

const SEED = Number(Deno.env.get("CRASH_SEED") ?? Date.now() % 1_000_000);
const CHILD = fileURLToPath(new URL("./_batch_crash_child.ts", import.meta.url));

const fields = (requestId: string, inputTokens = 10): AppendFields => ({
  requestId,
  vendor: "openai",
  model: "gpt-x",
  usage: { ...emptyUsage(), inputTokens, outputTokens: 2 },
  priceVersion: 1,
  official: "0.0001",
  userCharge: "0.00012",
  agentPayout: "0.00008",
  completedAtMs: 1_700_000_000_000,
  settledAtMs: 1_700_000_000_100,
});

Deno.test("appends made together share a batch; a conflicting one fails alone", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "ledger-batch-" });
  try {
    const ledger = await AgentLedger.open(dir, { agentId: "agt_batch" });
    const results = await Promise.allSettled([
      ledger.append(fields("a")),
      ledger.append(fields("a", 11)), // conflicts with a, booked earlier in the same batch
      ledger.append(fields("b")),
      ledger.append(fields("a")), // identical replay
      ledger.append({ ...fields("c"), agentId: "agt_other" }),
      ledger.append(fields("d")),
    ]);
    const [a, conflict, b, replay, other, d] = results;
    assert.ok(a?.status === "fulfilled" && b?.status === "fulfilled" && d?.status === "fulfilled");
    assert.deepEqual([a.value.seq, b.value.seq, d.value.seq], [1, 2, 3]);
    assert.deepEqual([b.value.prevHash, d.value.prevHash], [a.value.hash, b.value.hash]);
    assert.ok(conflict?.status === "rejected" && conflict.reason instanceof LedgerConflictError);
    assert.ok(replay?.status === "fulfilled" && replay.value.hash === a.value.hash);
    assert.ok(other?.status === "rejected" && other.reason instanceof TypeError);
    assert.equal(ledger.head().seq, 3);
    await ledger.close();
    const reopened = await AgentLedger.open(dir);
    assert.deepEqual(reopened.repairs, { replayedIntoSqlite: 0, reappendedToLog: 0 });
    assert.deepEqual(reopened.entriesFrom(1).map((e) => e.requestId), ["a", "b", "d"]);
    await reopened.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("SIGKILL during group-committed SETTLED handling never loses an acked entry", async () => {
  const rand = seededRandom(SEED);
  console.log(`batch_crash_test seed ${SEED} (rerun with CRASH_SEED=${SEED})`);
  const dir = Deno.makeTempDirSync({ prefix: "ledger-batch-crash-" });
  try {
    let maxAcked = 0;
    for (let round = 0; round < 5; round++) {
      const minAcked = 1 + Math.floor(rand() * 1500);
      const extraMs = Math.floor(rand() * 30);
      const acked = (await runUntilKilled(CHILD, [dir], {
        minLines: minAcked,
        extraMs,
        timeoutMs: 60_000,
      })).map(Number);
      assert.deepEqual(acked, acked.toSorted((a, b) => a - b), "acks in seq order");
      maxAcked = Math.max(maxAcked, ...acked);
      const ledger = await AgentLedger.open(dir);
      const head = ledger.head();
      const entries = ledger.entriesFrom(1, 1_000_000);
      await ledger.close();
      console.log(
        `round ${round}: killed after ≥${minAcked} acks + ${extraMs} ms; ${acked.length} acked, ` +
          `head seq ${head.seq}, repairs ${JSON.stringify(ledger.repairs)}`,
      );
      const v = await verifyChain(entries);
      assert.ok(v.ok, JSON.stringify(v));
      assert.equal(head.seq, entries.length);
      assert.ok(maxAcked <= head.seq, `acked seq ${maxAcked} lost (head ${head.seq})`);
      const logged = Deno.readTextFileSync(`${dir}/ledger.log`).trim().split("\n");
      assert.equal(logged.length, head.seq, "log and SQLite agree after open");
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
