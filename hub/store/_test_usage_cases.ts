// Test-only: conformance cases for storing and reading one usage record (run by
// store_conformance_test.ts); listing and concurrency are in _test_usage_list_cases.ts.
import assert from "node:assert/strict";
import { emptyUsage, USAGE_FIELDS, type UsageRecord } from "../../protocol/usage.ts";
import { type Case, withStore } from "./_test_backends.ts";
import { StoreConflictError, type UsageContext } from "./mod.ts";

export const CONTEXT: UsageContext = {
  keyId: "key_0123456789abcdef0123",
  userId: "usr_0123456789abcdef0123",
  agentId: "agt_0123456789abcdef0123",
  channelId: "ch-1",
};

/** Every usage field set, each to a different value, so a swapped column shows. */
export function record(requestId: string, overrides: Partial<UsageRecord> = {}): UsageRecord {
  const usage = emptyUsage();
  USAGE_FIELDS.forEach((f, i) => usage[f] = 1000 + i);
  return {
    requestId,
    vendor: "openai",
    model: "gpt-4o",
    promptTokens: 2345,
    serviceTier: "default",
    completedAtMs: 1_700_000_000_000,
    usage,
    ...overrides,
  };
}

/** A record and its context, stored and read back unchanged. */
const ROUND_TRIPS: [string, UsageRecord, UsageContext][] = [
  ["every field set", record("req_all"), CONTEXT],
  ["no serviceTier or channelId, zero usage", {
    requestId: "req_min",
    vendor: "anthropic",
    model: "claude-sonnet-4-5",
    promptTokens: 0,
    completedAtMs: 0,
    usage: emptyUsage(),
  }, { keyId: "k", userId: "u", agentId: "a" }],
  ["largest safe counts", {
    ...record("req_max"),
    promptTokens: Number.MAX_SAFE_INTEGER,
    usage: { ...emptyUsage(), inputTokens: Number.MAX_SAFE_INTEGER, audioSeconds: 2 ** 40 },
  }, CONTEXT],
  ["longest texts, Unicode, empty service tier", {
    ...record("r".repeat(128), { model: "mödel ñ 🚰".padEnd(200, "x"), serviceTier: "" }),
    vendor: "v".repeat(40),
  }, { ...CONTEXT, keyId: "k".repeat(40), channelId: "c".repeat(80) }],
];

const roundTripCases: Case[] = ROUND_TRIPS.map(([name, r, context]) => ({
  name: `usage round trip: ${name}`,
  run: (target) =>
    withStore(target, async (s) => {
      assert.equal(await s.recordUsage(r, context), "inserted");
      assert.deepEqual(await s.getUsage(r.requestId), { ...r, ...context });
      assert.equal(await s.recordUsage(structuredClone(r), { ...context }), "duplicate");
      assert.deepEqual(await s.getUsage(r.requestId), { ...r, ...context });
    }),
}));

/** Replays of `record("req_1")` with CONTEXT that differ in one thing: each must conflict. */
const CONFLICTS: [string, Partial<UsageRecord>, Partial<UsageContext>?][] = [
  ["model", { model: "gpt-4o-mini" }],
  ["vendor", { vendor: "azure" }],
  ["promptTokens", { promptTokens: 2346 }],
  ["completedAtMs", { completedAtMs: 1_700_000_000_001 }],
  ["usage.outputTokens", { usage: { ...record("x").usage, outputTokens: 0 } }],
  ["usage.audioSeconds (the last field)", { usage: { ...record("x").usage, audioSeconds: 1 } }],
  ["serviceTier", { serviceTier: "flex" }],
  ["serviceTier (now absent)", { serviceTier: undefined }],
  ["serviceTier (now empty)", { serviceTier: "" }],
  ["keyId", {}, { keyId: "key_other" }],
  ["userId", {}, { userId: "usr_other" }],
  ["agentId", {}, { agentId: "agt_other" }],
  ["channelId", {}, { channelId: "ch-2" }],
  ["channelId (now absent)", {}, { channelId: undefined }],
];

const conflictCases: Case[] = CONFLICTS.map(([what, change, contextChange]) => ({
  name: `usage replay differing in ${what} is a StoreConflictError; nothing changes`,
  run: (target) =>
    withStore(target, async (s) => {
      const original = record("req_1");
      assert.equal(await s.recordUsage(original, CONTEXT), "inserted");
      await assert.rejects(
        s.recordUsage({ ...original, ...change }, { ...CONTEXT, ...contextChange }),
        (e) => e instanceof StoreConflictError && e.field === "requestId",
      );
      assert.deepEqual(await s.getUsage("req_1"), { ...original, ...CONTEXT });
      assert.equal(await s.recordUsage(original, CONTEXT), "duplicate");
    }),
}));

