// Test-only: conformance cases for ledger sync (dispatch records, claims, checkpoints,
// divergences), run by store_conformance_test.ts on every backend.
import assert from "node:assert/strict";
import { verifyChain } from "../../protocol/chain.ts";
import { parseUsd } from "../../protocol/money.ts";
import { emptyUsage } from "../../protocol/usage.ts";
import { type Case, withStore } from "./_test_backends.ts";
import { balanceOf, payerAndAgent, settlement } from "./_test_billing_cases.ts";
import type { ClaimSettlement } from "./_ledger_sync_types.ts";
import type { HubStore } from "./mod.ts";

const usage = { ...emptyUsage(), inputTokens: 100, outputTokens: 20 };

/** A claim by `agentId` for `requestId`: the user would pay 0.30, the agent gets 0.20. */
function claim(agentId: string, requestId: string, payout = "0.20"): ClaimSettlement {
  return {
    reservationId: requestId,
    entry: {
      agentId,
      requestId,
      vendor: "openai",
      model: "gpt-4o-mini",
      usage,
      priceVersion: 1,
      official: "0.25",
      userCharge: "0.30",
      agentPayout: payout,
      completedAtMs: 5000,
      settledAtMs: 7000,
    },
    userChargeIfDelivered: parseUsd("0.30"),
    agentPayout: parseUsd(payout),
    usage,
    zoneMultiplier: "1.2",
    payoutRatio: "0.80",
    nowMs: 7000,
  };
}

async function held(s: HubStore, userId: string, id: string, amount = "0.50") {
  await s.reserve({ reservationId: id, userId, amount: parseUsd(amount), expiresAtMs: 9e12 }, 1000);
}

const dispatch = (requestId: string, agentId: string) => ({
  requestId,
  agentId,
  vendor: "openai",
  model: "gpt-4o-mini",
  zone: "standard",
  atMs: 2000,
});

const sumOf = (amounts: string[]) => amounts.reduce((t, a) => t + parseUsd(a), 0n);

