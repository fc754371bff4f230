// Test-only: conformance cases for reservations, settlement, the agent ledger and postings (run
// by store_conformance_test.ts). Every expected balance is a literal string.
import assert from "node:assert/strict";
import { type EntryFields, entryHash, GENESIS_HASH } from "../../protocol/chain.ts";
import { parseUsd } from "../../protocol/money.ts";
import { emptyUsage } from "../../protocol/usage.ts";
import { type Case, withStore } from "./_test_backends.ts";
import {
  type HubStore,
  InsufficientFundsError,
  type Settlement,
  StoreConflictError,
  StoreNotFoundError,
} from "./mod.ts";

let n = 0;
/** A user credited with `balance` and an agent, on a fresh store. */
export async function payerAndAgent(s: HubStore, balance: string) {
  const user = await s.createUser({ name: "payer" }, 1000);
  if (balance !== "0") await s.creditUser(user.id, balance);
  const key = `ed25519:${"B".repeat(39)}${String(++n).padStart(4, "0")}`;
  const agent = await s.createAgent({ name: "a", publicKey: key, keyId: `k${n}`, tier: 2 }, 1000);
  return { userId: user.id, agentId: agent.id };
}

/** A settlement of `reservationId` charging `charge` and paying `payout` (USD strings). */
export function settlement(
  reservationId: string,
  agentId: string,
  requestId: string,
  charge: string,
  payout: string,
): Settlement {
  const entry: EntryFields = {
    agentId,
    requestId,
    vendor: "openai",
    model: "gpt-4o-mini",
    usage: { ...emptyUsage(), inputTokens: 1200, outputTokens: 340, audioSeconds: 1.5 },
    priceVersion: 1,
    official: payout,
    userCharge: charge,
    agentPayout: payout,
    completedAtMs: 5000,
    settledAtMs: 6000,
  };
  return { reservationId, entry, userCharge: parseUsd(charge), agentPayout: parseUsd(payout) };
}

export const balanceOf = async (s: HubStore, id: string) => (await s.getUser(id))?.balance;
const conflict = (field: string) => (e: unknown) =>
  e instanceof StoreConflictError && e.field === field;
const sum = (amounts: string[]) => amounts.reduce((t, a) => t + parseUsd(a), 0n);

