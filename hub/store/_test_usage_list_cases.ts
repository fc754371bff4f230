// Test-only: conformance cases for listUsage and concurrent recordUsage calls (run by
// store_conformance_test.ts).
import assert from "node:assert/strict";
import type { UsageRecord } from "../../protocol/usage.ts";
import { CONTEXT, record } from "./_test_usage_cases.ts";
import { type Case, withStore } from "./_test_backends.ts";
import { type HubStore, StoreConflictError, type UsageContext, type UsageFilter } from "./mod.ts";

type Stored = UsageRecord & UsageContext;

/** What listUsage must return from `rows`: the reference for every filter below. */
function expected(rows: Stored[], f: UsageFilter): Stored[] {
  return rows
    .filter((r) =>
      (f.keyId === undefined || r.keyId === f.keyId) &&
      (f.userId === undefined || r.userId === f.userId) &&
      (f.agentId === undefined || r.agentId === f.agentId) &&
      (f.sinceMs === undefined || r.completedAtMs >= f.sinceMs)
    )
    .sort((a, b) => b.completedAtMs - a.completedAtMs || (a.requestId < b.requestId ? -1 : 1))
    .slice(0, Math.min(f.limit ?? 100, 1000));
}

const FILTERS: UsageFilter[] = [
  {},
  { keyId: "key_a" },
  { userId: "usr_b" },
  { agentId: "agt_a" },
  { keyId: "key_a", agentId: "agt_b" },
  { keyId: "key_b", userId: "usr_a" },
  { sinceMs: 3000 },
  { sinceMs: 3001 },
  { userId: "usr_a", sinceMs: 2000, limit: 2 },
  { limit: 1 },
  { limit: 5000 },
  { keyId: "key_none" },
  { keyId: "KEY_A" },
];

/** 24 records over 2 keys × 2 users × 2 agents, 4 distinct times, so ties need the id order. */
async function seed(s: HubStore): Promise<Stored[]> {
  const rows: Stored[] = [];
  for (let i = 0; i < 24; i++) {
    const context = {
      keyId: `key_${"ab"[i % 2]}`,
      userId: `usr_${"ab"[Math.floor(i / 2) % 2]}`,
      agentId: `agt_${"ab"[Math.floor(i / 4) % 2]}`,
    };
    const r = record(`req_${String((i * 7) % 24).padStart(2, "0")}`, {
      completedAtMs: 1000 * (1 + (i % 4)),
    });
    assert.equal(await s.recordUsage(r, context), "inserted");
    rows.push({ ...r, ...context });
  }
  return rows;
}

export const USAGE_LIST_CASES: Case[] = [
  {
    name: "listUsage filters (AND), orders newest first then by requestId, and limits",
    run: (target) =>
      withStore(target, async (s) => {
        const rows = await seed(s);
        for (const filter of FILTERS) {
          assert.deepEqual(
            await s.listUsage(filter),
            expected(rows, filter),
            JSON.stringify(filter),
          );
        }
      }),
  },
  {
    name: "listUsage returns 100 by default, caps at 1000, and refuses a bad limit or sinceMs",
    run: (target) =>
      withStore(target, async (s) => {
        const ids = Array.from({ length: 1001 }, (_, i) => `req_${String(i).padStart(4, "0")}`);
        for (let i = 0; i < ids.length; i += 50) {
          await Promise.all(ids.slice(i, i + 50).map((id) => s.recordUsage(record(id), CONTEXT)));
        }
        assert.equal((await s.listUsage({})).length, 100);
        const all = await s.listUsage({ limit: 5000 });
        assert.deepEqual(all.map((r) => r.requestId), ids.slice(0, 1000));
        for (const bad of [{ limit: 0 }, { limit: -1 }, { limit: 1.5 }, { sinceMs: NaN }]) {
          await assert.rejects(s.listUsage(bad), RangeError, JSON.stringify(bad));
        }
      }),
  },
  {
    name: "50 concurrent recordUsage calls with distinct ids all land",
    run: (target) =>
      withStore(target, async (s) => {
        const records = Array.from({ length: 50 }, (_, i) => record(`req_c${i}`));
        const results = await Promise.all(records.map((r) => s.recordUsage(r, CONTEXT)));
        assert.deepEqual(results, Array(50).fill("inserted"));
        const listed = await s.listUsage({ limit: 1000 });
        assert.equal(listed.length, 50);
        for (const r of records) {
          assert.deepEqual(await s.getUsage(r.requestId), { ...r, ...CONTEXT });
        }
      }),
  },
  {
    name: "concurrent replays of one request id: exactly one inserted, same-content ones duplicate",
    run: (target) =>
      withStore(target, async (s) => {
        const results = await Promise.all(
          Array.from({ length: 20 }, () => s.recordUsage(record("req_same"), CONTEXT)),
        );
        assert.deepEqual(results.sort(), [...Array(19).fill("duplicate"), "inserted"]);
        // Different contents racing for one id: one wins, every other one conflicts.
        const rivals = Array.from(
          { length: 10 },
          (_, i) => record("req_race", { promptTokens: i }),
        );
        const outcomes = await Promise.allSettled(rivals.map((r) => s.recordUsage(r, CONTEXT)));
        const won = outcomes.flatMap((o, i) => o.status === "fulfilled" ? [rivals[i]!] : []);
        assert.equal(won.length, 1);
        assert.ok(
          outcomes.every((o) => o.status === "fulfilled" || o.reason instanceof StoreConflictError),
        );
        assert.deepEqual(await s.getUsage("req_race"), { ...won[0]!, ...CONTEXT });
      }),
  },
];
