/**
 * Test helper (not a test): appends entries to the ledger in `Deno.args[0]` forever and prints
 * each seq after `append` returns, so a parent can SIGKILL it and check nothing reported is lost.
 */
import { emptyUsage } from "../../protocol/usage.ts";
import { AgentLedger } from "./mod.ts";

const ledger = await AgentLedger.open(Deno.args[0]!, { agentId: "agent-crash" });
const enc = new TextEncoder();
for (let i = ledger.head().seq + 1;; i++) {
  const e = await ledger.append({
    requestId: `req-${i}`,
    vendor: "openai",
    model: "gpt-x",
    usage: { ...emptyUsage(), inputTokens: i, outputTokens: 2 * i },
    priceVersion: 1,
    official: "0.000123",
    userCharge: "0.000150",
    agentPayout: "0.0001",
    completedAtMs: 1_700_000_000_000 + i,
  });
  Deno.stdout.writeSync(enc.encode(`${e.seq}\n`));
}
