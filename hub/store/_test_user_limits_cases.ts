// Test-only: conformance cases for per-user limits and migration 4 that added them (run by
// store_conformance_test.ts).
import assert from "node:assert/strict";
import { type Case, type Target, withStore } from "./_test_backends.ts";
import { MIGRATIONS, SCHEMA_MIGRATIONS_DDL } from "./migrations.ts";
import { type HubStore, keySecretHash, LATEST_VERSION, type UserRecord } from "./mod.ts";

const UNKNOWN_USER = "usr_00000000000000000000";

/** Values `setUserLimits` must store and return as given (validation is the admin API's). */
const LIMITS_TABLE: [string, unknown][] = [
  ["rpm only", { rpm: 60 }],
  ["every limit", { rpm: 60, tpm: 100_000, concurrency: 4 }],
  ["an empty object", {}],
  ["any JSON value", ["raw", 1.5, null, { note: "Ägent ñ 🚰" }]],
  ["a 100 kB value (beyond MySQL TEXT)", { note: "x".repeat(100_000) }],
];

/** A user with two keys; returns the user and the secrets. */
async function userWithKeys(s: HubStore): Promise<{ user: UserRecord; secrets: string[] }> {
  const user = await s.createUser({ name: "shared" }, 1000);
  const a = await s.createKey({ userId: user.id, limits: { rpm: 5 } }, 2000);
  const b = await s.createKey({ userId: user.id }, 3000);
  return { user, secrets: [a.secret, b.secret] };
}

/** What the gateway sees of the user behind each secret. */
async function usersBehind(s: HubStore, secrets: string[]): Promise<(UserRecord | undefined)[]> {
  return await Promise.all(
    secrets.map(async (secret) => (await s.findKeyBySecretHash(keySecretHash(secret)))?.user),
  );
}

const roundTripCases: Case[] = LIMITS_TABLE.map(([label, limits]) => ({
  name: `setUserLimits round-trips ${label} through getUser and findKeyBySecretHash`,
  run: (target) =>
    withStore(target, async (s) => {
      const { user, secrets } = await userWithKeys(s);
      const other = await s.createUser({ name: "other" }, 1000);
      assert.equal(await s.setUserLimits(user.id, limits), true);
      const expected = { ...user, limits };
      assert.deepEqual(await s.getUser(user.id), expected);
      // Every key of the user sees the same user limits; the keys' own limits are untouched.
      assert.deepEqual(await usersBehind(s, secrets), [expected, expected]);
      const found = await s.findKeyBySecretHash(keySecretHash(secrets[0]!));
      assert.deepEqual(found?.limits, { rpm: 5 });
      assert.deepEqual(await s.getUser(other.id), other);
      // Setting the same value again is still a known id; null clears it.
      assert.equal(await s.setUserLimits(user.id, limits), true);
      assert.equal(await s.setUserLimits(user.id, null), true);
      assert.deepEqual(await s.getUser(user.id), user);
      assert.deepEqual(await usersBehind(s, secrets), [user, user]);
    }),
}));

/** The schema and bookkeeping of a database last migrated to `version`, as raw statements. */
function schemaAt(engine: Target["engine"], version: number): string[] {
  const applied = MIGRATIONS.filter((m) => m.version <= version);
  return [
    SCHEMA_MIGRATIONS_DDL[engine],
    ...applied.flatMap((m) => m[engine]),
    ...applied.map((m) =>
      `INSERT INTO schema_migrations (version, name, applied_at_ms)
       VALUES (${m.version}, '${m.name}', 1)`
    ),
  ];
}

