/**
 * Billing end to end with real processes: a worst-case hold before dispatch, settlement after the
 * stream ends (the user's balance, the agent's hash-chained ledger), release for an aborted
 * stream, no overspending under concurrency, and unpriced models refused before dispatch.
 */
import assert from "node:assert/strict";
import { type LedgerEntry, verifyChain } from "../protocol/chain.ts";
import { formatUsd, parseUsd } from "../protocol/money.ts";
import { admin } from "./support/cluster.ts";
import { waitFor } from "./support/process.ts";
import { startStack } from "./support/stack.ts";

/** Priced in the default table (openai/gpt-5.5: $5 in, $30 out per 1M tokens). */
const MODEL = "gpt-5.5";

Deno.test("billing: holds, settlement, ledger, aborts, concurrency, unpriced models", async (t) => {
  const stack = await startStack({ credit: "1.00", hubEnv: { HUB_UNPRICED_MODELS: "refuse" } });
  const chat = async (key: string, body: Record<string, unknown>) => {
    const res = await fetch(`${stack.baseURL}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return {
      status: res.status,
      requestId: res.headers.get("x-request-id")!,
      text: await res.text(),
    };
  };
  const balanceOf = async (userId: string) =>
    (await admin(stack.hub, "GET", `/users/${userId}`)).json.balance as string;
  const ledger = async (): Promise<LedgerEntry[]> => {
    const res = await admin(stack.hub, "GET", `/ledger?agentId=${stack.agentId}&limit=1000`);
    assert.equal(res.status, 200);
    return res.json.entries;
  };
  const settled = (ids: readonly string[]) =>
    waitFor(
      async () => {
        const entries = await ledger();
        const mine = ids.map((id) => entries.find((e) => e.requestId === id));
        return mine.every(Boolean) ? mine as LedgerEntry[] : undefined;
      },
      "requests settled",
      10_000,
    );
  const messages = [{ role: "user", content: "price me exactly" }];
  const charged: string[] = [];

  try {
    await t.step("streamed and non-streamed identical requests cost exactly the same", async () => {
      const base = { model: MODEL, messages, max_tokens: 64 };
      const plain = await chat(stack.key, base);
      const streamed = await chat(stack.key, {
        ...base,
        stream: true,
        stream_options: { include_usage: true },
      });
      const bare = await chat(stack.key, { ...base, stream: true });
      for (const r of [plain, streamed, bare]) assert.equal(r.status, 200, r.text);
      const entries = await settled([plain.requestId, streamed.requestId, bare.requestId]);
      for (const e of entries) {
        assert.ok(parseUsd(e.userCharge) > 0n, "a positive charge");
        assert.equal(e.userCharge, entries[0]!.userCharge);
        assert.equal(e.official, entries[0]!.official);
        assert.equal(e.agentPayout, entries[0]!.agentPayout);
        assert.deepEqual(e.usage, entries[0]!.usage);
        // the version current at the hub (the built-in v2 on a fresh store, hub/billing/prices.ts)
        assert.equal(e.priceVersion, (await admin(stack.hub, "GET", "/prices")).json.version);
        charged.push(e.requestId);
      }
    });

    await t.step("an unpriced model is refused before dispatch", async () => {
      const before = stack.fake.requests.length;
      const res = await chat(stack.key, { model: "gpt-unpriced-9", messages });
      assert.equal(res.status, 400);
      assert.match(JSON.parse(res.text).error.message, /no price for model gpt-unpriced-9/);
      assert.equal(stack.fake.requests.length, before, "the vendor never saw it");
    });

    await t.step("a client that aborts mid-stream is not charged", async () => {
      // Let earlier settlements land first, so the balance only moves for this request.
      const before = await balanceOf(stack.userId);
      const controller = new AbortController();
      const res = await fetch(`${stack.baseURL}/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${stack.key}`, "content-type": "application/json" },
        body: JSON.stringify({
          model: MODEL,
          stream: true,
          max_tokens: 2000,
          messages: [{ role: "user", content: "slow one [[words:500]] [[delay:20]]" }],
        }),
        signal: controller.signal,
      });
      assert.equal(res.status, 200);
      const requestId = res.headers.get("x-request-id")!;
      const reader = res.body!.getReader();
      await reader.read();
      // The hold is on the balance while the stream runs.
      assert.ok(parseUsd(await balanceOf(stack.userId)) < parseUsd(before), "hold placed");
      controller.abort();
      await reader.closed.catch(() => {});
      await waitFor(
        async () => (await balanceOf(stack.userId)) === before || undefined,
        "hold released",
        10_000,
      );
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(await balanceOf(stack.userId), before, "balance unchanged by the request");
      assert.ok(!(await ledger()).some((e) => e.requestId === requestId), "no ledger entry");
    });

    await t.step(
      "balance = 1.00 − Σ userCharge; the agent's ledger is gapless and verifies",
      async () => {
        for (let i = 0; i < 3; i++) {
          const r = await chat(stack.key, { model: MODEL, messages, max_tokens: 32 + i });
          assert.equal(r.status, 200);
          charged.push(r.requestId);
        }
        const mine = await settled(charged);
        const spent = mine.reduce((sum, e) => sum + parseUsd(e.userCharge), 0n);
        assert.equal(await balanceOf(stack.userId), formatUsd(parseUsd("1.00") - spent));
        const entries = await ledger();
        assert.deepEqual(entries.map((e) => e.seq), entries.map((_, i) => i + 1), "gapless");
        const verified = await verifyChain(entries);
        assert.ok(verified.ok, JSON.stringify(verified));
        const head = (await admin(stack.hub, "GET", `/ledger?agentId=${stack.agentId}`)).json.head;
        assert.equal(head.seq, entries.length);
        assert.equal(head.hash, entries.at(-1)!.hash);
        assert.deepEqual(head, verified.head);
      },
    );

    await t.step("100 concurrent requests against a tiny balance never overspend", async () => {
      const user = await admin(stack.hub, "POST", "/users", { name: "tiny" });
      await admin(stack.hub, "POST", `/users/${user.json.id}/credit`, { amount: "0.02" });
      const key = (await admin(stack.hub, "POST", "/keys", { userId: user.json.id })).json.key;
      const results = await Promise.all(
        Array.from({ length: 100 }, () => chat(key, { model: MODEL, messages, max_tokens: 100 })),
      );
      const ok = results.filter((r) => r.status === 200);
      const refused = results.filter((r) => r.status !== 200);
      assert.ok(ok.length > 0 && refused.length > 0, `${ok.length} ok, ${refused.length} refused`);
      for (const r of refused) {
        assert.equal(r.status, 429, r.text);
        const error = JSON.parse(r.text).error;
        assert.equal(error.code, "insufficient_quota");
        assert.equal(error.type, "insufficient_quota");
      }
      const entries = await settled(ok.map((r) => r.requestId));
      const spent = entries.reduce((sum, e) => sum + parseUsd(e.userCharge), 0n);
      const balance = parseUsd(await balanceOf(user.json.id));
      assert.ok(balance >= 0n);
      assert.equal(balance, parseUsd("0.02") - spent);
      assert.ok((await verifyChain(await ledger())).ok);
    });
  } finally {
    await stack.stop();
  }
});
