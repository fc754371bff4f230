import assert from "node:assert/strict";
import { emptyUsage } from "../../protocol/usage.ts";
import { createLogger } from "../../runtime/log.ts";
import { type HubStore, openStore, type UsageItem } from "../store/mod.ts";
import { UsageWriter } from "./usage_writer.ts";

const item = (i: number): UsageItem => ({
  record: {
    requestId: `req_${i}`,
    vendor: "openai",
    model: "m",
    promptTokens: i,
    completedAtMs: 1000 + i,
    usage: { ...emptyUsage(), inputTokens: i },
  },
  context: { keyId: "k", userId: "u", agentId: "a" },
});

function quietLog(lines: string[]) {
  return createLogger({ service: "test", write: (l) => lines.push(l) });
}

Deno.test("records are written in batches, one transaction at a time, and flush writes the rest", async () => {
  const store = await openStore("sqlite::memory:");
  const batches: number[] = [];
  let inFlight = 0;
  const spy = Object.create(store) as HubStore;
  spy.recordUsageBatch = async (items) => {
    assert.equal(++inFlight, 1, "never two batches at once");
    batches.push(items.length);
    try {
      return await store.recordUsageBatch(items);
    } finally {
      inFlight--;
    }
  };
  try {
    const writer = new UsageWriter(spy, quietLog([]), { batchMax: 100, maxDelayMs: 5 });
    for (let i = 0; i < 1000; i++) writer.add(item(i));
    await writer.flush();
    assert.equal(batches.reduce((a, b) => a + b, 0), 1000);
    assert.ok(batches.length <= 12, `1000 records in ${batches.length} transactions`);
    assert.ok(batches.every((n) => n <= 100));
    assert.equal((await store.listUsage({ limit: 1000 })).length, 1000);
    writer.add(item(5000));
    await writer.flush();
    assert.equal((await store.getUsage("req_5000"))?.promptTokens, 5000);
  } finally {
    await store.close();
  }
});

Deno.test("a refused record or a failed batch is logged and the writer keeps going", async () => {
  const store = await openStore("sqlite::memory:");
  const lines: string[] = [];
  const writer = new UsageWriter(store, quietLog(lines), { batchMax: 10, maxDelayMs: 1 });
  try {
    writer.add(item(1));
    writer.add({ ...item(1), record: { ...item(1).record, model: "changed" } }); // conflicting replay
    await writer.flush();
    assert.ok(lines.some((l) => l.includes("usage record refused") && l.includes("req_1")));
    await store.close();
    writer.add(item(2)); // the store is gone: the batch fails as a whole
    await writer.flush();
    assert.ok(lines.some((l) => l.includes("cannot write usage records")));
  } finally {
    await store.close();
  }
});
