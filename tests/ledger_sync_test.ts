/**
 * Ledger sync: after each settlement the hub sends SETTLED; the agent re-prices its OWN count,
 * checks the entry extends its own chain, appends it and acknowledges. End to end with real
 * processes the agent's ledger equals the hub's entry by entry. The agent-side verifier is
 * unit-tested with tampered entries (a hub that lies cannot be staged without test hooks).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { appendEntry, type ChainHead, GENESIS_HASH, type LedgerEntry } from "../protocol/chain.ts";
import type { ControlFrame, Frame } from "../protocol/frames.ts";
import { formatUsd } from "../protocol/money.ts";
import { charges, costOf, findPrice } from "../protocol/pricing.ts";
import { DEFAULT_PRICE_TABLE } from "../protocol/prices_default.ts";
import { emptyUsage } from "../protocol/usage.ts";
import { createLogger } from "../runtime/log.ts";
import { AgentLedger } from "../agent/ledger/mod.ts";
import {
  type OwnUsage,
  SettlementChecker,
  UsageBook,
  verifySettlement,
} from "../agent/ledger/verify.ts";
import { admin } from "./support/cluster.ts";
import { waitFor } from "./support/process.ts";
import { startStack } from "./support/stack.ts";

/** Priced in the default table (openai/gpt-5.5). */
const MODEL = "gpt-5.5";

