/**
 * Default official price table, version 1: flagship models of every supported vendor, from
 * /work/shared/reference/vendor-wire.md §10 (USD per 1M tokens; rows read 2026-06 … 2026-11).
 * Immutable once published: changes go into a new version, never into this one.
 *
 * Where the reference gives no separate price the entry repeats the fresh-input price (a cache
 * write without a surcharge, a cache read without a known discount), so such tokens are never
 * billed below list input. Left out for lack of prices: gemini-2.5-pro (output not captured) and
 * qwen3-max (output not captured). OpenAI's 30-minute / 12-hour cache writes fill the 5m / 1h
 * slots. Anthropic's Haiku band counts input + cache reads + cache writes as the prompt
 * (`promptTokens`). DeepSeek peak hours ignore Chinese public holidays (billed as peak).
 * @module
 */
import { type ModelPrice, type PriceTable, validatePriceTable } from "./pricing.ts";

const rates = (
  input: string,
  cachedInput: string,
  cacheWrite5m: string,
  cacheWrite1h: string,
  output: string,
) => ({ input, cachedInput, cacheWrite5m, cacheWrite1h, output });

const OPENAI_TIERS = { batch: "0.5", flex: "0.5", fast: "2", ultrafast: "3" };
/** GPT-6.x: above 272K input tokens input and cache rates ×2, output ×1.5, whole request. */
function gpt6(input: string, cached: string, w30m: string, w12h: string, out: string): ModelPrice {
  const d = (a: string) => times(a, 2n);
  return {
    ...rates(input, cached, w30m, w12h, out),
    serviceTiers: OPENAI_TIERS,
    tiers: [{
      abovePromptTokens: 272_000,
      rates: rates(d(input), d(cached), d(w30m), d(w12h), times(out, 3n, 2n)),
    }],
    dated: [{
      validFrom: "2027-03-01",
      rates: { serviceTiers: { ...OPENAI_TIERS, ultrafast: "6" } },
    }],
  };
}
/** Exact decimal-string scaling by a small fraction, for deriving published tier rows. */
function times(price: string, num: bigint, den = 1n): string {
  const [w = "0", f = ""] = price.split(".");
  const units = BigInt(w + f.padEnd(12, "0")) * num / den;
  const s = units.toString().padStart(13, "0");
  const frac = s.slice(-12).replace(/0+$/, "").padEnd(2, "0");
  return `${s.slice(0, -12).replace(/^0+(?=\d)/, "")}.${frac}`;
}

const ANTHROPIC_TIERS = { batch: "0.5" };
const GEMINI_TIERS = { batch: "0.5" };
/** DeepSeek weekday peak hours (UTC) = 09–12 and 14–18 Beijing time; everything else off-peak. */
function deepseek(offPeak: ModelPrice, peak: Partial<ModelPrice>): ModelPrice {
  const days = [1, 2, 3, 4, 5], validFrom = "2026-08-16";
  return {
    ...offPeak,
    timeOfDay: [
      { from: "01:00", until: "04:00", days, validFrom, rates: peak },
      { from: "06:00", until: "10:00", days, validFrom, rates: peak },
    ],
  };
}

/** Default table v1 (validated at import; deep-frozen). */
export const DEFAULT_PRICE_TABLE: PriceTable = validatePriceTable({
  version: 1,
  publishedAtMs: Date.UTC(2026, 10, 30),
  source: "reference/vendor-wire.md §10, list prices as read 2026-06-03 … 2026-11 " +
    "(OpenAI model pages 2026-11, Anthropic 2026-10-24, Gemini 2026-10-07, DeepSeek Oct–Nov " +
    "2026, Qwen 2026-06-03); re-verify against the official pages before relying on a row",
  models: {
    "openai/gpt-6-astra": gpt6("10.00", "1.00", "10.00", "10.00", "50.00"),
    "openai/gpt-6.2-sol": gpt6("2.00", "0.10", "2.50", "5.00", "10.00"),
    "openai/gpt-6.1-sol": gpt6("2.00", "0.10", "2.50", "2.50", "10.00"),
    "openai/gpt-6-luna": gpt6("0.10", "0.01", "0.125", "0.125", "0.50"),
    "openai/gpt-5.5": {
      ...rates("5.00", "0.50", "5.00", "5.00", "30.00"),
      serviceTiers: { batch: "0.5", flex: "0.5", priority: "2.5" },
    },
    "anthropic/claude-fable-5-1": {
      ...rates("10", "0.25", "12.50", "20", "50"),
      serviceTiers: ANTHROPIC_TIERS,
    },
    "anthropic/claude-opus-5-5": {
      ...rates("4", "0.20", "5", "8", "20"),
      serviceTiers: ANTHROPIC_TIERS,
    },
    "anthropic/claude-opus-5": {
      ...rates("5", "0.50", "6.25", "10", "25"),
      serviceTiers: ANTHROPIC_TIERS,
    },
    "anthropic/claude-sonnet-5-5": {
      ...rates("2", "0.10", "2.50", "4", "10"),
      serviceTiers: ANTHROPIC_TIERS,
      dated: [{ validUntil: "2026-10-07", rates: { cachedInput: "0.20" } }],
    },
    "anthropic/claude-haiku-5-5": {
      ...rates("0.10", "0.01", "0.125", "0.20", "0.50"),
      serviceTiers: ANTHROPIC_TIERS,
      tiers: [{
        abovePromptTokens: 100_000,
        rates: rates("0.50", "0.05", "0.625", "1.00", "2.50"),
      }],
    },
    "gemini/gemini-3.8-flash": {
      ...rates("0.75", "0.75", "0.75", "0.75", "3.75"),
      serviceTiers: GEMINI_TIERS,
      dated: [{ validFrom: "2027-01-01", rates: rates("1.50", "1.50", "1.50", "1.50", "7.50") }],
    },
    // cached 0.15 comes from a reseller page (third-party)
    "gemini/gemini-3.5-flash": {
      ...rates("1.50", "0.15", "1.50", "1.50", "9.00"),
      serviceTiers: GEMINI_TIERS,
    },
    "gemini/gemini-3.5-flash-lite": {
      ...rates("0.30", "0.30", "0.30", "0.30", "2.50"),
      serviceTiers: GEMINI_TIERS,
    },
    "gemini/gemini-3.1-pro-preview": {
      ...rates("2.00", "2.00", "2.00", "2.00", "12.00"),
      serviceTiers: GEMINI_TIERS,
      tiers: [{
        abovePromptTokens: 200_000,
        rates: rates("4.00", "4.00", "4.00", "4.00", "18.00"),
      }],
    },
    "deepseek/deepseek-flash": deepseek(
      rates("0.15", "0.003", "0.15", "0.15", "0.60"),
      rates("0.30", "0.006", "0.30", "0.30", "1.20"),
    ),
    "deepseek/deepseek-v4-pro": deepseek(
      rates("0.66", "0.022", "0.66", "0.66", "1.98"),
      rates("1.32", "0.044", "1.32", "1.32", "3.96"),
    ),
    // low confidence (apidog guide); context-length bands not captured, one band priced
    "dashscope/qwen3.7-plus": rates("0.40", "0.40", "0.40", "0.40", "1.60"),
  },
});