export const LEDGER_SYNC_CASES: Case[] = [
  {
    name: "ledger sync: a claim for an undelivered response pays the agent from the platform",
    run: (target) =>
      withStore(target, async (s) => {
        const { userId, agentId } = await payerAndAgent(s, "1.00");
        await held(s, userId, "req_a");
        await s.ledgerSync.recordDispatch(dispatch("req_a", agentId));
        await s.ledgerSync.recordDispatch(dispatch("req_a", agentId)); // idempotent
        const out = await s.ledgerSync.settleClaim(claim(agentId, "req_a"));
        assert.equal(out.outcome, "settled");
        if (out.outcome !== "settled") return;
        assert.equal(out.delivered, false);
        assert.equal(out.entry.seq, 1);
        assert.equal(out.entry.userCharge, "0.00");
        assert.equal(out.entry.agentPayout, "0.20");
        assert.equal(await balanceOf(s, userId), "1.00", "the hold went back, nothing charged");
        assert.equal((await s.getReservation("req_a"))?.status, "released");
        const postings = await s.postings("req_a");
        assert.deepEqual(postings.map((p) => [p.account, p.amount]), [
          ["user", "0.00"],
          ["agent", "0.20"],
          ["platform", "-0.20"],
        ]);
        assert.equal(sumOf(postings.map((p) => p.amount)), 0n);
        assert.equal(await s.agentBalance(agentId), "0.20");
        const inputs = await s.ledgerSync.pricingInputs(agentId, ["req_a"]);
        assert.deepEqual(inputs.get("req_a"), { zoneMultiplier: "1.2", payoutRatio: "0.80" });
        const claims = await s.ledgerSync.claims(agentId, 10);
        assert.deepEqual(claims.map((c) => [c.requestId, c.outcome, c.seq]), [
          ["req_a", "settled", 1],
        ]);
      }),
  },
  {
    name: "ledger sync: a claim for a delivered response charges the user (capped at the hold)",
    run: (target) =>
      withStore(target, async (s) => {
        const { userId, agentId } = await payerAndAgent(s, "1.00");
        await held(s, userId, "req_d", "0.25");
        await s.ledgerSync.markDelivered({
          ...dispatch("req_d", agentId),
          zoneMultiplier: "1.2",
          payoutRatio: "0.80",
        });
        const [d] = await s.ledgerSync.dispatches("req_d");
        assert.equal(d?.deliveredAtMs, 2000);
        const out = await s.ledgerSync.settleClaim(claim(agentId, "req_d"));
        assert.ok(out.outcome === "settled" && out.delivered);
        assert.equal(out.entry.userCharge, "0.25", "0.30 capped at the 0.25 hold");
        assert.equal(await balanceOf(s, userId), "0.75");
        assert.equal((await s.getReservation("req_d"))?.status, "settled");
        const postings = await s.postings("req_d");
        assert.deepEqual(postings.map((p) => [p.account, p.amount]), [
          ["user", "-0.25"],
          ["agent", "0.20"],
          ["platform", "0.05"],
        ]);
      }),
  },
  {
    name: "ledger sync: a batch of dispatches and delivery marks is applied in order, idempotently",
    run: (target) =>
      withStore(target, async (s) => {
        const { agentId } = await payerAndAgent(s, "0");
        const other = await payerAndAgent(s, "0");
        const mark = (requestId: string, who: string, atMs: number) => ({
          ...dispatch(requestId, who),
          atMs,
          zoneMultiplier: "1.2",
          payoutRatio: "0.80",
        });
        await s.ledgerSync.writeDispatches([]);
        await s.ledgerSync.writeDispatches([
          dispatch("req_b1", agentId),
          dispatch("req_b1", other.agentId), // failover: a second agent
          mark("req_b1", other.agentId, 3000),
          mark("req_b2", agentId, 4000), // a mark whose dispatch never landed
          dispatch("req_b1", agentId), // a replay keeps the first
        ]);
        await s.ledgerSync.writeDispatches([{ ...dispatch("req_b2", agentId), atMs: 9000 }]);
        const view = async (id: string) =>
          (await s.ledgerSync.dispatches(id)).map((
            d,
          ) => [d.agentId, d.dispatchedAtMs, d.deliveredAtMs, d.payoutRatio]);
        assert.deepEqual(
          new Set(await view("req_b1")),
          new Set([[agentId, 2000, null, null], [other.agentId, 2000, 3000, "0.80"]]),
        );
        assert.deepEqual(await view("req_b2"), [[agentId, 4000, 4000, "0.80"]]);
      }),
  },
  {
    name: "ledger sync: a claimed charge counts against its key's spend (hold open or released)",
    run: (target) =>
      withStore(target, async (s) => {
        const { userId, agentId } = await payerAndAgent(s, "1.00");
        const caps = { budget: "1.00", dailyCap: null, monthlyCap: null };
        const { record } = await s.createKey({ userId, caps }, 1000);
        const keyed = (id: string) => ({
          reservationId: id,
          userId,
          keyId: record.id,
          amount: parseUsd("0.25"),
          expiresAtMs: 9e12,
        });
        const delivered = async (id: string) =>
          await s.ledgerSync.markDelivered({
            ...dispatch(id, agentId),
            zoneMultiplier: "1.2",
            payoutRatio: "0.80",
          });
        await s.reserve(keyed("req_open"), 1000);
        await delivered("req_open");
        const spentNow = async () => (await s.quotas.keySpend(record.id, 8000))!;
        assert.equal((await spentNow()).held, "0.25");
        assert.equal(
          (await s.ledgerSync.settleClaim(claim(agentId, "req_open"))).outcome,
          "settled",
        );
        assert.deepEqual([(await spentNow()).total.spent, (await spentNow()).held], [
          "0.25",
          "0.00",
        ]);
        // A hold the sweeper already gave back: the whole claimed charge is added.
        await s.reserve(keyed("req_late"), 1000);
        await delivered("req_late");
        await s.release("req_late", 2000);
        assert.equal((await spentNow()).total.spent, "0.25");
        assert.equal(
          (await s.ledgerSync.settleClaim(claim(agentId, "req_late"))).outcome,
          "settled",
        );
        assert.equal((await spentNow()).total.spent, "0.50");
        assert.equal(await balanceOf(s, userId), "0.50");
      }),
  },
  {
    name: "ledger sync: a claim replay, another agent's request and an unknown one settle nothing",
    run: (target) =>
      withStore(target, async (s) => {
        const { userId, agentId } = await payerAndAgent(s, "1.00");
        const other = await payerAndAgent(s, "0");
        await held(s, userId, "req_r");
        await s.ledgerSync.recordDispatch(dispatch("req_r", agentId));
        assert.equal((await s.ledgerSync.settleClaim(claim(agentId, "req_r"))).outcome, "settled");
        const replay = await s.ledgerSync.settleClaim(claim(agentId, "req_r"));
        assert.equal(replay.outcome, "replay");
        assert.match(replay.outcome === "replay" ? replay.reason : "", /already settled as seq 1/);
        const stolen = await s.ledgerSync.settleClaim(claim(other.agentId, "req_r"));
        assert.equal(stolen.outcome, "replay");
        assert.equal(stolen.outcome === "replay" && stolen.entry, null, "no entry leaked");
        await held(s, userId, "req_x");
        await s.ledgerSync.recordDispatch(dispatch("req_x", agentId));
        const foreign = await s.ledgerSync.settleClaim(claim(other.agentId, "req_x"));
        assert.deepEqual(foreign, {
          outcome: "rejected",
          reason: "request was dispatched to another agent",
        });
        const unknown = await s.ledgerSync.settleClaim(claim(agentId, "req_nowhere"));
        assert.equal(unknown.outcome, "rejected");
        assert.equal((await s.ledgerHead(agentId))?.seq, 1, "one entry only");
        assert.equal(await s.ledgerHead(other.agentId), null);
        assert.equal(await s.agentBalance(agentId), "0.20");
        assert.equal((await s.getReservation("req_x"))?.status, "held", "untouched");
        assert.equal(await balanceOf(s, userId), "0.50");
        const rejected = await s.ledgerSync.claims(other.agentId, 10);
        assert.deepEqual(rejected.map((c) => c.outcome), ["rejected"]);
      }),
  },
  {
    name: "ledger sync: claims and settlements share one gapless chain",
    run: (target) =>
      withStore(target, async (s) => {
        const { userId, agentId } = await payerAndAgent(s, "10.00");
        const work: Promise<unknown>[] = [];
        for (let i = 0; i < 20; i++) {
          const id = `req_${i}`;
          await held(s, userId, id, "0.30");
          if (i % 2 === 0) {
            await s.ledgerSync.recordDispatch(dispatch(id, agentId));
            work.push(s.ledgerSync.settleClaim(claim(agentId, id)));
          } else {
            work.push(s.settle(settlement(id, agentId, id, "0.30", "0.20")));
          }
        }
        await Promise.all(work);
        const entries = await s.ledgerEntries(agentId, 1, 100);
        assert.deepEqual(entries.map((e) => e.seq), Array.from({ length: 20 }, (_, i) => i + 1));
        const v = await verifyChain(entries);
        assert.ok(v.ok, JSON.stringify(v));
        assert.deepEqual(await s.ledgerHead(agentId), v.ok ? v.head : null);
      }),
  },
  {
    name: "ledger sync: checkpoints and divergences are stored once and listed newest first",
    run: (target) =>
      withStore(target, async (s) => {
        const { agentId } = await payerAndAgent(s, "0");
        const totals = { official: "0.25", userCharge: "0.30", agentPayout: "0.20" };
        assert.equal(await s.ledgerSync.lastCheckpoint(agentId), null);
        for (const seq of [2, 4]) {
          const c = {
            agentId,
            seq,
            hash: "a".repeat(64),
            totals,
            note: `n${seq}`,
            createdAtMs: seq,
          };
          await s.ledgerSync.addCheckpoint(c);
          await s.ledgerSync.addCheckpoint({ ...c, note: "ignored replay" });
        }
        assert.equal((await s.ledgerSync.lastCheckpoint(agentId))?.seq, 4);
        const cps = await s.ledgerSync.checkpoints(agentId, 10);
        assert.deepEqual(cps.map((c) => [c.seq, c.note, c.totals]), [[4, "n4", totals], [
          2,
          "n2",
          totals,
        ]]);
        const d = {
          agentId,
          seq: 3,
          kind: "hash_mismatch",
          detail: "x",
          hubHash: "b".repeat(64),
          agentHash: null,
          detectedAtMs: 10,
        };
        assert.equal(await s.ledgerSync.recordDivergence(d), true);
        assert.equal(await s.ledgerSync.recordDivergence({ ...d, detectedAtMs: 11 }), false);
        assert.deepEqual(await s.ledgerSync.divergences(agentId, 10), [d]);
        assert.deepEqual(await s.ledgerSync.divergences(undefined, 10), [d]);
      }),
  },
];
