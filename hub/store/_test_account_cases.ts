// Test-only: conformance cases for users, money and virtual keys (run by store_conformance_test.ts).
// Every expected balance is a literal string, so both engines must render money identically.
import assert from "node:assert/strict";
import { type Case, withStore } from "./_test_backends.ts";
import { type KeyRecord, keySecretHash, type NewKey, StoreNotFoundError, USD_MAX } from "./mod.ts";

const UNKNOWN_USER = "usr_00000000000000000000";

/** Credits applied in order to a new user; when `rejects` is set, the last one must fail. */
interface CreditRow {
  credits: string[];
  rejects?: typeof TypeError | typeof RangeError;
  /** The balance afterwards (a refused credit changes nothing). */
  balance: string;
}

const CREDIT_TABLE: CreditRow[] = [
  { credits: ["25"], balance: "25.00" },
  { credits: Array(10).fill("0.1"), balance: "1.00" },
  { credits: ["12345678901.123456789012"], balance: "12345678901.123456789012" },
  { credits: ["12345678901.123456789012", "0.000000000001"], balance: "12345678901.123456789013" },
  { credits: ["0.000000000001"], balance: "0.000000000001" },
  { credits: ["0.000001", "0.000001"], balance: "0.000002" },
  { credits: ["12.500000000000"], balance: "12.50" },
  { credits: ["10", "-2.5"], balance: "7.50" },
  { credits: ["1", "-1"], balance: "0.00" },
  { credits: ["0"], balance: "0.00" },
  { credits: ["3", "-0"], balance: "3.00" },
  { credits: [USD_MAX], balance: USD_MAX },
  { credits: ["1", "-1.000000000001"], rejects: RangeError, balance: "1.00" },
  { credits: ["-0.01"], rejects: RangeError, balance: "0.00" },
  { credits: [USD_MAX, "0.000000000001"], rejects: RangeError, balance: USD_MAX },
  { credits: ["100000000000000000000000000"], rejects: RangeError, balance: "0.00" },
  { credits: ["-100000000000000000000000000"], rejects: RangeError, balance: "0.00" },
  { credits: ["5", "1e-3"], rejects: TypeError, balance: "5.00" },
  { credits: ["NaN"], rejects: TypeError, balance: "0.00" },
  { credits: ["0.1234567890123"], rejects: TypeError, balance: "0.00" },
  { credits: [" 1"], rejects: TypeError, balance: "0.00" },
  { credits: ["1,5"], rejects: TypeError, balance: "0.00" },
];

const creditCases: Case[] = CREDIT_TABLE.map((row) => ({
  name: `credit ${row.credits.map((c) => JSON.stringify(c)).join(", ")} → ${
    row.rejects ? `${row.rejects.name}, ` : ""
  }${row.balance}`,
  run: (target) =>
    withStore(target, async (s) => {
      const u = await s.createUser({ name: "payer" }, 1000);
      const ok = row.rejects ? row.credits.slice(0, -1) : row.credits;
      for (const amount of ok) {
        assert.equal(await s.creditUser(u.id, amount), (await s.getUser(u.id))?.balance);
      }
      if (row.rejects) await assert.rejects(s.creditUser(u.id, row.credits.at(-1)!), row.rejects);
      assert.deepEqual(await s.getUser(u.id), { ...u, balance: row.balance });
    }),
}));

/** `NewKey` options (beyond userId) and the record fields they must produce. */
const KEY_TABLE: [Omit<NewKey, "userId">, Partial<KeyRecord>][] = [
  [{}, { zone: "standard", policy: null, limits: null, expiresAtMs: null }],
  [{ zone: "premium" }, { zone: "premium" }],
  [{ policy: null, limits: null, expiresAtMs: null }, { policy: null, limits: null }],
  [
    { policy: { models: ["gpt-4o", "claude-*"], note: "Ägent ñ 🚰", deep: { a: [1, 2.5, null] } } },
    { policy: { models: ["gpt-4o", "claude-*"], note: "Ägent ñ 🚰", deep: { a: [1, 2.5, null] } } },
  ],
  [{ limits: { rpm: 60, tpm: 100000 } }, { limits: { rpm: 60, tpm: 100000 } }],
  [{ policy: ["a", 1], limits: "raw" }, { policy: ["a", 1], limits: "raw" }],
  [{ expiresAtMs: 1_900_000_000_000 }, { expiresAtMs: 1_900_000_000_000 }],
];

