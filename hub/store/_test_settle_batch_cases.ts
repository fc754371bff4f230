// Test-only: conformance cases for `settleMany` (group commit of settlements) and the settle
// batcher over it (run by store_conformance_test.ts). The reference is always `settle` itself.
import assert from "node:assert/strict";
import { type LedgerEntry, verifyChain } from "../../protocol/chain.ts";
import { parseUsd } from "../../protocol/money.ts";
import { SettleBatcher } from "../billing/settle_batcher.ts";
import { type Case, withStore } from "./_test_backends.ts";
import { balanceOf, payerAndAgent, settlement } from "./_test_billing_cases.ts";
import {
  type HubStore,
  InsufficientFundsError,
  type Settlement,
  type SettleOutcome,
  StoreConflictError,
  StoreNotFoundError,
} from "./mod.ts";

/**
 * A run of settlements touching every rule of `settle`, for one user/agent pair, ids prefixed by
 * `p`: fresh ones, a charge above the hold, an identical replay and a conflicting one (also of a
 * request booked earlier in the same run), insufficient funds, released / unknown reservations,
 * an unknown agent, a malformed item, and a later item that fits again.
 */
async function scenario(s: HubStore, p: string): Promise<{ ids: string[]; run: Settlement[] }> {
  const { userId, agentId } = await payerAndAgent(s, "1.00");
  const hold = (id: string, usd: string) =>
    s.reserve({ reservationId: `${p}${id}`, userId, amount: parseUsd(usd), expiresAtMs: 9 }, 1);
  for (const id of ["r1", "r2", "r3", "r4", "r5", "r6", "r7"]) await hold(id, "0.10");
  await s.release(`${p}r6`, 2);
  const st = (r: string, q: string, charge: string, payout: string) =>
    settlement(`${p}${r}`, agentId, `${p}${q}`, charge, payout);
  const first = st("r1", "q1", "0.05", "0.04");
  const run: Settlement[] = [
    first,
    st("r2", "q2", "0.15", "0.12"), // above its hold: taken from the balance
    first, // identical replay of a request booked earlier in the run
    { ...first, entry: { ...first.entry, model: "gpt-4o" } }, // conflicting replay
    st("r2", "q3", "0.01", "0.01"), // reservation already settled by q2
    st("r6", "q6", "0.01", "0.01"), // released
    st("nope", "q8", "0.01", "0.01"), // unknown reservation
    settlement(`${p}r3`, "agt_unknown", `${p}q9`, "0.01", "0.01"),
    { ...st("r3", "q10", "0.01", "0.01"), userCharge: 7n }, // malformed: amounts disagree
    st("r3", "q3b", "0.20", "0.15"),
    st("r4", "q4", "0.30", "0.20"), // exactly what is left with its hold: balance 0.10
    st("r5", "q5", "0.50", "0.40"), // 0.10 + its 0.10 hold is short: refused
    st("r5", "q5b", "0.08", "0.07"), // fits
    st("r7", "q7", "0", "0"),
  ];
  return { ids: [userId, agentId, p], run };
}

/** An outcome with the run's own ids (and the hashes covering them) taken out. */
function normalize(o: SettleOutcome, ids: string[]): unknown {
  const strip = (v: string) => ids.reduce((t, id) => t.replaceAll(id, "<id>"), v);
  if (o instanceof Error) {
    const e = o as Error & { field?: string; entity?: string; amount?: string };
    return { error: e.name, field: e.field, entity: e.entity, amount: e.amount };
  }
  const { hash: _h, prevHash: _p, agentId: _a, ...rest } = o;
  return { ...rest, requestId: strip(o.requestId) };
}

