// Test-only: conformance cases for price versions (run by store_conformance_test.ts).
import assert from "node:assert/strict";
import { sha256Text } from "../../protocol/price_versions.ts";
import { type Case, withStore } from "./_test_backends.ts";
import { StoreConflictError } from "./mod.ts";

const v = (version: number, canonical: string, publishedAtMs = 1000 + version) => ({
  version,
  publishedAtMs,
  canonical,
});
const conflict = (e: unknown) => e instanceof StoreConflictError && e.field === "version";

export const PRICE_CASES: Case[] = [
  {
    name: "prices: an empty store has no version",
    run: (target) =>
      withStore(target, async (s) => {
        assert.equal(await s.latestPriceVersion(), 0);
        assert.deepEqual(await s.listPriceVersions(), []);
        assert.equal(await s.getPriceVersion(1), null);
      }),
  },
  {
    name: "prices: publish stores text and hash; an identical replay is a duplicate",
    run: (target) =>
      withStore(target, async (s) => {
        const text = '{"models":{"openai/gpt-x":{"input":"1.25"}},"source":"Ünïcode 🚰"}';
        const first = await s.publishPriceVersion(v(1, text));
        assert.equal(first.outcome, "inserted");
        assert.deepEqual(first.record, { ...v(1, text), sha256: sha256Text(text) });
        assert.deepEqual(await s.getPriceVersion(1), first.record);
        const again = await s.publishPriceVersion(v(1, text));
        assert.deepEqual(again, { outcome: "duplicate", record: first.record });
        assert.equal(await s.latestPriceVersion(), 1);
      }),
  },
  {
    name: "prices: a different table or time under a taken version is a conflict, nothing changes",
    run: (target) =>
      withStore(target, async (s) => {
        const stored = (await s.publishPriceVersion(v(3, '{"a":"1"}'))).record;
        await assert.rejects(s.publishPriceVersion(v(3, '{"a":"2"}')), conflict);
        await assert.rejects(s.publishPriceVersion(v(3, '{"a":"1"}', 99)), conflict);
        assert.deepEqual(await s.getPriceVersion(3), stored);
        assert.deepEqual(await s.listPriceVersions(), [
          { version: 3, publishedAtMs: 1003, sha256: stored.sha256 },
        ]);
      }),
  },
  {
    name: "prices: versions list ascending; latest is the highest; gaps allowed",
    run: (target) =>
      withStore(target, async (s) => {
        for (const n of [2, 10, 1]) await s.publishPriceVersion(v(n, `{"v":${n}}`));
        assert.equal(await s.latestPriceVersion(), 10);
        assert.deepEqual((await s.listPriceVersions()).map((r) => r.version), [1, 2, 10]);
        assert.equal(await s.getPriceVersion(5), null);
      }),
  },
  {
    name: "prices: malformed arguments are RangeErrors and write nothing",
    run: (target) =>
      withStore(target, async (s) => {
        for (const bad of [v(0, "{}"), v(1.5, "{}"), v(-1, "{}"), v(1, ""), v(1, "{}", -5)]) {
          await assert.rejects(s.publishPriceVersion(bad), RangeError, JSON.stringify(bad));
        }
        await assert.rejects(
          s.publishPriceVersion(v(1, "x".repeat(4 * 1024 * 1024 + 1))),
          RangeError,
        );
        assert.deepEqual(await s.listPriceVersions(), []);
      }),
  },
  {
    name: "prices: a 1 MiB table round-trips exactly",
    run: (target) =>
      withStore(target, async (s) => {
        const text = JSON.stringify({ big: "é".repeat(1024 * 1024) });
        await s.publishPriceVersion(v(1, text));
        const got = await s.getPriceVersion(1);
        assert.equal(got?.canonical, text);
        assert.equal(got?.sha256, sha256Text(text));
      }),
  },
  {
    name: "prices: versions survive reopening the store",
    persistentOnly: true,
    run: async (target) => {
      const rec = await withStore(
        target,
        async (s) => (await s.publishPriceVersion(v(1, "{}"))).record,
      );
      await withStore(target, async (s) => assert.deepEqual(await s.getPriceVersion(1), rec));
    },
  },
  {
    name: "prices: stores racing to publish one version: one inserts, the others see a duplicate",
    engineOnly: "mysql",
    run: async (target) => {
      const stores = await Promise.all(Array.from({ length: 4 }, () => target.open()));
      try {
        const outcomes = await Promise.all(
          stores.map((s) => s.publishPriceVersion(v(1, '{"same":true}'))),
        );
        assert.deepEqual(outcomes.map((o) => o.outcome).sort(), [
          "duplicate",
          "duplicate",
          "duplicate",
          "inserted",
        ]);
        // …and racing with different tables: exactly one wins, the others conflict.
        const raced = await Promise.allSettled(
          stores.map((s, i) => s.publishPriceVersion(v(2, `{"n":${i}}`))),
        );
        assert.equal(raced.filter((r) => r.status === "fulfilled").length, 1);
        assert.ok(raced.every((r) => r.status === "fulfilled" || conflict(r.reason)));
      } finally {
        await Promise.all(stores.map((s) => s.close()));
      }
    },
  },
];
