import assert from "node:assert/strict";
import { divRoundHalfEven, formatUsd, type Money, parseUsd } from "./money.ts";
import {
  charges,
  costLines,
  costOf,
  findPrice,
  type ModelPrice,
  type PricingContext,
  validatePriceTable,
  zoneMultiplier,
} from "./pricing.ts";
import { DEFAULT_PRICE_TABLE as T } from "./prices_default.ts";
import { emptyUsage, type Usage, USAGE_FIELDS } from "./usage.ts";
import { seededRandom } from "./prng.ts";

const u = (p: Partial<Usage>): Usage => ({ ...emptyUsage(), ...p });
const at = (iso: string, promptTokens = 0, serviceTier?: string): PricingContext => ({
  promptTokens,
  completedAtMs: Date.parse(iso),
  serviceTier,
});
const price = (key: string): ModelPrice => T.models[key]!;
const usd = (m: Money) => formatUsd(m);
const NOW = "2026-11-20T12:00:00Z";

Deno.test("costOf: hand-computed OpenAI gpt-6.2-sol costs, tiers and service tiers", () => {
  const p = price("openai/gpt-6.2-sol");
  // 1000×2 + 2000×0.10 + 500×2.50 + 300×10 = 6450 USD per 1M tokens → 0.00645
  const usage = u({ inputTokens: 1000, cachedInputTokens: 2000, cacheWrite5mTokens: 500 });
  Object.assign(usage, { outputTokens: 300, reasoningTokens: 100 });
  assert.equal(usd(costOf(usage, at(NOW, 3500), p)), "0.00645");
  assert.equal(usd(costOf(usage, at(NOW, 3500, "batch"), p)), "0.003225");
  assert.equal(usd(costOf(usage, at(NOW, 3500, "default"), p)), "0.00645");
  assert.equal(usd(costOf(usage, at(NOW, 3500, "ultrafast"), p)), "0.01935");
  assert.equal(usd(costOf(usage, at("2027-03-01T00:00:00Z", 3500, "ultrafast"), p)), "0.0387");
  assert.throws(() => costOf(usage, at(NOW, 3500, "scale"), p), RangeError);
  // above 272K the whole request moves: 300000×4 + 1000×15 = 1 215 000 → 1.215
  const big = u({ inputTokens: 300_000, outputTokens: 1000 });
  assert.equal(usd(costOf(big, at(NOW, 272_000), p)), "0.61");
  assert.equal(usd(costOf(big, at(NOW, 272_001), p)), "1.215");
});

Deno.test("costOf: Anthropic Haiku prompt band, Sonnet dated cache price", () => {
  const h = price("anthropic/claude-haiku-5-5");
  const usage = u({ inputTokens: 100_000, cacheWrite1hTokens: 10_000, outputTokens: 2000 });
  // 100000×0.10 + 10000×0.20 + 2000×0.50 = 13000 → 0.013; ×5 above 100K → 0.065
  assert.equal(usd(costOf(usage, at(NOW, 100_000), h)), "0.013");
  assert.equal(usd(costOf(usage, at(NOW, 110_000), h)), "0.065");
  const s = price("anthropic/claude-sonnet-5-5");
  const hits = u({ cachedInputTokens: 1_000_000 });
  assert.equal(usd(costOf(hits, at("2026-10-06T23:59:59Z"), s)), "0.20");
  assert.equal(usd(costOf(hits, at("2026-10-07T00:00:00Z"), s)), "0.10");
});

