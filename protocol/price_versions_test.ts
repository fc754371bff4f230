import assert from "node:assert/strict";
import { encodeControl } from "./frames.ts";
import { LIMITS } from "./limits.ts";
import {
  canonicalJson,
  openPublished,
  PriceVersionError,
  publishedFrom,
  samePrices,
  sha256Text,
} from "./price_versions.ts";
import { costOf, findPrice } from "./pricing.ts";
import {
  BUILT_IN_PRICE_TABLES,
  DEFAULT_PRICE_TABLE as V1,
  DEFAULT_PRICE_TABLE_V2 as V2,
} from "./prices_default.ts";
import { emptyUsage } from "./usage.ts";

Deno.test("canonicalJson: sorted keys at every level, arrays in order, no whitespace", () => {
  assert.equal(
    canonicalJson({ b: [3, { z: 1, a: "é" }], a: { d: null, c: true }, u: undefined }),
    '{"a":{"c":true,"d":null},"b":[3,{"a":"é","z":1}]}',
  );
  assert.throws(() => canonicalJson({ x: NaN }), TypeError);
});

Deno.test("openPublished accepts exactly the published text and refuses every alteration", () => {
  const p = publishedFrom(V1);
  assert.equal(p.sha256, sha256Text(p.text));
  assert.deepEqual(openPublished(1, p.text, p.sha256).table, V1);
  const refused = (version: number, text: string, sha = sha256Text(text)) =>
    assert.throws(() => openPublished(version, text, sha), PriceVersionError);
  refused(1, p.text, "0".repeat(64)); // claimed hash differs
  refused(1, p.text.replace('"input":"5.00"', '"input":"0.50"'), p.sha256); // edited text
  refused(1, JSON.stringify(JSON.parse(p.text), null, 2)); // same table, not canonical
  refused(2, p.text); // the table says version 1
  refused(1, "{not json");
  refused(1, canonicalJson({ ...JSON.parse(p.text), models: { "openai/x": { input: 1 } } }));
});

Deno.test("built-in v1 is frozen: its canonical hash never changes", () => {
  // Prices change only in a new version. If this fails, the v1 rows were edited: revert them
  // and put the change in a new version (agents and stores hold v1 by this hash).
  assert.equal(
    publishedFrom(V1).sha256,
    "3a48cc27cebb937032401bac53f5e4cb6d90a577e05006885b7f4e61da43b038",
  );
});

Deno.test("built-in v2: v1's rows unchanged, plus Azure, Vertex and Bedrock", () => {
  assert.deepEqual(BUILT_IN_PRICE_TABLES.map((t) => t.version), [1, 2]);
  assert.match(V2.source, /2026-11-22/);
  for (const [key, row] of Object.entries(V1.models)) assert.deepEqual(V2.models[key], row, key);
  assert.ok(!samePrices(V1, V2));
  const vendors = new Set(Object.keys(V2.models).map((k) => k.split("/")[0]));
  for (const v of ["openai", "anthropic", "gemini", "vertex", "azure", "bedrock"]) {
    assert.ok(vendors.has(v), v);
  }
  for (const v of ["deepseek", "dashscope"]) assert.ok(vendors.has(v), v);
  // how clients name these models on each platform
  assert.equal(findPrice(V2, "azure", "gpt-6.2-sol-2026-10-01")?.key, "azure/gpt-6.2-sol");
  assert.equal(findPrice(V2, "vertex", "claude-opus-5-5@20260101")?.key, "vertex/claude-opus-5-5");
  assert.equal(findPrice(V2, "vertex", "gemini-3.8-flash")?.key, "vertex/gemini-3.8-flash");
  const regional = findPrice(V2, "bedrock", "us.anthropic.claude-opus-5-5-20260101-v1:0");
  const global = findPrice(V2, "bedrock", "global.anthropic.claude-opus-5-5-20260101-v1:0");
  assert.equal(regional?.key, "bedrock/anthropic.claude-opus-5-5");
  assert.equal(global?.key, "bedrock/global.anthropic.claude-opus-5-5");
  assert.equal(regional?.price.input, "4.40"); // §10: Opus 5.5 at $4.40 / $22 regionally
  assert.equal(regional?.price.output, "22.00");
  assert.deepEqual(global?.price, V1.models["anthropic/claude-opus-5-5"]);
  // the Haiku band scales with its base rates
  const usage = { ...emptyUsage(), inputTokens: 150_000, outputTokens: 1_000 };
  const ctx = { promptTokens: 150_000, completedAtMs: Date.UTC(2026, 11, 1) };
  const haiku = (vendor: string, model: string) =>
    costOf(usage, ctx, findPrice(V2, vendor, model)!.price);
  assert.equal(
    haiku("bedrock", "eu.anthropic.claude-haiku-5-5"),
    haiku("anthropic", "claude-haiku-5-5") * 11n / 10n,
  );
});

Deno.test("every built-in version fits one PRICES frame", () => {
  for (const t of BUILT_IN_PRICE_TABLES) {
    const p = publishedFrom(t);
    const frame = encodeControl({
      type: "prices",
      version: p.version,
      publishedAtMs: p.publishedAtMs,
      sha256: p.sha256,
      latest: true,
      table: p.text,
    });
    assert.ok(frame.length < LIMITS.controlFrameBytesMax / 8, `v${t.version}: ${frame.length}`);
  }
});