Deno.test("ledger sync: the agent's own ledger equals the hub's, entry by entry", async () => {
  const stack = await startStack({ credit: "1.00", hubEnv: { HUB_UNPRICED_MODELS: "refuse" } });
  try {
    const chat = async (body: Record<string, unknown>) => {
      const res = await fetch(`${stack.baseURL}/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${stack.key}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      assert.equal(res.status, 200, text);
      return res.headers.get("x-request-id")!;
    };
    const messages = [{ role: "user", content: "count me twice" }];
    const ids: string[] = [];
    ids.push(await chat({ model: MODEL, messages, max_tokens: 40 }));
    ids.push(
      await chat({
        model: MODEL,
        messages,
        max_tokens: 41,
        stream: true,
        stream_options: { include_usage: true },
      }),
    );
    ids.push(await chat({ model: MODEL, messages, max_tokens: 42, stream: true }));
    ids.push(await chat({ model: MODEL, messages: [{ role: "user", content: "a b c d e f" }] }));
    // Two at once: settlements may reach the agent in either order.
    ids.push(
      ...await Promise.all([
        chat({ model: MODEL, messages, max_tokens: 43 }),
        chat({ model: MODEL, messages, max_tokens: 44, stream: true }),
      ]),
    );

    const hubLedger = async () =>
      (await admin(stack.hub, "GET", `/ledger?agentId=${stack.agentId}&limit=1000`)).json as {
        head: ChainHead;
        entries: LedgerEntry[];
      };
    const hub = await waitFor(
      async () => {
        const l = await hubLedger();
        return ids.every((id) => l.entries.some((e) => e.requestId === id)) ? l : undefined;
      },
      "hub settled every request",
      10_000,
    );
    assert.equal(hub.entries.length, ids.length);

    // The agent appends (durably) before it acknowledges; wait for its log to catch up.
    const logPath = join(stack.agentDir, "ledger", "ledger.log");
    await waitFor(
      async () => {
        const text = await Deno.readTextFile(logPath).catch(() => "");
        return text.split("\n").filter(Boolean).length >= ids.length || undefined;
      },
      `agent ledger has ${ids.length} entries\n${stack.agent.dump()}`,
      10_000,
    );
    await stack.agent.stop();

    const ledger = await AgentLedger.open(join(stack.agentDir, "ledger"));
    try {
      const mine = ledger.entriesFrom(1);
      assert.deepEqual(mine, hub.entries, "same entries, same order, same hashes");
      assert.deepEqual(ledger.head(), hub.head, "same head");
      assert.deepEqual(ledger.disputes(), []);
    } finally {
      await ledger.close();
    }
    const agent = await admin(stack.hub, "GET", `/agents/${stack.agentId}`);
    assert.equal(agent.json.disputes, 0);
    assert.ok(
      !stack.agent.lines.some((l) => String(l.msg ?? "").includes("disput")),
      stack.agent.dump(),
    );
  } finally {
    await stack.stop();
  }
});

// ---------------------------------------------------------------------------------------------
// The agent-side verifier, with entries a dishonest or buggy hub might send
// ---------------------------------------------------------------------------------------------

const AGENT = "agt_0123456789abcdef0123";
const NOW = Date.UTC(2026, 11, 1, 12);
const own: OwnUsage = {
  vendor: "openai",
  usage: { ...emptyUsage(), inputTokens: 1200, cachedInputTokens: 300, outputTokens: 456 },
  promptTokens: 1500,
  model: MODEL,
  atMs: NOW,
};

/** The SETTLED an honest hub would send after `prev`, for `own` usage. */
async function honest(prev: LedgerEntry | null, requestId: string): Promise<Frame<"settled">> {
  const price = findPrice(DEFAULT_PRICE_TABLE, "openai", MODEL)!.price;
  const official = costOf(own.usage, { promptTokens: own.promptTokens, completedAtMs: NOW }, price);
  const split = charges({ official, zoneMultiplier: "1.25", payoutRatio: "0.80" });
  const entry = await appendEntry(prev, {
    agentId: AGENT,
    requestId,
    vendor: "openai",
    model: MODEL,
    usage: own.usage,
    priceVersion: 1,
    official: formatUsd(official),
    userCharge: formatUsd(split.userCharge),
    agentPayout: formatUsd(split.agentPayout),
    completedAtMs: NOW,
    settledAtMs: NOW + 5,
  });
  return { type: "settled", ...entry, zoneMultiplier: "1.25", payoutRatio: "0.80" };
}

const genesis: ChainHead = {
  agentId: AGENT,
  seq: 0,
  hash: GENESIS_HASH,
  totals: { official: "0.00", userCharge: "0.00", agentPayout: "0.00" },
};

Deno.test("verifySettlement: an honest entry passes; tampered ones get the right reason", async () => {
  const frame = await honest(null, "req_1");
  const ok = await verifySettlement(frame, own, genesis, AGENT);
  assert.ok(ok.ok, JSON.stringify(ok));

  const reasonFor = async (f: Frame<"settled">, usage: OwnUsage | null = own) => {
    const v = await verifySettlement(f, usage ?? undefined, genesis, AGENT);
    assert.ok(!v.ok, "must be disputed");
    return v.reason;
  };
  // amounts
  assert.match(await reasonFor({ ...frame, userCharge: "9.99" }), /^userCharge 9\.99 is above/);
  // A lower user charge (the hub capped it at the hold) is the hub's business: only the hash,
  // computed here over the original charge, then disagrees.
  assert.doesNotMatch(await reasonFor({ ...frame, userCharge: "0.00" }), /^userCharge/);
  assert.match(await reasonFor({ ...frame, agentPayout: "0.00" }), /^agentPayout 0\.00 differs/);
  assert.match(await reasonFor({ ...frame, official: "0.01" }), /^official 0\.01 differs/);
  // a payout ratio that does not match the payout the hub wrote
  assert.match(await reasonFor({ ...frame, payoutRatio: "0.50" }), /^agentPayout .* differs/);
  // usage
  assert.match(
    await reasonFor({ ...frame, usage: { ...frame.usage, outputTokens: 457 } }),
    /^usage\.outputTokens 457 differs from the agent's 456/,
  );
  assert.match(await reasonFor(frame, null), /no usage measured/);
  // chain position
  assert.match(await reasonFor({ ...frame, prevHash: "f".repeat(64) }), /prevHash/);
  assert.match(await reasonFor({ ...frame, seq: 2 }), /^seq 2 is not head \+ 1 \(1\)/);
  // contents that do not hash to the claimed hash
  assert.match(await reasonFor({ ...frame, settledAtMs: NOW + 6 }), /^hash does not match/);
  // prices
  assert.match(await reasonFor({ ...frame, priceVersion: 2 }), /^unknown price version$/);
  // identity
  assert.match(await reasonFor({ ...frame, agentId: "agt_other" }), /is not this agent/);
});

Deno.test("SettlementChecker: appends and acks in seq order, disputes a tampered entry", async () => {
  const dir = await Deno.makeTempDir();
  const ledger = await AgentLedger.open(dir, { agentId: AGENT });
  const book = new UsageBook({ nowMs: () => NOW, monoMs: () => 0 });
  const checker = new SettlementChecker({
    ledger,
    book,
    agentId: AGENT,
    log: createLogger({ service: "test", level: "error", write: () => {} }),
  });
  try {
    const f1 = await honest(null, "req_1");
    const f2 = await honest({ ...f1 } as LedgerEntry, "req_2");
    const f3 = await honest({ ...f2 } as LedgerEntry, "req_3");
    for (const id of ["req_1", "req_2", "req_3"]) book.put(id, own);
    const replies: ControlFrame[] = [];
    const reply = (f: ControlFrame) => replies.push(f);
    // seq 2 first: it waits for seq 1, then both are appended in order.
    await checker.onSettled(f2, reply);
    assert.equal(replies.length, 0);
    await checker.onSettled(f1, reply);
    await waitFor(() => Promise.resolve(replies.length === 2 || undefined), "two acks", 2_000);
    assert.deepEqual(replies.map((r) => [r.type, (r as Frame<"settle_ack">).seq]), [
      ["settle_ack", 1],
      ["settle_ack", 2],
    ]);
    assert.equal(ledger.head().hash, f2.hash);
    // a replay of an acknowledged entry is acknowledged again, nothing appended
    await checker.onSettled(f1, reply);
    assert.equal(replies.at(-1)!.type, "settle_ack");
    assert.equal(ledger.head().seq, 2);
    // tampered amount → dispute kept in the ledger, nothing appended
    await checker.onSettled({ ...f3, agentPayout: "1.00" }, reply);
    const last = replies.at(-1) as Frame<"dispute">;
    assert.equal(last.type, "dispute");
    assert.equal(last.requestId, "req_3");
    assert.match(last.reason, /^agentPayout 1\.00 differs/);
    assert.equal(ledger.head().seq, 2);
    assert.equal(ledger.disputes().length, 1);
    assert.match(ledger.disputes()[0]!.reason, /^agentPayout/);
  } finally {
    checker.close();
    await ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("verifySettlement: a CLAIMed count accepts a payout capped below the formula, never above", async () => {
  const frame = await honest(null, "req_c");
  const lower = async (payout: string) => {
    const e = await appendEntry(null, { ...frame, agentPayout: payout, userCharge: "0.00" });
    return { ...frame, ...e, agentPayout: payout, userCharge: "0.00" };
  };
  const capped = await lower("0.000001");
  assert.ok((await verifySettlement(capped, { ...own, claimed: true }, genesis, AGENT)).ok);
  const plain = await verifySettlement(capped, own, genesis, AGENT);
  assert.ok(!plain.ok && /^agentPayout/.test(plain.reason), "only for a claimed count");
  const above = await lower("99.00");
  const v = await verifySettlement(above, { ...own, claimed: true }, genesis, AGENT);
  assert.ok(!v.ok && /^agentPayout 99\.00 differs/.test(v.reason));
});
