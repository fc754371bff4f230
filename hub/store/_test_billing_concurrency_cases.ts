// Test-only: billing under concurrency (run by store_conformance_test.ts): holds never overspend,
// one agent's parallel settlements still form a gapless, verifiable chain.
import assert from "node:assert/strict";
import { entryHash, verifyChain } from "../../protocol/chain.ts";
import { parseUsd } from "../../protocol/money.ts";
import { type Case, withStore } from "./_test_backends.ts";
import { balanceOf, payerAndAgent, settlement } from "./_test_billing_cases.ts";
import { type HubStore, InsufficientFundsError } from "./mod.ts";

const CENT = parseUsd("0.01");

/** 100 concurrent holds of 0.01 on a 0.50 balance, spread over `stores`: exactly 50 succeed. */
async function hundredHolds(stores: HubStore[], userId: string): Promise<void> {
  const results = await Promise.allSettled(
    Array.from({ length: 100 }, (_, i) =>
      stores[i % stores.length]!.reserve(
        { reservationId: `r${i}`, userId, amount: CENT, expiresAtMs: 9 },
        1,
      )),
  );
  const refused = results.filter((r) => r.status === "rejected");
  assert.equal(results.length - refused.length, 50);
  for (const r of refused) assert.ok(r.reason instanceof InsufficientFundsError, String(r.reason));
  assert.equal(await balanceOf(stores[0]!, userId), "0.00");
  const held = await Promise.all(results.map((_, i) => stores[0]!.getReservation(`r${i}`)));
  assert.equal(held.filter((r) => r?.status === "held").length, 50);
  assert.equal(held.filter((r) => r === null).length, 50);
}

export const BILLING_CONCURRENCY_CASES: Case[] = [
  {
    name: "100 concurrent holds of 0.01 against 0.50: exactly 50 succeed, balance exactly 0",
    run: (target) =>
      withStore(target, async (s) => {
        const { userId } = await payerAndAgent(s, "0.50");
        await hundredHolds([s], userId);
        // Releasing them all restores the balance exactly.
        for (let i = 0; i < 100; i++) {
          if (await s.getReservation(`r${i}`)) await s.release(`r${i}`);
        }
        assert.equal(await balanceOf(s, userId), "0.50");
      }),
  },
  {
    name: "two stores on one database: 100 concurrent holds still never overspend",
    persistentOnly: true,
    run: (target) =>
      withStore(target, (a) =>
        withStore(target, async (b) => {
          const { userId } = await payerAndAgent(a, "0.50");
          await hundredHolds([a, b], userId);
        })),
  },
  {
    name: "100 parallel settlements for one agent: gapless verified chain, zero-sum postings",
    run: (target) =>
      withStore(target, async (s) => {
        const { userId, agentId } = await payerAndAgent(s, "10");
        const ids = Array.from({ length: 100 }, (_, i) => i);
        for (const i of ids) {
          await s.reserve({ reservationId: `r${i}`, userId, amount: CENT * 5n, expiresAtMs: 9 }, 1);
        }
        assert.equal(await balanceOf(s, userId), "5.00");
        const settled = await Promise.all(
          ids.map((i) => s.settle(settlement(`r${i}`, agentId, `req_${i}`, "0.03", "0.025"))),
        );
        const chain = await s.ledgerEntries(agentId, 1, 1000);
        assert.deepEqual(chain.map((e) => e.seq), ids.map((i) => i + 1));
        assert.deepEqual(
          new Set(chain.map((e) => e.requestId)),
          new Set(ids.map((i) => `req_${i}`)),
        );
        const verified = await verifyChain(chain);
        assert.ok(verified.ok, JSON.stringify(verified));
        assert.deepEqual(await s.ledgerHead(agentId), verified.head);
        assert.deepEqual(verified.head.totals, {
          official: "2.50",
          userCharge: "3.00",
          agentPayout: "2.50",
        });
        for (const e of settled) assert.deepEqual(e, chain[e.seq - 1]);
        const { hash, ...unhashed } = chain[99]!;
        assert.equal(await entryHash(unhashed), hash);
        assert.equal(await s.ledgerHashAt(agentId, 57), chain[56]!.hash);
        assert.deepEqual((await s.ledgerEntries(agentId, 99, 5)).map((e) => e.seq), [99, 100]);
        for (const i of ids) {
          const amounts = (await s.postings(`req_${i}`)).map((p) => parseUsd(p.amount));
          assert.equal(amounts.length, 3);
          assert.equal(amounts.reduce((t, a) => t + a, 0n), 0n);
        }
        assert.equal(await s.agentBalance(agentId), "2.50");
        assert.equal(await balanceOf(s, userId), "7.00");
      }),
  },
];