Deno.test("costOf: DeepSeek peak/off-peak windows, Gemini date doubling", () => {
  const d = price("deepseek/deepseek-flash");
  const usage = u({ inputTokens: 1e6, cachedInputTokens: 1e6, outputTokens: 1e6 });
  const cases: [string, number, string][] = [
    ["2026-11-04T02:30:00Z", 3, "1.506"], // Wednesday 10:30 Beijing: peak
    ["2026-11-04T04:30:00Z", 3, "0.753"], // Wednesday 12:30 Beijing: off-peak
    ["2026-11-04T09:59:59Z", 3, "1.506"],
    ["2026-11-04T10:00:00Z", 3, "0.753"],
    ["2026-11-07T02:30:00Z", 6, "0.753"], // Saturday
    ["2026-08-12T02:30:00Z", 3, "0.753"], // before peak billing took effect
  ];
  for (const [iso, day, cost] of cases) {
    assert.equal(new Date(iso).getUTCDay(), day, iso);
    assert.equal(usd(costOf(usage, at(iso), d)), cost, iso);
  }
  const g = price("gemini/gemini-3.8-flash");
  const io = u({ inputTokens: 1e6, outputTokens: 1e6 });
  assert.equal(usd(costOf(io, at("2026-12-31T23:59:59Z"), g)), "4.50");
  assert.equal(usd(costOf(io, at("2027-01-01T00:00:00Z"), g)), "9.00");
  const pro = price("gemini/gemini-3.1-pro-preview");
  assert.equal(usd(costOf(io, at(NOW, 200_001), pro)), "22.00");
});

const AV: ModelPrice = {
  input: "4",
  cachedInput: "0.4",
  cacheWrite5m: "5",
  cacheWrite1h: "8",
  output: "16",
  audioInput: "40",
  audioOutput: "80",
  perAudioSecond: "0.0001",
};

Deno.test("costOf: audio/image subsets at their own rates; audio seconds; half-even lines", () => {
  const usage = u({ inputTokens: 1000, audioInputTokens: 400, outputTokens: 500 });
  Object.assign(usage, { audioOutputTokens: 200, imageOutputTokens: 100 });
  // 600×4 + 400×40 + 300×16 (image tokens, no own rate, stay text) + 200×80 = 39200
  assert.equal(usd(costOf(usage, at(NOW), AV)), "0.0392");
  const plain = { ...AV, audioInput: undefined, audioOutput: undefined };
  assert.equal(usd(costOf(usage, at(NOW), plain)), "0.012");
  const clamped = u({ inputTokens: 1000, audioInputTokens: 5000 }); // subset over total: clamp
  assert.equal(usd(costOf(clamped, at(NOW), AV)), "0.04");
  assert.equal(usd(costOf(u({ audioSeconds: 60 }), at(NOW), AV)), "0.006");
  assert.equal(costOf(u({ audioSeconds: 60 }), at(NOW), price("openai/gpt-5.5")), 0n);
  const half = { ...AV, input: "0.0000005" }; // 0.5 picodollar per token
  const lines = (n: number) => costLines(u({ inputTokens: n }), at(NOW), half).input;
  assert.deepEqual([1, 3, 5, 7].map(lines), [0n, 2n, 2n, 4n]);
  assert.throws(() => costOf(u({ inputTokens: 1.5 }), at(NOW), AV), TypeError);
  assert.throws(() => costOf(u({ outputTokens: -1 }), at(NOW), AV), TypeError);
  const window = { ...AV, validFrom: "2027-01-01" };
  assert.throws(() => costOf(usage, at(NOW), window), RangeError);
});

Deno.test("charges: zone × official, payout × official, margin is the exact difference", () => {
  const official = parseUsd("0.00645");
  const c = charges({ official, zoneMultiplier: zoneMultiplier("premium"), payoutRatio: "0.90" });
  assert.deepEqual([c.userCharge, c.agentPayout, c.platformMargin].map(usd), [
    "0.0080625",
    "0.005805",
    "0.0022575",
  ]);
  const tiny = charges({ official: 1n, zoneMultiplier: "1.5", payoutRatio: "0.5" });
  assert.deepEqual(tiny, { userCharge: 2n, agentPayout: 0n, platformMargin: 2n });
  assert.throws(() => charges({ official, zoneMultiplier: "1", payoutRatio: "1.01" }), RangeError);
  assert.throws(
    () => charges({ official: -1n, zoneMultiplier: "1", payoutRatio: "0.5" }),
    TypeError,
  );
  assert.throws(() => zoneMultiplier("gold"), RangeError);
  assert.equal(zoneMultiplier("gold", { gold: "2" }), "2");
});