export const BILLING_CASES: Case[] = [
  {
    name: "reserve holds, settle charges exactly, chains the entry and posts a zero-sum triple",
    run: (target) =>
      withStore(target, async (s) => {
        const { userId, agentId } = await payerAndAgent(s, "1.00");
        const held = await s.reserve({
          reservationId: "r1",
          userId,
          amount: parseUsd("0.30"),
          expiresAtMs: 9000,
        }, 2000);
        assert.deepEqual(held, {
          id: "r1",
          userId,
          amount: "0.30",
          status: "held",
          createdAtMs: 2000,
          expiresAtMs: 9000,
          closedAtMs: null,
          requestId: null,
        });
        assert.deepEqual(await s.getReservation("r1"), held);
        assert.equal(await balanceOf(s, userId), "0.70");
        const entry = await s.settle(settlement("r1", agentId, "req_1", "0.123456789012", "0.1"));
        assert.equal(await balanceOf(s, userId), "0.876543210988");
        assert.equal(entry.seq, 1);
        assert.equal(entry.prevHash, GENESIS_HASH);
        const [stored] = await s.ledgerEntries(agentId, 1, 10);
        assert.deepEqual(stored, entry);
        const { hash, ...unhashed } = stored!;
        assert.equal(await entryHash(unhashed), hash);
        assert.equal(await s.ledgerHashAt(agentId, 1), hash);
        assert.equal(await s.ledgerHashAt(agentId, 2), null);
        assert.deepEqual(await s.ledgerHead(agentId), {
          agentId,
          seq: 1,
          hash,
          totals: { official: "0.10", userCharge: "0.123456789012", agentPayout: "0.10" },
        });
        const postings = await s.postings("req_1");
        assert.deepEqual(postings.map((p) => [p.account, p.accountId, p.amount, p.createdAtMs]), [
          ["user", userId, "-0.123456789012", 6000],
          ["agent", agentId, "0.10", 6000],
          ["platform", "", "0.023456789012", 6000],
        ]);
        assert.equal(sum(postings.map((p) => p.amount)), 0n);
        assert.equal(await s.agentBalance(agentId), "0.10");
        assert.deepEqual(await s.getReservation("r1"), {
          ...held,
          status: "settled",
          closedAtMs: 6000,
          requestId: "req_1",
        });
        assert.equal(await s.ledgerHead("agt_none"), null);
        assert.deepEqual(await s.postings("req_none"), []);
        assert.equal(await s.agentBalance("agt_none"), "0.00");
      }),
  },
  {
    name: "a charge above the hold takes the balance down to exactly 0, never below",
    run: (target) =>
      withStore(target, async (s) => {
        const { userId, agentId } = await payerAndAgent(s, "0.50");
        await s.reserve(
          { reservationId: "r1", userId, amount: parseUsd("0.10"), expiresAtMs: 9 },
          1,
        );
        await assert.rejects(
          s.settle(settlement("r1", agentId, "req_1", "0.500000000001", "0.2")),
          (e) => e instanceof InsufficientFundsError && e.userId === userId,
        );
        assert.equal(await balanceOf(s, userId), "0.40");
        assert.equal((await s.getReservation("r1"))?.status, "held");
        assert.equal(await s.ledgerHead(agentId), null);
        assert.deepEqual(await s.postings("req_1"), []);
        await s.settle(settlement("r1", agentId, "req_1", "0.5", "0.6"));
        assert.equal(await balanceOf(s, userId), "0.00");
        // The platform's margin may be negative; the triple still sums to zero.
        assert.deepEqual((await s.postings("req_1")).map((p) => p.amount), [
          "-0.50",
          "0.60",
          "-0.10",
        ]);
        assert.equal(await s.agentBalance(agentId), "0.60");
      }),
  },
  {
    name: "release refunds a hold once; released or settled holds cannot be settled or released",
    run: (target) =>
      withStore(target, async (s) => {
        const { userId, agentId } = await payerAndAgent(s, "2");
        await s.reserve(
          { reservationId: "r1", userId, amount: parseUsd("1.25"), expiresAtMs: 9 },
          1,
        );
        assert.equal(await balanceOf(s, userId), "0.75");
        assert.equal(await s.release("r1", 7), true);
        assert.equal(await balanceOf(s, userId), "2.00");
        assert.equal(await s.release("r1", 8), false);
        assert.equal(await balanceOf(s, userId), "2.00");
        const r1 = await s.getReservation("r1");
        assert.deepEqual([r1?.status, r1?.closedAtMs, r1?.requestId], ["released", 7, null]);
        await assert.rejects(
          s.settle(settlement("r1", agentId, "q1", "0.1", "0.1")),
          conflict("reservationId"),
        );
        await s.reserve({ reservationId: "r2", userId, amount: parseUsd("1"), expiresAtMs: 9 }, 1);
        await s.settle(settlement("r2", agentId, "q2", "0.4", "0.3"));
        assert.equal(await s.release("r2"), false);
        await assert.rejects(
          s.settle(settlement("r2", agentId, "q3", "0.1", "0.1")),
          conflict("reservationId"),
        );
        assert.equal(await balanceOf(s, userId), "1.60");
        await assert.rejects(
          s.release("nope"),
          (e) => e instanceof StoreNotFoundError && e.entity === "reservation",
        );
        await assert.rejects(
          s.settle(settlement("nope", agentId, "q4", "0.1", "0.1")),
          StoreNotFoundError,
        );
        assert.equal(await s.getReservation("nope"), null);
        assert.equal((await s.ledgerHead(agentId))?.seq, 1);
      }),
  },
  {
    name: "reserve is idempotent by reservationId; refusals write nothing",
    run: (target) =>
      withStore(target, async (s) => {
        const { userId } = await payerAndAgent(s, "1");
        const r = { reservationId: "r1", userId, amount: parseUsd("0.6"), expiresAtMs: 9 };
        const held = await s.reserve(r, 1);
        assert.deepEqual(await s.reserve(r, 2), held);
        assert.equal(await balanceOf(s, userId), "0.40");
        await assert.rejects(
          s.reserve({ ...r, amount: parseUsd("0.5") }, 3),
          conflict("reservationId"),
        );
        await assert.rejects(s.reserve({ ...r, expiresAtMs: 10 }, 3), conflict("reservationId"));
        await assert.rejects(
          s.reserve({ ...r, reservationId: "r2", amount: parseUsd("0.400000000001") }, 3),
          (e) => e instanceof InsufficientFundsError && e.amount === "0.400000000001",
        );
        await assert.rejects(
          s.reserve({ ...r, reservationId: "r3", userId: "usr_x" }, 3),
          StoreNotFoundError,
        );
        await assert.rejects(s.reserve({ ...r, reservationId: "r4", amount: -1n }, 3), RangeError);
        await assert.rejects(
          s.reserve({ ...r, reservationId: "r5", amount: 1 as unknown as bigint }, 3),
          TypeError,
        );
        await assert.rejects(s.reserve({ ...r, reservationId: "" }, 3), RangeError);
        for (const id of ["r2", "r3", "r4", "r5"]) assert.equal(await s.getReservation(id), null);
        await s.reserve({ ...r, reservationId: "r6", amount: parseUsd("0.4") }, 3);
        assert.equal(await balanceOf(s, userId), "0.00");
      }),
  },
  {
    name: "settle is idempotent by requestId; a conflicting replay changes nothing",
    run: (target) =>
      withStore(target, async (s) => {
        const { userId, agentId } = await payerAndAgent(s, "1");
        for (const id of ["r1", "r2"]) {
          await s.reserve(
            { reservationId: id, userId, amount: parseUsd("0.3"), expiresAtMs: 9 },
            1,
          );
        }
        const first = settlement("r1", agentId, "req_1", "0.2", "0.15");
        const entry = await s.settle(first);
        assert.deepEqual(await s.settle(first), entry);
        const changed = [
          settlement("r1", agentId, "req_1", "0.21", "0.15"),
          { ...first, entry: { ...first.entry, model: "gpt-4o" } },
          {
            ...first,
            entry: { ...first.entry, usage: { ...first.entry.usage, outputTokens: 341 } },
          },
          { ...first, entry: { ...first.entry, settledAtMs: 6001 } },
          { ...first, reservationId: "r2" },
        ];
        for (const replay of changed) await assert.rejects(s.settle(replay), conflict("requestId"));
        assert.equal(await balanceOf(s, userId), "0.50");
        assert.equal((await s.getReservation("r2"))?.status, "held");
        assert.deepEqual(await s.ledgerEntries(agentId, 0, 100), [entry]);
        assert.equal(await s.agentBalance(agentId), "0.15");
        await assert.rejects(s.settle({ ...first, userCharge: 1n }), TypeError);
        await assert.rejects(
          s.settle(settlement("r2", "agt_unknown", "req_2", "0.1", "0.1")),
          (e) => e instanceof StoreNotFoundError && e.entity === "agent",
        );
        assert.equal(await balanceOf(s, userId), "0.50");
        const second = await s.settle(settlement("r2", agentId, "req_2", "0.3", "0.2"));
        assert.deepEqual([second.seq, second.prevHash], [2, entry.hash]);
        assert.equal(await balanceOf(s, userId), "0.50");
        assert.equal((await s.ledgerHead(agentId))?.totals.userCharge, "0.50");
      }),
  },
  {
    name: "releaseExpired releases only held reservations past their expiry",
    run: (target) =>
      withStore(target, async (s) => {
        const { userId, agentId } = await payerAndAgent(s, "1");
        for (const [id, exp] of [["a", 10], ["b", 20], ["c", 30], ["d", 5]] as const) {
          await s.reserve(
            { reservationId: id, userId, amount: parseUsd("0.1"), expiresAtMs: exp },
            1,
          );
        }
        await s.settle(settlement("d", agentId, "req_d", "0.05", "0.04"));
        assert.equal(await s.releaseExpired(20), 2);
        assert.equal(await s.releaseExpired(20), 0);
        assert.equal(await balanceOf(s, userId), "0.85");
        const status = async (id: string) => (await s.getReservation(id))?.status;
        assert.deepEqual(await Promise.all(["a", "b", "c", "d"].map(status)), [
          "released",
          "released",
          "held",
          "settled",
        ]);
      }),
  },
];