/** Rows written by a version-3 hub: two users (one disabled) and a key with its own limits. */
const OLD_SECRET = "aq-written-by-a-version-3-hub";
const OLD_ROWS = [
  `INSERT INTO users (id, name, balance, disabled, created_at_ms) VALUES
     ('usr_00000000000000000001', 'Ägent ñ 🚰', '12.50', 0, 1000),
     ('usr_00000000000000000002', 'off', '0.000000000007', 1, 2000)`,
  `INSERT INTO virtual_keys (id, user_id, secret_hash, prefix, zone, policy, limits, disabled,
     created_at_ms, expires_at_ms)
   VALUES ('key_00000000000000000001', 'usr_00000000000000000001',
     '${keySecretHash(OLD_SECRET)}', 'written-', 'standard', NULL, '{"rpm":5}', 0, 1500, NULL)`,
];
const OLD_USERS: UserRecord[] = [
  {
    id: "usr_00000000000000000001",
    name: "Ägent ñ 🚰",
    balance: "12.50",
    createdAtMs: 1000,
    disabled: false,
    limits: null,
  },
  {
    id: "usr_00000000000000000002",
    name: "off",
    balance: "0.000000000007",
    createdAtMs: 2000,
    disabled: true,
    limits: null,
  },
];

/** Opens a store on a database prepared at version 3 and checks the old rows came through. */
async function assertMigratedFromV3(target: Target): Promise<void> {
  await withStore(target, async (s) => {
    assert.equal(await s.schemaVersion(), LATEST_VERSION);
    for (const u of OLD_USERS) assert.deepEqual(await s.getUser(u.id), u);
    const found = await s.findKeyBySecretHash(keySecretHash(OLD_SECRET));
    assert.deepEqual([found?.id, found?.limits, found?.user], [
      "key_00000000000000000001",
      { rpm: 5 },
      OLD_USERS[0],
    ]);
    assert.equal(await s.setUserLimits(OLD_USERS[0]!.id, { concurrency: 2 }), true);
    const after = await s.findKeyBySecretHash(keySecretHash(OLD_SECRET));
    assert.deepEqual(after?.user, { ...OLD_USERS[0], limits: { concurrency: 2 } });
  });
}

export const USER_LIMITS_CASES: Case[] = [
  {
    name: "users start with null limits, seen by getUser and findKeyBySecretHash",
    run: (target) =>
      withStore(target, async (s) => {
        const { user, secrets } = await userWithKeys(s);
        assert.equal(user.limits, null);
        assert.deepEqual(await s.getUser(user.id), user);
        assert.deepEqual(await usersBehind(s, secrets), [user, user]);
      }),
  },
  ...roundTripCases,
  {
    name: "setUserLimits for an unknown id is false and creates nothing",
    run: (target) =>
      withStore(target, async (s) => {
        assert.equal(await s.setUserLimits(UNKNOWN_USER, { rpm: 1 }), false);
        assert.equal(await s.setUserLimits(UNKNOWN_USER, null), false);
        assert.equal(await s.getUser(UNKNOWN_USER), null);
      }),
  },
  {
    name: "user limits survive closing and reopening the store",
    persistentOnly: true,
    run: async (target) => {
      const before = await withStore(target, async (s) => {
        const { user, secrets } = await userWithKeys(s);
        await s.setUserLimits(user.id, { rpm: 60, tpm: 100_000, concurrency: 4 });
        await s.creditUser(user.id, "1.5");
        return { user: await s.getUser(user.id), secrets };
      });
      assert.deepEqual(before.user?.limits, { rpm: 60, tpm: 100_000, concurrency: 4 });
      await withStore(target, async (s) => {
        assert.deepEqual(await s.getUser(before.user!.id), before.user);
        assert.deepEqual(await usersBehind(s, before.secrets), [before.user, before.user]);
      });
    },
  },
  {
    name: "migrating a version-3 database with users keeps them, with null limits",
    persistentOnly: true,
    run: async (target) => {
      await target.exec([...schemaAt(target.engine, 3), ...OLD_ROWS]);
      await assertMigratedFromV3(target);
    },
  },
  {
    // MySQL DDL commits implicitly: a hub that crashed after migration 4's ALTER but before its
    // bookkeeping row leaves the column in place at version 3. The re-run must not fail.
    name: "migration 4 re-runs harmlessly when its column already exists (MySQL crash)",
    persistentOnly: true,
    engineOnly: "mysql",
    run: async (target) => {
      await target.exec([
        ...schemaAt(target.engine, 3),
        ...OLD_ROWS,
        "ALTER TABLE users ADD COLUMN limits MEDIUMTEXT NULL",
      ]);
      await assertMigratedFromV3(target);
    },
  },
];