/** Every rate of a row (and of its tiers) × `num/den`, e.g. a regional premium. */
function scaled(p: ModelPrice, num: bigint, den: bigint): ModelPrice {
  const scale = <T extends object>(r: T): T =>
    Object.fromEntries(
      Object.entries(r).map(([k, v]) => [k, typeof v === "string" ? times(v, num, den) : v]),
    ) as T;
  return {
    ...scale(p),
    ...(p.tiers ? { tiers: p.tiers.map((t) => ({ ...t, rates: scale(t.rates) })) } : {}),
  };
}
const v1 = DEFAULT_PRICE_TABLE.models;
const row = (key: string): ModelPrice => structuredClone(v1[key]!) as ModelPrice;
const ANTHROPIC = ["claude-fable-5-1", "claude-opus-5-5", "claude-opus-5", "claude-sonnet-5-5"]
  .concat(["claude-haiku-5-5"]);
const GEMINI = ["gemini-3.8-flash", "gemini-3.5-flash", "gemini-3.5-flash-lite"]
  .concat(["gemini-3.1-pro-preview"]);
const OPENAI = ["gpt-6-astra", "gpt-6.2-sol", "gpt-6.1-sol", "gpt-6-luna", "gpt-5.5"];
const BEDROCK_REGIONS = ["us", "eu", "apac", "jp", "au"];

/**
 * Default table v2 = v1's rows unchanged plus the platforms that resell them, which §10 does not
 * price on their own (low confidence, re-verify against each platform's page before billing):
 * - `azure/…`: the OpenAI rows (Azure OpenAI Global Standard tracks OpenAI's list price).
 * - `vertex/…`: the Gemini API rows for Gemini, Anthropic's list for Claude (the global
 *   endpoint; Vertex model ids such as `claude-opus-5-5@20260101` match through `findPrice`).
 * - `bedrock/…`: Anthropic's list for the `global.` cross-region profiles, +10 % for in-region
 *   ids and the `us.`/`eu.`/`apac.`/`jp.`/`au.` profiles (§10: "~10% premium", Apify listing).
 */
export const DEFAULT_PRICE_TABLE_V2: PriceTable = validatePriceTable({
  version: 2,
  publishedAtMs: Date.UTC(2026, 10, 22),
  source: `${DEFAULT_PRICE_TABLE.source}. v2 (2026-11-22) adds Azure OpenAI and Vertex AI at the ` +
    "vendors' list prices and Claude on Bedrock (global profiles at list, regional +10%), from " +
    "the same §10 rows; unverified against the platforms' own pages",
  models: {
    ...v1,
    ...Object.fromEntries(OPENAI.map((m) => [`azure/${m}`, row(`openai/${m}`)])),
    ...Object.fromEntries(GEMINI.map((m) => [`vertex/${m}`, row(`gemini/${m}`)])),
    ...Object.fromEntries(ANTHROPIC.map((m) => [`vertex/${m}`, row(`anthropic/${m}`)])),
    ...Object.fromEntries(
      ANTHROPIC.map((m) => [`bedrock/global.anthropic.${m}`, row(`anthropic/${m}`)]),
    ),
    ...Object.fromEntries(
      ANTHROPIC.map((m) => [`bedrock/anthropic.${m}`, scaled(row(`anthropic/${m}`), 11n, 10n)]),
    ),
  },
  aliases: Object.fromEntries(
    ANTHROPIC.flatMap((m) =>
      BEDROCK_REGIONS.map((r) => [`bedrock/${r}.anthropic.${m}`, `bedrock/anthropic.${m}`])
    ),
  ),
});

/**
 * Every built-in version, oldest first: the hub seeds those above its store's latest version at
 * start (hub/billing/prices.ts), so a fresh hub prices with v2. Agents hold v1 only and learn
 * the rest from the hub (a hub may hold an operator's own v2).
 */
export const BUILT_IN_PRICE_TABLES: readonly PriceTable[] = Object.freeze([
  DEFAULT_PRICE_TABLE,
  DEFAULT_PRICE_TABLE_V2,
]);
