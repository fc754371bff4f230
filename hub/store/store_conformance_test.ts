// One table of behaviours every HubStore must show, run against each backend in _test_backends.ts.
// Agent cases live here; user, money and key cases in _test_account_cases.ts; user limits and
// the migration that added them in _test_user_limits_cases.ts.
import assert from "node:assert/strict";
import type { Capabilities } from "../../protocol/capabilities.ts";
import { ACCOUNT_CASES } from "./_test_account_cases.ts";
import { AWS_CREDENTIAL_CASES } from "./_test_aws_credential_cases.ts";
import { BILLING_CASES } from "./_test_billing_cases.ts";
import { BILLING_CONCURRENCY_CASES } from "./_test_billing_concurrency_cases.ts";
import { KEY_SPEND_CASES } from "./_test_key_spend_cases.ts";
import { SETTLE_BATCH_CASES } from "./_test_settle_batch_cases.ts";
import { USAGE_CASES } from "./_test_usage_cases.ts";
import { USAGE_LIST_CASES } from "./_test_usage_list_cases.ts";
import { USER_LIMITS_CASES } from "./_test_user_limits_cases.ts";
import { PRICE_CASES } from "./_test_price_cases.ts";
import { LEDGER_SYNC_CASES } from "./_test_ledger_sync_cases.ts";
import {
  type Backend,
  type Case,
  mariadb,
  sqliteFile,
  sqliteMemory,
  withStore,
} from "./_test_backends.ts";
import { type AgentRecord, LATEST_VERSION, type NewAgent, StoreConflictError } from "./mod.ts";

let keySeq = 0;
/** A valid-looking agent with a unique public key (the store does not validate; the API does). */
function newAgent(overrides: Partial<NewAgent> = {}): NewAgent {
  const n = ++keySeq;
  const key = `ed25519:${"A".repeat(39)}${String(n).padStart(4, "0")}`;
  return { name: `agent ${n}`, publicKey: key, keyId: `kid_${n}`, tier: 2, ...overrides };
}

const CAPS: Capabilities = {
  agentVersion: "1.2.3-β 🚰",
  channels: [
    { id: "ch1", vendor: "openai", models: ["gpt-4o", "gpt-4o-mini"], rpm: 500, tpm: 200000 },
    { id: "ch2", vendor: "anthropic", models: [], rpm: 0, tpm: 0 },
  ],
};

const byCreation = (a: AgentRecord, b: AgentRecord) =>
  a.createdAtMs - b.createdAtMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

