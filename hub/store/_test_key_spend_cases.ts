// Test-only: conformance cases for per-key spend caps and idempotent top-ups (run by
// store_conformance_test.ts on every backend). Every expected amount is a literal string.
import assert from "node:assert/strict";
import { parseUsd } from "../../protocol/money.ts";
import { type Case, withStore } from "./_test_backends.ts";
import { balanceOf, payerAndAgent, settlement } from "./_test_billing_cases.ts";
import {
  type HubStore,
  InsufficientFundsError,
  KeyCapExceededError,
  type KeyCaps,
  StoreConflictError,
  StoreNotFoundError,
} from "./mod.ts";

const DAY_MS = 86_400_000;
/** 2026-11-22T00:00:00Z, and the last millisecond of the month before it ends. */
const D = Date.UTC(2026, 10, 22);
const NOV_30_LAST_MS = Date.UTC(2026, 11, 1) - 1;
const CAPS_NONE: KeyCaps = { budget: null, dailyCap: null, monthlyCap: null };

async function capped(s: HubStore, balance: string, caps: Partial<KeyCaps>) {
  const { userId, agentId } = await payerAndAgent(s, balance);
  const { record } = await s.createKey({ userId, caps: { ...CAPS_NONE, ...caps } }, 1000);
  return { userId, agentId, keyId: record.id };
}

function hold(userId: string, keyId: string, id: string, amount: string) {
  return { reservationId: id, userId, keyId, amount: parseUsd(amount), expiresAtMs: D + 9e9 };
}

const refusedBy = (cap: string, limit: string, spent: string) => (e: unknown) => {
  assert.ok(e instanceof KeyCapExceededError, String(e));
  assert.ok(e instanceof InsufficientFundsError);
  assert.deepEqual([e.cap, e.limit, e.spent], [cap, limit, spent]);
  return true;
};

async function spent(s: HubStore, keyId: string, nowMs: number) {
  const v = (await s.quotas.keySpend(keyId, nowMs))!;
  return { total: v.total.spent, day: v.day.spent, month: v.month.spent, held: v.held };
}