async function stateOf(s: HubStore, ids: string[], run: Settlement[]) {
  const [userId, agentId, p] = ids as [string, string, string];
  const chain = await s.ledgerEntries(agentId, 1, 1000);
  const verified = await verifyChain(chain);
  assert.ok(verified.ok, JSON.stringify(verified));
  const reservations = [];
  for (const r of ["r1", "r2", "r3", "r4", "r5", "r6", "r7"]) {
    const rec = await s.getReservation(`${p}${r}`);
    reservations.push([rec?.status, rec?.closedAtMs, rec?.requestId?.replace(p, "")]);
  }
  const postings = [];
  for (const x of run) {
    const rows = await s.postings(x.entry.requestId);
    postings.push(rows.map((r) => [r.account, r.amount, r.createdAtMs]));
  }
  return {
    balance: await balanceOf(s, userId),
    agentBalance: await s.agentBalance(agentId),
    totals: (await s.ledgerHead(agentId))?.totals,
    chain: chain.map((e) => normalize(e, ids)),
    reservations,
    postings,
  };
}

const isConflict = (o: SettleOutcome | undefined, field: string) =>
  o instanceof StoreConflictError && o.field === field;

export const SETTLE_BATCH_CASES: Case[] = [
  {
    name: "settleMany: every outcome and every row identical to settle called one by one",
    run: (target) =>
      withStore(target, async (s) => {
        const one = await scenario(s, "a_");
        const seq: SettleOutcome[] = [];
        for (const x of one.run) seq.push(await s.settle(x).catch((e) => e as Error));
        const many = await scenario(s, "b_");
        const batch = await s.settleMany(many.run);
        assert.equal(batch.length, many.run.length);
        assert.deepEqual(
          batch.map((o) => normalize(o, many.ids)),
          seq.map((o) => normalize(o, one.ids)),
        );
        assert.deepEqual(await stateOf(s, many.ids, many.run), await stateOf(s, one.ids, one.run));
        // The run exercises what it claims to: six entries + a replay, each kind of refusal.
        assert.equal(seq.filter((o) => !(o instanceof Error)).length, 7);
        assert.deepEqual(batch[2], batch[0]);
        assert.ok(isConflict(batch[5], "reservationId"));
        assert.ok(batch[6] instanceof StoreNotFoundError && batch[6].entity === "reservation");
        assert.ok(isConflict(batch[3], "requestId") && isConflict(batch[4], "reservationId"));
        assert.ok(batch[11] instanceof InsufficientFundsError);
        assert.ok(batch[7] instanceof StoreNotFoundError && batch[7].entity === "agent");
        assert.ok(batch[8] instanceof TypeError);
        assert.equal(await balanceOf(s, many.ids[0]!), "0.22");
        // Batched entries continue a chain that single settles started, and vice versa.
        const [userId, agentId] = many.ids as [string, string];
        await s.reserve({ reservationId: "b_r8", userId, amount: 1n, expiresAtMs: 9 }, 1);
        const next = await s.settle(settlement("b_r8", agentId, "b_q11", "0", "0"));
        assert.equal(next.seq, 7);
        assert.deepEqual(await s.settleMany([]), []);
      }),
  },
  {
    name: "settleMany: a replay, a conflict and a short balance refuse only themselves",
    run: (target) =>
      withStore(target, async (s) => {
        const { userId, agentId } = await payerAndAgent(s, "0.50");
        for (const id of ["r0", "r1", "r2", "r3", "r4"]) {
          await s.reserve(
            { reservationId: id, userId, amount: parseUsd("0.05"), expiresAtMs: 9 },
            1,
          );
        }
        const before = await s.settle(settlement("r0", agentId, "q0", "0.05", "0.04"));
        const outcomes = await s.settleMany([
          settlement("r1", agentId, "q1", "0.02", "0.01"),
          settlement("r0", agentId, "q0", "0.05", "0.04"), // replay
          settlement("r0", agentId, "q0", "0.06", "0.04"), // conflict
          settlement("r2", agentId, "q2", "0.48", "0.01"), // 0.28 + 0.05 held available: short
          settlement("r3", agentId, "q3", "0.03", "0.02"),
        ]);
        const [a, replay, conflict, short, b] = outcomes as [LedgerEntry, ...SettleOutcome[]];
        assert.deepEqual(replay, before);
        assert.ok(isConflict(conflict, "requestId"), String(conflict));
        assert.ok(short instanceof InsufficientFundsError, String(short));
        assert.equal(short.amount, "0.48");
        assert.deepEqual([a.seq, a.prevHash], [2, before.hash]);
        assert.deepEqual([(b as LedgerEntry).seq, (b as LedgerEntry).prevHash], [3, a.hash]);
        // Refused items wrote nothing: r2 still held, no postings, no entry for q2.
        assert.equal((await s.getReservation("r2"))?.status, "held");
        assert.deepEqual(await s.postings("q2"), []);
        assert.equal((await s.ledgerEntries(agentId, 1, 10)).length, 3);
        assert.equal(await balanceOf(s, userId), "0.30"); // 0.50 − 0.05 − 0.02 − 0.03 − 2 × 0.05
        assert.equal(await s.agentBalance(agentId), "0.07");
      }),
  },
  {
    name: "settle batcher: 100 parallel settlements over 4 agents keep every chain gapless",
    run: (target) =>
      withStore(target, async (s) => {
        const payers: { userId: string; agentId: string }[] = [];
        for (let i = 0; i < 4; i++) payers.push(await payerAndAgent(s, "10"));
        const ids = Array.from({ length: 100 }, (_, i) => i);
        for (const i of ids) {
          const { userId } = payers[i % 4]!;
          await s.reserve(
            { reservationId: `r${i}`, userId, amount: parseUsd("0.05"), expiresAtMs: 9 },
            1,
          );
        }
        let calls = 0;
        const counting = {
          settleMany: (items: readonly Settlement[]) => (calls++, s.settleMany(items)),
        };
        const batcher = new SettleBatcher(counting, { batchMax: 16, inFlightMax: 1 });
        const settled = await Promise.all(ids.map((i) => {
          const st = settlement(`r${i}`, payers[i % 4]!.agentId, `q${i}`, "0.03", "0.025");
          return batcher.settle(i === 99 ? { ...st, userCharge: 1n } : st).catch((e) => e);
        }));
        assert.ok(settled[99] instanceof TypeError, "a bad item fails alone");
        assert.ok(calls >= 7 && calls < 100, `${calls} transactions for 100 settlements`);
        for (const [k, { userId, agentId }] of payers.entries()) {
          const chain = await s.ledgerEntries(agentId, 1, 1000);
          const expected = ids.filter((i) => i % 4 === k && i !== 99);
          assert.deepEqual(chain.map((e) => e.seq), expected.map((_, j) => j + 1));
          const verified = await verifyChain(chain);
          assert.ok(verified.ok, JSON.stringify(verified));
          assert.deepEqual(await s.ledgerHead(agentId), verified.head);
          for (const e of chain) assert.deepEqual(settled[Number(e.requestId.slice(1))], e);
          // 10 − 25 holds of 0.05 + 0.02 back per settled one (r99 failed: still held).
          assert.equal(await balanceOf(s, userId), k === 3 ? "9.23" : "9.25");
        }
      }),
  },
  {
    name: "settle batcher: a batch the store cannot commit rejects each of its callers",
    run: async (target) => {
      const s = await target.open();
      const { userId, agentId } = await payerAndAgent(s, "1");
      await s.reserve({ reservationId: "r1", userId, amount: 1n, expiresAtMs: 9 }, 1);
      await s.close();
      const batcher = new SettleBatcher(s);
      const results = await Promise.allSettled([
        batcher.settle(settlement("r1", agentId, "q1", "0", "0")),
        batcher.settle(settlement("r1", agentId, "q2", "0", "0")),
      ]);
      assert.deepEqual(results.map((r) => r.status), ["rejected", "rejected"]);
      assert.equal(batcher.queued, 0);
      assert.ok(
        !(results[0] as PromiseRejectedResult).reason?.message?.includes("outcome"),
        "the store's own error reaches the caller",
      );
    },
  },
];