/** Records `recordUsage` must refuse with RangeError before writing anything. */
const INVALID: [string, UsageRecord, UsageContext?][] = [
  ["a negative count", record("bad", { usage: { ...emptyUsage(), outputTokens: -1 } })],
  ["a fractional count", record("bad", { usage: { ...emptyUsage(), inputTokens: 1.5 } })],
  ["a NaN count", record("bad", { usage: { ...emptyUsage(), audioSeconds: NaN } })],
  ["an unsafe count", record("bad", { usage: { ...emptyUsage(), inputTokens: 2 ** 53 } })],
  ["an infinite promptTokens", record("bad", { promptTokens: Infinity })],
  ["a negative promptTokens", record("bad", { promptTokens: -5 })],
  ["a negative completedAtMs", record("bad", { completedAtMs: -1 })],
  ["a count given as text", record("bad", { promptTokens: "5" as unknown as number })],
  ["a missing usage field", record("bad", { usage: { inputTokens: 1 } as UsageRecord["usage"] })],
  ["an empty requestId", record("")],
  ["a 129-char requestId", record("r".repeat(129))],
  ["a 201-char model", record("bad", { model: "m".repeat(201) })],
  ["a 41-char keyId", record("bad"), { ...CONTEXT, keyId: "k".repeat(41) }],
];

const invalidCases: Case[] = INVALID.map(([what, r, context]) => ({
  name: `recordUsage with ${what} is a RangeError and writes nothing`,
  run: (target) =>
    withStore(target, async (s) => {
      await assert.rejects(s.recordUsage(r, context ?? CONTEXT), RangeError);
      assert.deepEqual(await s.listUsage({}), []);
    }),
}));

export const USAGE_CASES: Case[] = [
  ...roundTripCases,
  ...conflictCases,
  ...invalidCases,
  {
    name: "getUsage of an unknown request id is null",
    run: (target) => withStore(target, async (s) => assert.equal(await s.getUsage("req_x"), null)),
  },
  {
    name: "request ids are case-sensitive",
    run: (target) =>
      withStore(target, async (s) => {
        assert.equal(await s.recordUsage(record("req_a"), CONTEXT), "inserted");
        assert.equal(await s.recordUsage(record("REQ_A", { model: "other" }), CONTEXT), "inserted");
        assert.equal((await s.getUsage("REQ_A"))?.model, "other");
        assert.equal((await s.getUsage("req_a"))?.model, "gpt-4o");
      }),
  },
  {
    name: "usage records never hold properties beyond their type (no bodies)",
    run: (target) =>
      withStore(target, async (s) => {
        const r = record("req_body");
        const withBody = { ...r, body: "secret prompt", usage: { ...r.usage, raw: 5 } };
        assert.equal(
          await s.recordUsage(withBody, { ...CONTEXT, body: "x" } as UsageContext),
          "inserted",
        );
        assert.deepEqual(await s.getUsage("req_body"), { ...r, ...CONTEXT });
        assert.equal(await s.recordUsage(r, CONTEXT), "duplicate");
      }),
  },
  {
    name: "usage records survive closing and reopening the store",
    persistentOnly: true,
    run: async (target) => {
      const { serviceTier: _, ...r } = record("req_kept");
      await withStore(
        target,
        async (s) => assert.equal(await s.recordUsage(r, CONTEXT), "inserted"),
      );
      await withStore(target, async (s) => {
        assert.deepEqual(await s.getUsage("req_kept"), { ...r, ...CONTEXT });
        assert.equal(await s.recordUsage(r, CONTEXT), "duplicate");
      });
    },
  },
  {
    name: "usage batch: one transaction, one outcome per item, a refused item blocks none",
    run: (target) =>
      withStore(target, async (s) => {
        await s.recordUsage(record("req_b_old"), CONTEXT);
        const outcomes = await s.recordUsageBatch([
          { record: record("req_b_1"), context: CONTEXT },
          { record: record("req_b_old"), context: CONTEXT },
          { record: record("req_b_old", { model: "other" }), context: CONTEXT },
          { record: record("req_b_bad", { promptTokens: -1 }), context: CONTEXT },
          { record: record("req_b_2"), context: CONTEXT },
        ]);
        assert.equal(outcomes[0], "inserted");
        assert.equal(outcomes[1], "duplicate");
        assert.ok(outcomes[2] instanceof StoreConflictError);
        assert.ok(outcomes[3] instanceof RangeError);
        assert.equal(outcomes[4], "inserted");
        assert.deepEqual(await s.getUsage("req_b_2"), { ...record("req_b_2"), ...CONTEXT });
        assert.equal(
          (await s.getUsage("req_b_old"))?.model,
          "gpt-4o",
          "the conflicting replay changed nothing",
        );
        assert.equal(await s.getUsage("req_b_bad"), null);
        assert.deepEqual(await s.recordUsageBatch([]), []);
      }),
  },
];