Deno.test("findPrice: exact, snapshots, Gemini models/ prefix, aliases, no loose prefixes", () => {
  const key = (v: string, m: string) => findPrice(T, v, m)?.key;
  assert.equal(key("openai", "gpt-6.2-sol"), "openai/gpt-6.2-sol");
  assert.equal(key("openai", "gpt-6.2-sol-2026-11-01"), "openai/gpt-6.2-sol");
  assert.equal(key("anthropic", "claude-opus-5-5-20261001"), "anthropic/claude-opus-5-5");
  assert.equal(key("anthropic", "claude-opus-5-5@20261001"), "anthropic/claude-opus-5-5");
  assert.equal(key("gemini", "models/gemini-3.5-flash"), "gemini/gemini-3.5-flash");
  assert.equal(key("gemini", "gemini-3.5-flash-001"), "gemini/gemini-3.5-flash");
  assert.equal(key("gemini", "gemini-3.5-flash-latest"), "gemini/gemini-3.5-flash");
  assert.equal(key("openai", "gpt-6-luna-mini"), undefined);
  assert.equal(key("anthropic", "gpt-6.2-sol"), undefined);
  assert.equal(key("openai", "toString"), undefined);
  const t = validatePriceTable({ ...T, aliases: { "openai/sol": "openai/gpt-6.2-sol" } });
  assert.equal(findPrice(t, "openai", "sol-2026-11-01")?.key, "openai/gpt-6.2-sol");
});

Deno.test("validatePriceTable: clear errors, frozen result", () => {
  const base = { version: 2, publishedAtMs: 0, source: "test", models: { "x/m": AV } };
  const bad: [unknown, RegExp][] = [
    [{ ...base, version: 0 }, /version/],
    [{ ...base, source: "" }, /source/],
    [{ ...base, models: { "x/m": { ...AV, output: undefined } } }, /output missing/],
    [{ ...base, models: { "x/m": { ...AV, input: 1.5 } } }, /input/],
    [{ ...base, models: { "x/m": { ...AV, input: "1e-3" } } }, /input/],
    [{ ...base, models: { "x/m": { ...AV, inputt: "1" } } }, /inputt: unknown field/],
    [{ ...base, models: { "nokey": AV } }, /vendor\/model/],
    [{
      ...base,
      models: {
        "x/m": {
          ...AV,
          tiers: [{ abovePromptTokens: 9, rates: {} }, { abovePromptTokens: 9, rates: {} }],
        },
      },
    }, /ascend/],
    [{
      ...base,
      models: { "x/m": { ...AV, timeOfDay: [{ from: "10:00", until: "09:00", rates: {} }] } },
    }, /HH:MM/],
    [{
      ...base,
      models: {
        "x/m": { ...AV, timeOfDay: [{ from: "01:00", until: "02:00", days: [7], rates: {} }] },
      },
    }, /weekdays/],
    [
      { ...base, models: { "x/m": { ...AV, dated: [{ validFrom: "2027-13-45", rates: {} }] } } },
      /UTC date/,
    ],
    [
      { ...base, models: { "x/m": { ...AV, validFrom: "2027-02-01", validUntil: "2027-01-01" } } },
      /before/,
    ],
    [{ ...base, models: { "x/m": { ...AV, serviceTiers: { batch: 0.5 } } } }, /serviceTiers.batch/],
    [{ ...base, aliases: { "x/a": "x/nope" } }, /aliases/],
  ];
  for (const [table, re] of bad) assert.throws(() => validatePriceTable(table), re);
  const ok = validatePriceTable(base);
  assert.ok(Object.isFrozen(ok) && Object.isFrozen(ok.models["x/m"]));
});

// ---- property tests ----
const SEED = Number(Deno.env.get("PRICING_SEED") ?? String(Date.now() % 2 ** 31));
console.log(`pricing property seed=${SEED} (rerun with PRICING_SEED=${SEED})`);
const rnd = seededRandom(SEED);
const int = (n: number) => rnd() * n | 0;
function decimal(maxFrac: number): string {
  const f = int(maxFrac + 1);
  let frac = "";
  for (let i = 0; i < f; i++) frac += String(int(10));
  return `${int(rnd() < 0.2 ? 100 : 20)}${f ? "." + frac : ""}`;
}
function randomPrice(maxFrac: number): ModelPrice {
  const r = () => decimal(maxFrac);
  return {
    input: r(),
    cachedInput: r(),
    cacheWrite5m: r(),
    cacheWrite1h: r(),
    output: r(),
    perAudioSecond: r(),
    serviceTiers: { x: decimal(3) },
  };
}
const MAIN = ["inputTokens", "cachedInputTokens", "cacheWrite5mTokens", "cacheWrite1hTokens"]
  .concat(["outputTokens", "audioSeconds"]) as (keyof Usage)[];