const keyOptionCases: Case[] = KEY_TABLE.map(([options, expected]) => ({
  name: `createKey ${JSON.stringify(options)} stores ${JSON.stringify(expected)}`,
  run: (target) =>
    withStore(target, async (s) => {
      const u = await s.createUser({ name: "owner" }, 1000);
      const { record } = await s.createKey({ userId: u.id, ...options }, 2000);
      assert.deepEqual(record, { ...record, ...expected });
      assert.deepEqual(await s.getKey(record.id), record);
    }),
}));

export const ACCOUNT_CASES: Case[] = [
  {
    name: "creates and gets users with a zero balance",
    run: (target) =>
      withStore(target, async (s) => {
        const u = await s.createUser({ name: "Ägent ñ 🚰" }, 1000);
        assert.deepEqual(u, {
          id: u.id,
          name: "Ägent ñ 🚰",
          balance: "0.00",
          createdAtMs: 1000,
          disabled: false,
          limits: null,
        });
        assert.match(u.id, /^usr_[0-9a-f]{20}$/);
        assert.deepEqual(await s.getUser(u.id), u);
      }),
  },
  ...creditCases,
  {
    name: "concurrent credits and debits are atomic: none lost, none overdraws",
    run: (target) =>
      withStore(target, async (s) => {
        const u = await s.createUser({ name: "busy" }, 1000);
        await Promise.all(Array.from({ length: 20 }, () => s.creditUser(u.id, "0.05")));
        assert.equal((await s.getUser(u.id))?.balance, "1.00");
        const debits = await Promise.allSettled([1, 2, 3].map(() => s.creditUser(u.id, "-0.4")));
        assert.deepEqual(debits.map((d) => d.status).sort(), [
          "fulfilled",
          "fulfilled",
          "rejected",
        ]);
        assert.ok(debits.some((d) => d.status === "rejected" && d.reason instanceof RangeError));
        assert.equal((await s.getUser(u.id))?.balance, "0.20");
      }),
  },
  {
    name: "createKey returns the secret once; records keep only a prefix of it",
    run: (target) =>
      withStore(target, async (s) => {
        const u = await s.createUser({ name: "owner" }, 1000);
        const { record, secret } = await s.createKey({ userId: u.id }, 2000);
        assert.match(secret, /^aq-[A-Za-z0-9_-]{43}$/);
        assert.match(record.id, /^key_[0-9a-f]{20}$/);
        assert.deepEqual(record, {
          id: record.id,
          userId: u.id,
          prefix: secret.slice(3, 11),
          zone: "standard",
          policy: null,
          limits: null,
          disabled: false,
          createdAtMs: 2000,
          expiresAtMs: null,
        });
        const text = JSON.stringify([await s.getKey(record.id), await s.listKeys(u.id)]);
        assert.ok(!text.includes(secret.slice(3)) && !text.includes(keySecretHash(secret)));
        const other = await s.createKey({ userId: u.id }, 2000);
        assert.notEqual(other.secret, secret);
      }),
  },
  ...keyOptionCases,
  {
    name: "findKeyBySecretHash returns the key with its current user; unknown hashes are null",
    run: (target) =>
      withStore(target, async (s) => {
        const u = await s.createUser({ name: "owner" }, 1000);
        const a = await s.createKey({ userId: u.id, zone: "premium", limits: { rpm: 5 } }, 2000);
        const b = await s.createKey({ userId: u.id }, 3000);
        await s.creditUser(u.id, "12345678901.123456789012");
        const user = { ...u, balance: "12345678901.123456789012" };
        const found = await s.findKeyBySecretHash(keySecretHash(a.secret));
        assert.deepEqual(found, { ...a.record, user });
        assert.deepEqual(await s.findKeyBySecretHash(keySecretHash(b.secret)), {
          ...b.record,
          user,
        });
        // Disabled keys are still found: the gateway decides what to answer.
        await s.setKeyDisabled(a.record.id, true);
        assert.equal((await s.findKeyBySecretHash(keySecretHash(a.secret)))?.disabled, true);
        assert.equal(await s.findKeyBySecretHash(keySecretHash(a.secret + "x")), null);
        assert.equal(await s.findKeyBySecretHash(keySecretHash(a.secret).toUpperCase()), null);
        assert.equal(await s.findKeyBySecretHash(""), null);
      }),
  },
  {
    name: "createKey for an unknown user is StoreNotFoundError and writes nothing",
    run: (target) =>
      withStore(target, async (s) => {
        await assert.rejects(
          s.createKey({ userId: UNKNOWN_USER, policy: { a: 1 } }, 1000),
          (e) => e instanceof StoreNotFoundError && e.entity === "user" && e.id === UNKNOWN_USER,
        );
        assert.deepEqual(await s.listKeys(UNKNOWN_USER), []);
      }),
  },
  {
    name: "listKeys returns one user's keys ordered by createdAtMs, then id",
    run: (target) =>
      withStore(target, async (s) => {
        const u = await s.createUser({ name: "a" }, 1000);
        const v = await s.createUser({ name: "b" }, 1000);
        const late = (await s.createKey({ userId: u.id }, 3000)).record;
        const early = await Promise.all([1, 2].map(() => s.createKey({ userId: u.id }, 2000)));
        await s.createKey({ userId: v.id }, 1500);
        const sorted = early.map((k) => k.record).sort((x, y) => x.id < y.id ? -1 : 1);
        assert.deepEqual(await s.listKeys(u.id), [...sorted, late]);
        assert.equal((await s.listKeys(v.id)).length, 1);
      }),
  },
  {
    name: "setKeyDisabled toggles the flag and is true for a known id even when unchanged",
    run: (target) =>
      withStore(target, async (s) => {
        const u = await s.createUser({ name: "a" }, 1000);
        const { record } = await s.createKey({ userId: u.id }, 2000);
        assert.equal(await s.setKeyDisabled(record.id, true), true);
        assert.equal(await s.setKeyDisabled(record.id, true), true);
        assert.equal((await s.getKey(record.id))?.disabled, true);
        assert.equal(await s.setKeyDisabled(record.id, false), true);
        assert.deepEqual(await s.getKey(record.id), record);
      }),
  },
  {
    name: "setKeyRouting replaces policy and limits (and the secret lookup sees them)",
    run: (target) =>
      withStore(target, async (s) => {
        const u = await s.createUser({ name: "a" }, 1000);
        const { record, secret } = await s.createKey(
          { userId: u.id, policy: { type: "auto" } },
          2000,
        );
        const policy = { type: "pinned", agents: ["agt_1"], channels: [] };
        assert.equal(await s.setKeyRouting(record.id, policy, { rpm: 60 }), true);
        const after = await s.findKeyBySecretHash(keySecretHash(secret));
        assert.deepEqual([after?.policy, after?.limits], [policy, { rpm: 60 }]);
        assert.equal(await s.setKeyRouting(record.id, null, null), true);
        assert.deepEqual(
          [(await s.getKey(record.id))?.policy, (await s.getKey(record.id))?.limits],
          [null, null],
        );
        assert.equal(await s.setKeyRouting("key_00000000000000000000", null, null), false);
      }),
  },
  {
    name: "unknown ids: getUser/getKey are null, creditUser is StoreNotFoundError, disable false",
    run: (target) =>
      withStore(target, async (s) => {
        assert.equal(await s.getUser(UNKNOWN_USER), null);
        assert.equal(await s.getKey("key_00000000000000000000"), null);
        assert.equal(await s.setKeyDisabled("key_00000000000000000000", true), false);
        await assert.rejects(
          s.creditUser(UNKNOWN_USER, "1"),
          (e) => e instanceof StoreNotFoundError && e.entity === "user",
        );
        // A malformed amount is refused before the user is looked up.
        await assert.rejects(s.creditUser(UNKNOWN_USER, "1e3"), TypeError);
      }),
  },
  {
    name: "users, balances and keys survive closing and reopening the store",
    persistentOnly: true,
    run: async (target) => {
      const before = await withStore(target, async (s) => {
        const u = await s.createUser({ name: "kept" }, 1000);
        await s.creditUser(u.id, "0.000000000007");
        const k = await s.createKey({ userId: u.id, policy: { p: 1 }, expiresAtMs: 9000 }, 2000);
        await s.setKeyDisabled(k.record.id, true);
        return { user: await s.getUser(u.id), key: await s.getKey(k.record.id), secret: k.secret };
      });
      assert.equal(before.user?.balance, "0.000000000007");
      await withStore(target, async (s) => {
        assert.deepEqual(await s.getUser(before.user!.id), before.user);
        assert.deepEqual(await s.findKeyBySecretHash(keySecretHash(before.secret)), {
          ...before.key,
          user: before.user,
        });
      });
    },
  },
];
