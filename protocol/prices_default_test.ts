import assert from "node:assert/strict";
import { formatUsd } from "./money.ts";
import { costOf, findPrice, validatePriceTable } from "./pricing.ts";
import { DEFAULT_PRICE_TABLE as T } from "./prices_default.ts";
import { emptyUsage } from "./usage.ts";

Deno.test("default table v1 validates (also after a JSON round trip) and is frozen", () => {
  assert.equal(T.version, 1);
  assert.match(T.source, /vendor-wire\.md §10/);
  assert.match(T.source, /2026-1\d/);
  assert.deepEqual(validatePriceTable(JSON.parse(JSON.stringify(T))), T);
  assert.ok(Object.isFrozen(T) && Object.isFrozen(T.models["openai/gpt-6.2-sol"]!.tiers![0]!));
  assert.throws(() => {
    (T.models as Record<string, unknown>)["openai/free"] = {};
  }, TypeError);
});

Deno.test("default table covers every supported vendor's flagships", () => {
  // vendor-wire.md §10 lists these five; Azure (no list prices there) is not in v1.
  for (const v of ["openai", "anthropic", "gemini", "deepseek", "dashscope"]) {
    assert.ok(Object.keys(T.models).some((k) => k.startsWith(`${v}/`)), v);
  }
  for (
    const [vendor, model] of [
      ["openai", "gpt-6.2-sol"],
      ["anthropic", "claude-opus-5-5"],
      ["gemini", "gemini-3.5-flash"],
      ["deepseek", "deepseek-v4-pro"],
      ["dashscope", "qwen3.7-plus"],
    ]
  ) assert.ok(findPrice(T, vendor!, model!), `${vendor}/${model}`);
});

Deno.test("default table: derived GPT-6 long-prompt rows and a positive cost everywhere", () => {
  const astra = T.models["openai/gpt-6-astra"]!.tiers![0]!.rates;
  assert.deepEqual([astra.input, astra.cachedInput, astra.output], ["20.00", "2.00", "75.00"]);
  const luna = T.models["openai/gpt-6-luna"]!.tiers![0]!.rates;
  assert.deepEqual([luna.input, luna.cacheWrite5m, luna.output], ["0.20", "0.25", "0.75"]);
  const usage = { ...emptyUsage(), inputTokens: 1000, outputTokens: 1000 };
  for (const [key, price] of Object.entries(T.models)) {
    const cost = costOf(
      usage,
      { promptTokens: 1000, completedAtMs: Date.UTC(2026, 10, 20) },
      price,
    );
    assert.ok(cost > 0n, key);
    assert.equal(formatUsd(cost), formatUsd(cost), key);
  }
});
