import assert from "node:assert/strict";
import { appendEntry, type LedgerEntry } from "../../protocol/chain.ts";
import { emptyUsage } from "../../protocol/usage.ts";
import { nextEntry } from "./_billing.ts";

Deno.test("nextEntry (synchronous, for SQLite) chains exactly like protocol/chain.ts appendEntry", async () => {
  let prev: LedgerEntry | null = null;
  for (let i = 0; i < 5; i++) {
    const usage = { ...emptyUsage(), inputTokens: i * 7, audioSeconds: i / 3 };
    const fields = {
      agentId: "agt_1",
      requestId: `req_${i}`,
      vendor: "anthropic",
      model: "claude",
      usage: { extra: 1, ...usage } as typeof usage,
      priceVersion: 2,
      official: `0.${i}1`,
      userCharge: "1.000000000001",
      agentPayout: "0",
      completedAtMs: 1000 + i,
      settledAtMs: 2000 + i,
    };
    const expected: LedgerEntry = await appendEntry(prev, fields);
    assert.deepEqual(nextEntry(prev, fields), expected);
    prev = expected;
  }
});