const CASES: Case[] = [
  {
    name: "migrates to the latest version; opening again applies nothing and does not fail",
    run: async (target) => {
      const first = await target.open();
      try {
        assert.equal(await first.schemaVersion(), LATEST_VERSION);
        await withStore(target, async (s) => assert.equal(await s.schemaVersion(), LATEST_VERSION));
      } finally {
        await first.close();
      }
      await withStore(target, async (s) => assert.equal(await s.schemaVersion(), LATEST_VERSION));
    },
  },
  {
    name: "stores started at the same moment on one database apply each migration once",
    persistentOnly: true,
    run: async (target) => {
      assert.deepEqual(await target.openConcurrently(3), [
        LATEST_VERSION,
        LATEST_VERSION,
        LATEST_VERSION,
      ]);
      await withStore(target, async (s) => {
        await s.createAgent(newAgent(), 1);
        assert.equal((await s.listAgents()).length, 1);
      });
    },
  },
  {
    name: "creates, gets and lists agents (ordered by createdAtMs, then id)",
    run: (target) =>
      withStore(target, async (s) => {
        const late = await s.createAgent(newAgent({ name: "Ägent ñ 🚰", tier: 0 }), 2000);
        const early1 = await s.createAgent(newAgent({ tier: 1 }), 1000);
        const early2 = await s.createAgent(newAgent(), 1000);
        for (const a of [late, early1, early2]) {
          assert.match(a.id, /^agt_[0-9a-f]{20}$/);
          assert.equal(a.disabled, false);
          assert.equal(a.lastSeenAtMs, null);
          assert.equal(a.capabilities, null);
          assert.deepEqual(await s.getAgent(a.id), a);
        }
        assert.equal(late.name, "Ägent ñ 🚰");
        assert.equal(late.createdAtMs, 2000);
        assert.deepEqual(await s.listAgents(), [late, early1, early2].sort(byCreation));
      }),
  },
  {
    name: "a duplicate public key is a StoreConflictError on publicKey and writes nothing",
    run: (target) =>
      withStore(target, async (s) => {
        const a = await s.createAgent(newAgent(), 1000);
        await assert.rejects(
          s.createAgent({ ...newAgent(), publicKey: a.publicKey, keyId: a.keyId }, 2000),
          (e) => e instanceof StoreConflictError && e.field === "publicKey",
        );
        assert.deepEqual(await s.listAgents(), [a]);
        // base64url is case-sensitive: keys differing only in case are different keys.
        const b = await s.createAgent(newAgent({ publicKey: a.publicKey.toLowerCase() }), 3000);
        assert.deepEqual(await s.listAgents(), [a, b]);
      }),
  },
  {
    name: "recordAgentSeen sets lastSeenAtMs and round-trips capabilities",
    run: (target) =>
      withStore(target, async (s) => {
        const a = await s.createAgent(newAgent(), 1000);
        const other = await s.createAgent(newAgent(), 1000);
        await s.recordAgentSeen(a.id, { atMs: 5000, capabilities: CAPS });
        assert.deepEqual(await s.getAgent(a.id), { ...a, lastSeenAtMs: 5000, capabilities: CAPS });
        // Without capabilities only the time moves; the stored capabilities stay.
        await s.recordAgentSeen(a.id, { atMs: 6000 });
        assert.deepEqual(await s.getAgent(a.id), { ...a, lastSeenAtMs: 6000, capabilities: CAPS });
        const fewer: Capabilities = { agentVersion: "1.2.4", channels: [] };
        await s.recordAgentSeen(a.id, { atMs: 7000, capabilities: fewer });
        assert.deepEqual((await s.getAgent(a.id))?.capabilities, fewer);
        assert.deepEqual(await s.getAgent(other.id), other);
      }),
  },
  {
    name: "unknown ids: getAgent is null, setAgentDisabled is false, recordAgentSeen is a no-op",
    run: (target) =>
      withStore(target, async (s) => {
        const unknown = "agt_00000000000000000000";
        assert.equal(await s.getAgent(unknown), null);
        assert.equal(await s.setAgentDisabled(unknown, true), false);
        await s.recordAgentSeen(unknown, { atMs: 1, capabilities: CAPS });
        assert.deepEqual(await s.listAgents(), []);
      }),
  },
  {
    name: "setAgentDisabled toggles the flag and is true for a known id even when unchanged",
    run: (target) =>
      withStore(target, async (s) => {
        const a = await s.createAgent(newAgent(), 1000);
        assert.equal(await s.setAgentDisabled(a.id, true), true);
        assert.equal((await s.getAgent(a.id))?.disabled, true);
        assert.equal(await s.setAgentDisabled(a.id, true), true);
        assert.equal(await s.setAgentDisabled(a.id, false), true);
        assert.deepEqual(await s.getAgent(a.id), a);
      }),
  },
  {
    name: "values survive closing and reopening the store",
    persistentOnly: true,
    run: async (target) => {
      const before = await withStore(target, async (s) => {
        const a = await s.createAgent(newAgent({ tier: 1 }), 1000);
        const b = await s.createAgent(newAgent(), 2000);
        await s.recordAgentSeen(a.id, { atMs: 3000, capabilities: CAPS });
        await s.setAgentDisabled(b.id, true);
        return await s.listAgents();
      });
      assert.deepEqual(before.map((a) => [a.lastSeenAtMs, a.disabled]), [[3000, false], [
        null,
        true,
      ]]);
      await withStore(target, async (s) => assert.deepEqual(await s.listAgents(), before));
    },
  },
];

function conformance(backend: Backend): void {
  Deno.test(`store conformance: ${backend.name}`, async (t) => {
    const engine = await backend.start();
    try {
      const cases = [
        ...CASES,
        ...ACCOUNT_CASES,
        ...AWS_CREDENTIAL_CASES,
        ...USER_LIMITS_CASES,
        ...USAGE_CASES,
        ...USAGE_LIST_CASES,
        ...BILLING_CASES,
        ...BILLING_CONCURRENCY_CASES,
        ...KEY_SPEND_CASES,
        ...SETTLE_BATCH_CASES,
        ...PRICE_CASES,
        ...LEDGER_SYNC_CASES,
      ];
      for (const c of cases) {
        if (c.persistentOnly && !backend.persistent) continue;
        if (c.engineOnly && c.engineOnly !== backend.engine) continue;
        await t.step(c.name, async () => {
          const target = await engine.fresh();
          try {
            await c.run(target);
          } finally {
            await target.dispose();
          }
        });
      }
    } finally {
      await engine.stop();
    }
  });
}

for (const backend of [sqliteMemory, sqliteFile, mariadb]) conformance(backend);