export const KEY_SPEND_CASES: Case[] = [
  {
    name: "key caps: stored at creation and by setKeyCaps, canonical; malformed caps refused",
    run: (target) =>
      withStore(target, async (s) => {
        const { userId, keyId } = await capped(s, "1", { budget: "5", dailyCap: "0.100" });
        const view = await s.quotas.keySpend(keyId, D);
        assert.deepEqual(view, {
          keyId,
          userId,
          caps: { budget: "5.00", dailyCap: "0.10", monthlyCap: null },
          total: { startMs: null, endMs: null, spent: "0.00", cap: "5.00", remaining: "5.00" },
          day: { startMs: D, endMs: D + DAY_MS, spent: "0.00", cap: "0.10", remaining: "0.10" },
          month: {
            startMs: Date.UTC(2026, 10, 1),
            endMs: Date.UTC(2026, 11, 1),
            spent: "0.00",
            cap: null,
            remaining: null,
          },
          held: "0.00",
        });
        assert.equal(await s.quotas.keySpend("key_unknown", D), null);
        const caps = { budget: null, dailyCap: null, monthlyCap: "0.000000000001" };
        assert.equal(await s.quotas.setKeyCaps(keyId, caps), true);
        assert.deepEqual((await s.quotas.keySpend(keyId, D))?.caps, caps);
        assert.equal(await s.quotas.setKeyCaps("key_unknown", caps), false);
        for (const bad of ["1e-3", "0.1234567890123", "NaN", " 1", "1."]) {
          await assert.rejects(s.quotas.setKeyCaps(keyId, { ...caps, budget: bad }), TypeError);
          await assert.rejects(
            s.createKey({ userId, caps: { ...CAPS_NONE, dailyCap: bad } }, 1),
            TypeError,
          );
        }
        await assert.rejects(s.quotas.setKeyCaps(keyId, { ...caps, budget: "-0.01" }), RangeError);
        await assert.rejects(
          s.quotas.setKeyCaps(keyId, { ...caps, budget: "1" + "0".repeat(27) }),
          RangeError,
        );
        assert.deepEqual((await s.quotas.keySpend(keyId, D))?.caps, caps);
        assert.equal((await s.listKeys(userId)).length, 1);
      }),
  },
  {
    name: "key caps: admitted exactly up to each cap, refused 1 picodollar past it, naming it",
    run: (target) =>
      withStore(target, async (s) => {
        const { userId, keyId } = await capped(s, "10", { dailyCap: "0.10" });
        await s.reserve(hold(userId, keyId, "a", "0.04"), D);
        await s.reserve(hold(userId, keyId, "b", "0.06"), D + 5);
        await assert.rejects(
          s.reserve(hold(userId, keyId, "c", "0.000000000001"), D + 6),
          refusedBy("dailyCap", "0.10", "0.10"),
        );
        // A zero hold still fits exactly at the cap; the refused one wrote nothing.
        await s.reserve(hold(userId, keyId, "z", "0"), D + 7);
        assert.equal(await s.getReservation("c"), null);
        assert.equal(await balanceOf(s, userId), "9.90");
        assert.deepEqual(await spent(s, keyId, D + 8), {
          total: "0.10",
          day: "0.10",
          month: "0.10",
          held: "0.10",
        });
        // The budget is checked first, then the day, then the month.
        assert.ok(
          await s.quotas.setKeyCaps(keyId, {
            budget: "0.15",
            dailyCap: "0.11",
            monthlyCap: "0.12",
          }),
        );
        await assert.rejects(
          s.reserve(hold(userId, keyId, "d", "0.06"), D + 9),
          refusedBy("budget", "0.15", "0.10"),
        );
        await assert.rejects(
          s.reserve(hold(userId, keyId, "e", "0.03"), D + 9),
          refusedBy("dailyCap", "0.11", "0.10"),
        );
        await s.reserve(hold(userId, keyId, "f", "0.01"), D + 9);
        assert.ok(await s.quotas.setKeyCaps(keyId, { ...CAPS_NONE, monthlyCap: "0.12" }));
        await assert.rejects(
          s.reserve(hold(userId, keyId, "g", "0.02"), D + 9),
          refusedBy("monthlyCap", "0.12", "0.11"),
        );
        // A short balance is reported as such, before any cap.
        await assert.rejects(
          s.reserve(hold(userId, keyId, "h", "20"), D + 9),
          (e) => e instanceof InsufficientFundsError && !(e instanceof KeyCapExceededError),
        );
        // A replay of an admitted hold counts nothing twice.
        await s.reserve(hold(userId, keyId, "a", "0.04"), D);
        assert.equal((await spent(s, keyId, D + 9)).total, "0.11");
      }),
  },
  {
    name: "key caps: settle lowers the spend to the real charge, release returns the hold",
    run: (target) =>
      withStore(target, async (s) => {
        const { userId, agentId, keyId } = await capped(s, "1", { dailyCap: "0.10" });
        await s.reserve(hold(userId, keyId, "r1", "0.06"), D);
        await s.reserve(hold(userId, keyId, "r2", "0.04"), D + 1);
        await assert.rejects(
          s.reserve(hold(userId, keyId, "r3", "0.01"), D + 2),
          KeyCapExceededError,
        );
        await s.settle(settlement("r1", agentId, "req_1", "0.012345678901", "0.01"));
        assert.deepEqual(await spent(s, keyId, D + 3), {
          total: "0.052345678901",
          day: "0.052345678901",
          month: "0.052345678901",
          held: "0.04",
        });
        assert.equal(await s.release("r2", D + 4), true);
        assert.deepEqual(await spent(s, keyId, D + 5), {
          total: "0.012345678901",
          day: "0.012345678901",
          month: "0.012345678901",
          held: "0.00",
        });
        // Released again: nothing moves twice.
        assert.equal(await s.release("r2", D + 6), false);
        const left = (await s.quotas.keySpend(keyId, D + 6))!.day.remaining;
        assert.equal(left, "0.087654321099");
        await s.reserve(hold(userId, keyId, "r4", left!), D + 7);
        assert.equal((await spent(s, keyId, D + 8)).day, "0.10");
        assert.equal(await balanceOf(s, userId), "0.90");
        // A charge above the hold (taken from the balance) counts in full.
        await s.settle(settlement("r4", agentId, "req_4", "0.1", "0.01"));
        assert.equal((await spent(s, keyId, D + 9)).total, "0.112345678901");
      }),
  },
  {
    name: "key caps: settleMany corrects each hold's key spend like settle",
    run: (target) =>
      withStore(target, async (s) => {
        const { userId, agentId, keyId } = await capped(s, "1", { budget: "0.30" });
        const other = (await s.createKey({ userId }, 1000)).record.id;
        for (let i = 0; i < 6; i++) {
          await s.reserve(hold(userId, i % 2 ? other : keyId, `r${i}`, "0.05"), D + i);
        }
        const outcomes = await s.settleMany(
          [0, 1, 2, 3].map((i) => settlement(`r${i}`, agentId, `req_${i}`, "0.01", "0.005")),
        );
        for (const o of outcomes) assert.ok(!(o instanceof Error), String(o));
        // keyId: r0, r2 settled at 0.01 each, r4 still held at 0.05.
        assert.deepEqual(await spent(s, keyId, D + 9), {
          total: "0.07",
          day: "0.07",
          month: "0.07",
          held: "0.05",
        });
        assert.equal((await spent(s, other, D + 9)).total, "0.07");
      }),
  },
  {
    name: "key caps: UTC day and month roll over; a late hold corrects only its own period",
    run: (target) =>
      withStore(target, async (s) => {
        const { userId, agentId, keyId } = await capped(s, "10", {
          dailyCap: "0.10",
          monthlyCap: "0.25",
        });
        const lastMs = NOV_30_LAST_MS;
        await s.reserve(hold(userId, keyId, "n1", "0.10"), lastMs - DAY_MS);
        await s.reserve(hold(userId, keyId, "n2", "0.10"), lastMs);
        await assert.rejects(
          s.reserve(hold(userId, keyId, "n3", "0.01"), lastMs),
          refusedBy("dailyCap", "0.10", "0.10"),
        );
        // One millisecond later: a new day and a new month.
        const dec1 = lastMs + 1;
        assert.deepEqual(await spent(s, keyId, dec1), {
          total: "0.20",
          day: "0.00",
          month: "0.00",
          held: "0.20",
        });
        await s.reserve(hold(userId, keyId, "d1", "0.10"), dec1);
        // n2 (counted on Nov 30) settles on Dec 1: the total drops, December does not.
        await s.settle(settlement("n2", agentId, "req_n2", "0.03", "0.01"));
        assert.deepEqual(await spent(s, keyId, dec1 + 1), {
          total: "0.23",
          day: "0.10",
          month: "0.10",
          held: "0.20",
        });
        // A hub whose clock lags (still Nov 30) counts its hold in December, never reopening
        // November's spend; releasing it corrects December.
        await assert.rejects(
          s.reserve(hold(userId, keyId, "late", "0.01"), lastMs - 5),
          refusedBy("dailyCap", "0.10", "0.10"),
        );
        assert.equal(await s.release("d1", dec1 + 2), true);
        await s.reserve(hold(userId, keyId, "late", "0.01"), lastMs - 5);
        assert.equal(await s.release("late", dec1 + 3), true);
        assert.deepEqual(await spent(s, keyId, dec1 + 4), {
          total: "0.13",
          day: "0.00",
          month: "0.00",
          held: "0.10",
        });
        // Next day: the day resets, the month keeps counting up to its cap.
        const dec2 = dec1 + DAY_MS;
        await s.reserve(hold(userId, keyId, "x1", "0.10"), dec1 + 5);
        await s.reserve(hold(userId, keyId, "x2", "0.10"), dec2);
        await assert.rejects(
          s.reserve(hold(userId, keyId, "x3", "0.06"), dec2 + DAY_MS),
          refusedBy("monthlyCap", "0.25", "0.20"),
        );
        await s.reserve(hold(userId, keyId, "x3", "0.05"), dec2 + DAY_MS);
      }),
  },
  {
    name: "key caps: unknown key, or a key of another user, is refused and writes nothing",
    run: (target) =>
      withStore(target, async (s) => {
        const { userId, keyId } = await capped(s, "1", {});
        const stranger = await s.createUser({ name: "stranger" }, 1);
        await s.creditUser(stranger.id, "1");
        await assert.rejects(
          s.reserve(hold(userId, "key_unknown", "u1", "0.01"), D),
          (e) => e instanceof StoreNotFoundError && e.entity === "key",
        );
        await assert.rejects(s.reserve(hold(stranger.id, keyId, "u2", "0.01"), D), RangeError);
        assert.equal(await balanceOf(s, userId), "1.00");
        assert.equal(await balanceOf(s, stranger.id), "1.00");
        assert.equal(await s.getReservation("u1"), null);
        assert.equal(await s.getReservation("u2"), null);
        assert.equal((await spent(s, keyId, D)).total, "0.00");
      }),
  },
  {
    name: "key caps: 100 concurrent holds of 0.01 against a 0.50 daily cap: exactly 50 admitted",
    run: (target) => withStore(target, (s) => hundredCapped([s])),
  },
  {
    name: "key caps: two stores on one database: 100 concurrent holds never pass the cap",
    persistentOnly: true,
    run: (target) => withStore(target, (a) => withStore(target, (b) => hundredCapped([a, b]))),
  },
  {
    name: "top-up: credits once per idempotency key; a different replay conflicts",
    run: (target) =>
      withStore(target, async (s) => {
        const { userId } = await payerAndAgent(s, "0");
        const first = await s.quotas.topUp(
          { userId, amount: "25.000000000001", idempotencyKey: "inv-1" },
          D,
        );
        assert.deepEqual(first, {
          id: "inv-1",
          userId,
          amount: "25.000000000001",
          balanceAfter: "25.000000000001",
          createdAtMs: D,
          replayed: false,
        });
        const again = await s.quotas.topUp(
          { userId, amount: "25.000000000001", idempotencyKey: "inv-1" },
          D + 1,
        );
        assert.deepEqual(again, { ...first, replayed: true });
        assert.equal(await balanceOf(s, userId), "25.000000000001");
        await assert.rejects(
          s.quotas.topUp({ userId, amount: "25", idempotencyKey: "inv-1" }, D),
          (e) => e instanceof StoreConflictError && e.field === "idempotencyKey",
        );
        const other = await s.createUser({ name: "other" }, 1);
        await assert.rejects(
          s.quotas.topUp(
            { userId: other.id, amount: "25.000000000001", idempotencyKey: "inv-1" },
            D,
          ),
          StoreConflictError,
        );
        // Refused top-ups write nothing: the same key can be used once the amount is right.
        await assert.rejects(
          s.quotas.topUp({ userId, amount: "-30", idempotencyKey: "fix-1" }, D),
          RangeError,
        );
        await assert.rejects(
          s.quotas.topUp({ userId: "usr_unknown", amount: "1", idempotencyKey: "x" }, D),
          StoreNotFoundError,
        );
        await assert.rejects(
          s.quotas.topUp({ userId, amount: "1e2", idempotencyKey: "y" }, D),
          TypeError,
        );
        await assert.rejects(
          s.quotas.topUp({ userId, amount: "1", idempotencyKey: "bad key" }, D),
          RangeError,
        );
        const fix = await s.quotas.topUp({ userId, amount: "-5", idempotencyKey: "fix-1" }, D);
        assert.equal(fix.balanceAfter, "20.000000000001");
        const anon = await s.quotas.topUp({ userId, amount: "1", idempotencyKey: null }, D);
        assert.match(anon.id, /^cr_[0-9a-f]{24}$/);
        assert.equal(await balanceOf(s, userId), "21.000000000001");
      }),
  },
  {
    name: "top-up: 20 concurrent retries of one top-up credit it exactly once",
    run: (target) =>
      withStore(target, async (s) => {
        const { userId } = await payerAndAgent(s, "0");
        const results = await Promise.all(
          Array.from(
            { length: 20 },
            () => s.quotas.topUp({ userId, amount: "7.5", idempotencyKey: "once" }, D),
          ),
        );
        assert.equal(results.filter((r) => !r.replayed).length, 1);
        for (const r of results) assert.equal(r.balanceAfter, "7.50");
        assert.equal(await balanceOf(s, userId), "7.50");
      }),
  },
];

/** 100 concurrent 0.01 holds on one key with a 0.50 daily cap (balance 10), over `stores`. */
async function hundredCapped(stores: HubStore[]): Promise<void> {
  const s = stores[0]!;
  const { userId, keyId } = await capped(s, "10", { dailyCap: "0.50" });
  const results = await Promise.allSettled(
    Array.from(
      { length: 100 },
      (_, i) => stores[i % stores.length]!.reserve(hold(userId, keyId, `r${i}`, "0.01"), D + i),
    ),
  );
  const refused = results.filter((r) => r.status === "rejected");
  assert.equal(results.length - refused.length, 50);
  for (const r of refused) assert.ok(r.reason instanceof KeyCapExceededError, String(r.reason));
  assert.deepEqual(await spent(s, keyId, D + 100), {
    total: "0.50",
    day: "0.50",
    month: "0.50",
    held: "0.50",
  });
  assert.equal(await balanceOf(s, userId), "9.50");
}