function randomUsage(max: number): Usage {
  const out = emptyUsage();
  for (const f of MAIN) out[f] = rnd() < 0.3 ? 0 : int(max);
  out.reasoningTokens = int(out.outputTokens + 1);
  return out;
}
const N = 10_000;

Deno.test(`property: cost is additive over usage fields (${N} cases)`, () => {
  for (let i = 0; i < N; i++) {
    const p = randomPrice(12),
      usage = randomUsage(2_000_000),
      ctx = at(NOW, 0, rnd() < 0.5 ? "x" : undefined);
    const total = costOf(usage, ctx, p);
    const perField = MAIN.reduce((s, f) => s + costOf(u({ [f]: usage[f] }), ctx, p), 0n);
    assert.equal(total, perField, `case ${i}`);
    assert.equal(total, Object.values(costLines(usage, ctx, p)).reduce((a, b) => a + b, 0n));
  }
});

Deno.test(`property: charges are exact and rounded once (${N} cases)`, () => {
  for (let i = 0; i < N; i++) {
    const official = BigInt(int(2 ** 30)) * BigInt(int(2 ** 20) + 1);
    const zone = decimal(12), ratio = rnd() < 0.5 ? "1" : `0.${String(int(1e9)).padStart(9, "0")}`;
    const c = charges({ official, zoneMultiplier: zone, payoutRatio: ratio });
    assert.equal(c.userCharge - c.agentPayout, c.platformMargin);
    const exact = (d: string) => divRoundHalfEven(official * parseUsd(d), 10n ** 12n);
    assert.equal(c.userCharge, exact(zone));
    assert.equal(c.agentPayout, exact(ratio));
    assert.ok(c.agentPayout <= official);
  }
});

Deno.test(`property: many small costs sum to the cost of the summed usage (${N} cases)`, () => {
  for (let i = 0; i < N; i++) {
    const exactPrices = rnd() < 0.5; // ≤ 6 decimals and ×1: every line is exact, no drift at all
    const p = randomPrice(exactPrices ? 6 : 12), ctx = at(NOW, 0, exactPrices ? undefined : "x");
    const n = 1 + int(20), parts = Array.from({ length: n }, () => randomUsage(5000));
    const summed = emptyUsage();
    for (const part of parts) for (const f of USAGE_FIELDS) summed[f] += part[f];
    const sumOfCosts = parts.reduce((s, part) => s + costOf(part, ctx, p), 0n);
    const diff = sumOfCosts - costOf(summed, ctx, p);
    // each request has ≤ 10 lines, each within ½ picodollar of exact: |diff| ≤ (n + 1) × 10 / 2
    if (exactPrices) assert.equal(diff, 0n, `case ${i}`);
    else assert.ok((diff < 0n ? -diff : diff) * 2n <= BigInt((n + 1) * 10), `case ${i}: ${diff}`);
  }
});

Deno.test(`property: hub and agent get identical strings, also through JSON (${N} cases)`, () => {
  const models = Object.values(T.models);
  for (let i = 0; i < N; i++) {
    const p = rnd() < 0.5 ? models[int(models.length)]! : randomPrice(12);
    const usage = randomUsage(400_000);
    const ctx = at(
      new Date(Date.parse("2026-06-01") + int(400 * 86_400) * 1000).toISOString(),
      int(400_000),
    );
    const hub = formatUsd(costOf(usage, ctx, p));
    const wire = JSON.parse(JSON.stringify({ usage, ctx, p }));
    const agent = formatUsd(costOf(wire.usage, wire.ctx, wire.p));
    assert.equal(agent, hub, `case ${i}`);
    const split = (m: Money) =>
      JSON.stringify(
        Object.values(charges({ official: m, zoneMultiplier: "1.25", payoutRatio: "0.65" })).map(
          formatUsd,
        ),
      );
    assert.equal(split(parseUsd(agent)), split(costOf(usage, ctx, p)));
  }
});
