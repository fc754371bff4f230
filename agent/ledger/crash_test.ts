import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { verifyChain } from "../../protocol/chain.ts";
import { seededRandom } from "../../protocol/prng.ts";
import { runUntilKilled } from "../../tests/support/crash_child.ts";
import { AgentLedger } from "./mod.ts";

const SEED = Number(Deno.env.get("CRASH_SEED") ?? Date.now() % 1_000_000);
const CHILD = fileURLToPath(new URL("./_crash_child.ts", import.meta.url));

Deno.test("SIGKILL at random moments never loses a reported append or breaks the chain", async () => {
  const rand = seededRandom(SEED);
  console.log(`crash_test seed ${SEED} (rerun with CRASH_SEED=${SEED})`);
  const dir = Deno.makeTempDirSync({ prefix: "ledger-crash-" });
  try {
    const allReported = new Set<number>();
    for (let round = 0; round < 6; round++) {
      const minReported = 1 + Math.floor(rand() * 30);
      const extraMs = Math.floor(rand() * 40);
      const reported = (await runUntilKilled(CHILD, [dir], {
        minLines: minReported,
        extraMs,
        timeoutMs: 20_000,
      })).map(Number);
      reported.forEach((s) => allReported.add(s));
      const ledger = await AgentLedger.open(dir);
      const head = ledger.head();
      const entries = ledger.entriesFrom(1, 1_000_000);
      await ledger.close();
      console.log(
        `round ${round}: killed after ≥${minReported} appends + ${extraMs} ms; child reported ` +
          `${reported.length}, head seq ${head.seq}, repairs ${JSON.stringify(ledger.repairs)}`,
      );
      const v = await verifyChain(entries);
      assert.ok(v.ok, JSON.stringify(v));
      assert.deepEqual(entries.map((e) => e.seq), entries.map((_, i) => i + 1));
      assert.equal(head.seq, entries.length);
      for (const seq of allReported) assert.ok(seq <= head.seq, `reported seq ${seq} lost`);
      const logged = Deno.readTextFileSync(`${dir}/ledger.log`).trim().split("\n");
      assert.equal(logged.length, head.seq, "log and SQLite agree after open");
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
