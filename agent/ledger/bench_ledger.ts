/**
 * Appends/s of the agent ledger with its real durability settings (log fdatasync per append,
 * SQLite WAL synchronous=FULL). Run: deno run -A agent/ledger/bench_ledger.ts [count]
 */
import { emptyUsage } from "../../protocol/usage.ts";
import { AgentLedger } from "./mod.ts";

const count = Number(Deno.args[0] ?? 2000);
const dir = Deno.makeTempDirSync({ prefix: "ledger-bench-" });
try {
  const ledger = await AgentLedger.open(dir, { agentId: "agent-bench" });
  const t0 = performance.now();
  for (let i = 1; i <= count; i++) {
    await ledger.append({
      requestId: `req-${i}`,
      vendor: "anthropic",
      model: "claude-x",
      usage: { ...emptyUsage(), inputTokens: 1000 + i, outputTokens: 200 },
      priceVersion: 3,
      official: "0.004200",
      userCharge: "0.005040",
      agentPayout: "0.003570",
      completedAtMs: 1_700_000_000_000 + i,
    });
  }
  const ms = performance.now() - t0;
  await ledger.close();
  const t1 = performance.now();
  const reopened = await AgentLedger.open(dir);
  const verifyMs = performance.now() - t1;
  console.log(
    `${count} appends in ${ms.toFixed(0)} ms: ${(count / ms * 1000).toFixed(0)} appends/s ` +
      `(fdatasync log + SQLite WAL synchronous=FULL); open+verify ${verifyMs.toFixed(0)} ms, ` +
      `head seq ${reopened.head().seq}`,
  );
  await reopened.close();
} finally {
  Deno.removeSync(dir, { recursive: true });
}
