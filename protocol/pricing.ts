/**
 * Official list prices and THE cost function shared by hub and agent (DESIGN.md §4).
 *
 * Prices are decimal strings of USD per 1M tokens (`perAudioSecond`: USD per second). A table is
 * versioned and immutable once published (`validatePriceTable` returns a deep-frozen copy).
 *
 * `costOf` bills one line item per usage dimension, each rounded once, half to even at the
 * picodollar (see `protocol/money.ts`), then sums the lines exactly:
 * | line          | usage count                                   | rate                        |
 * |---------------|-----------------------------------------------|-----------------------------|
 * | input         | inputTokens − audio/image input priced apart  | input                       |
 * | audioInput    | min(audioInputTokens, inputTokens)            | audioInput (if set)         |
 * | imageInput    | min(imageInputTokens, inputTokens − audio)    | imageInput (if set)         |
 * | cachedInput   | cachedInputTokens                             | cachedInput                 |
 * | cacheWrite5m  | cacheWrite5mTokens                            | cacheWrite5m                |
 * | cacheWrite1h  | cacheWrite1hTokens                            | cacheWrite1h                |
 * | output        | outputTokens − audio/image output priced apart (reasoning included) | output |
 * | audioOutput   | min(audioOutputTokens, outputTokens)          | audioOutput (if set)        |
 * | imageOutput   | min(imageOutputTokens, outputTokens − audio)  | imageOutput (if set)        |
 * | audioSeconds  | audioSeconds                                  | perAudioSecond (if set)     |
 * Audio/image tokens are subsets of input/output: without their own rate they stay in the text
 * line; `reasoningTokens` is informational (already in `outputTokens`); `audioSeconds` is not
 * billed when the model has no `perAudioSecond`.
 *
 * Effective rates at `completedAtMs` with prompt size `promptTokens`: the base rates, then every
 * matching `dated` rule in order, then the first matching `timeOfDay` window, then the highest
 * `tiers` entry with `promptTokens > abovePromptTokens` (whole request); each overrides only the
 * fields it names. A `serviceTier` listed in `serviceTiers` multiplies every line; unlisted
 * neutral tiers ("default", "standard", "auto", or none) are ×1; any other tier throws.
 * @module
 */
import type { Usage } from "./usage.ts";
import { DECIMAL_ONE, divRoundHalfEven, type Money, mulRatio, parseDecimal } from "./money.ts";

/** Decimal-string rates: USD per 1M tokens, except `perAudioSecond` (USD per second). */
export interface Rates {
  input: string;
  cachedInput: string;
  cacheWrite5m: string;
  cacheWrite1h: string;
  output: string;
  audioInput?: string;
  audioOutput?: string;
  imageInput?: string;
  imageOutput?: string;
  perAudioSecond?: string;
}
/** Fields a rule overrides; `serviceTiers` replaces the whole multiplier map. */
export type RateOverride = Partial<Rates> & { serviceTiers?: Record<string, string> };
/** Prompt-length tier: applies to the whole request when `promptTokens > abovePromptTokens`. */
export interface PromptTier {
  abovePromptTokens: number;
  rates: RateOverride;
}
/** Dates are `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM[:SS]Z`, UTC; a rule holds in [validFrom, validUntil). */
export interface DateRange {
  validFrom?: string;
  validUntil?: string;
}
export interface DatedRates extends DateRange {
  rates: RateOverride;
}
/** UTC clock window [from, until) ("HH:MM", until may be "24:00"); `days` 0 = Sunday … 6. */
export interface TimeWindow extends DateRange {
  from: string;
  until: string;
  days?: number[];
  rates: RateOverride;
}
export interface ModelPrice extends Rates, DateRange {
  /** Service tier → multiplier of every line, e.g. `{ batch: "0.5", priority: "2" }`. */
  serviceTiers?: Record<string, string>;
  tiers?: PromptTier[];
  timeOfDay?: TimeWindow[];
  dated?: DatedRates[];
}
export interface PriceTable {
  version: number;
  publishedAtMs: number;
  source: string;
  /** Keyed `"vendor/model"`. */
  models: Record<string, ModelPrice>;
  /** `"vendor/alias"` → `"vendor/model"` key of `models`. */
  aliases?: Record<string, string>;
}
/** What `costOf` needs from a usage record beyond the counts. */
export interface PricingContext {
  promptTokens: number;
  completedAtMs: number;
  serviceTier?: string;
}

const RATE_KEYS = ["input", "cachedInput", "cacheWrite5m", "cacheWrite1h", "output"]
  .concat(["audioInput", "audioOutput", "imageInput", "imageOutput", "perAudioSecond"]);
const REQUIRED_RATES = RATE_KEYS.slice(0, 5);
const NEUTRAL_TIERS = new Set(["", "default", "standard", "auto"]);
const DATE = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2})?Z)?$/;
const CLOCK = /^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$/;
const KEY = /^[a-z0-9-]+\/\S+$/;
type Obj = Record<string, unknown>;

function fail(path: string, msg: string): never {
  throw new TypeError(`Invalid price table: ${path}: ${msg}`);
}
function obj(v: unknown, path: string, keys: readonly string[]): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail(path, "expected an object");
  for (const k of Object.keys(v)) if (!keys.includes(k)) fail(`${path}.${k}`, "unknown field");
  return v as Obj;
}
function record(v: unknown, path: string): Obj {
  return obj(v, path, typeof v === "object" && v !== null ? Object.keys(v) : []);
}
function int(v: unknown, path: string): number {
  if (!Number.isSafeInteger(v) || (v as number) < 0) fail(path, "expected an integer ≥ 0");
  return v as number;
}
function dec(v: unknown, path: string): void {
  try {
    parseDecimal(v, path);
  } catch (e) {
    fail(path, (e as Error).message);
  }
}
function dateMs(v: string | undefined, path: string): number | undefined {
  if (v === undefined) return undefined;
  const ms = typeof v === "string" && DATE.test(v) ? Date.parse(v) : NaN;
  if (!Number.isFinite(ms)) fail(path, "expected a UTC date such as 2027-01-01");
  return ms;
}
function checkRange(r: DateRange, path: string): void {
  const from = dateMs(r.validFrom, `${path}.validFrom`);
  const until = dateMs(r.validUntil, `${path}.validUntil`);
  if (from !== undefined && until !== undefined && from >= until) {
    fail(path, "validFrom must be before validUntil");
  }
}
function checkRates(v: unknown, path: string, required: boolean, extra: readonly string[]): Obj {
  const o = obj(v, path, [...RATE_KEYS, "serviceTiers", ...extra]);
  for (const k of RATE_KEYS) {
    if (o[k] !== undefined) dec(o[k], `${path}.${k}`);
    else if (required && (REQUIRED_RATES as readonly string[]).includes(k)) {
      fail(path, `${k} missing`);
    }
  }
  if (o.serviceTiers !== undefined) {
    const st = record(o.serviceTiers, `${path}.serviceTiers`);
    for (const [k, m] of Object.entries(st)) dec(m, `${path}.serviceTiers.${k}`);
  }
  return o;
}
function checkModel(v: unknown, path: string): void {
  const extra = ["tiers", "timeOfDay", "dated", "validFrom", "validUntil"];
  const o = checkRates(v, path, true, extra) as unknown as ModelPrice;
  checkRange(o, path);
  let last = -1;
  for (const [i, t] of (o.tiers ?? []).entries()) {
    const p = `${path}.tiers[${i}]`;
    obj(t, p, ["abovePromptTokens", "rates"]);
    if (int(t.abovePromptTokens, `${p}.abovePromptTokens`) <= last) fail(p, "tiers must ascend");
    last = t.abovePromptTokens;
    checkRates(t.rates, `${p}.rates`, false, []);
  }
  for (const [i, w] of (o.timeOfDay ?? []).entries()) {
    const p = `${path}.timeOfDay[${i}]`;
    obj(w, p, ["from", "until", "days", "rates", "validFrom", "validUntil"]);
    if (!CLOCK.test(String(w.from)) || !CLOCK.test(String(w.until)) || w.from >= w.until) {
      fail(p, 'expected "HH:MM" from < until (UTC; split windows that cross midnight)');
    }
    const days = w.days ?? [];
    if (!Array.isArray(days) || days.some((d) => !Number.isInteger(d) || d < 0 || d > 6)) {
      fail(`${p}.days`, "expected UTC weekdays 0 (Sunday) … 6");
    }
    checkRange(w, p);
    checkRates(w.rates, `${p}.rates`, false, []);
  }
  for (const [i, d] of (o.dated ?? []).entries()) {
    const p = `${path}.dated[${i}]`;
    obj(d, p, ["rates", "validFrom", "validUntil"]);
    checkRange(d, p);
    checkRates(d.rates, `${p}.rates`, false, []);
  }
}
function deepFreeze<T>(v: T): T {
  if (typeof v === "object" && v !== null) Object.values(Object.freeze(v)).forEach(deepFreeze);
  return v;
}

/** Checks a price table (e.g. from `POST /admin/prices` JSON); returns a deep-frozen copy. */
export function validatePriceTable(value: unknown): PriceTable {
  const t = obj(value, "table", ["version", "publishedAtMs", "source", "models", "aliases"]);
  if (int(t.version, "version") < 1) fail("version", "must be ≥ 1");
  int(t.publishedAtMs, "publishedAtMs");
  if (typeof t.source !== "string" || t.source.trim() === "") fail("source", "must name a source");
  const models = record(t.models, "models");
  for (const [k, m] of Object.entries(models)) {
    if (!KEY.test(k)) fail(`models["${k}"]`, 'key must be "vendor/model"');
    checkModel(m, `models["${k}"]`);
  }
  const aliases = record(t.aliases ?? {}, "aliases");
  for (const [k, target] of Object.entries(aliases)) {
    if (!KEY.test(k) || typeof target !== "string" || !(target in models)) {
      fail(`aliases["${k}"]`, "must map vendor/alias to a key of models");
    }
  }
  return deepFreeze(structuredClone(t)) as unknown as PriceTable;
}

function inRange(r: DateRange, ms: number): boolean {
  return (r.validFrom === undefined || ms >= Date.parse(r.validFrom)) &&
    (r.validUntil === undefined || ms < Date.parse(r.validUntil));
}
function inWindow(w: TimeWindow, ms: number): boolean {
  const d = new Date(ms);
  const hhmm = d.toISOString().slice(11, 16);
  return inRange(w, ms) && hhmm >= w.from && hhmm < w.until &&
    (w.days === undefined || w.days.includes(d.getUTCDay()));
}

/** The rates and service-tier map in force for one request (see the module docs for order). */
export function effectiveRates(price: ModelPrice, ctx: PricingContext): RateOverride & Rates {
  if (!inRange(price, ctx.completedAtMs)) {
    throw new RangeError(`Price not valid at ${new Date(ctx.completedAtMs).toISOString()}`);
  }
  const picked: RateOverride[] = (price.dated ?? []).filter((d) => inRange(d, ctx.completedAtMs))
    .map((d) => d.rates);
  const win = (price.timeOfDay ?? []).find((w) => inWindow(w, ctx.completedAtMs));
  if (win) picked.push(win.rates);
  const tier = (price.tiers ?? []).findLast((t) => ctx.promptTokens > t.abovePromptTokens);
  if (tier) picked.push(tier.rates);
  return Object.assign({}, price, ...picked);
}

/** Billed line items, each rounded once (half to even at the picodollar). */
export type CostLines = Record<
  keyof Omit<Rates, "perAudioSecond"> | "audioSeconds",
  Money
>;

function count(u: Usage, k: keyof Usage): bigint {
  if (!Number.isSafeInteger(u[k]) || u[k] < 0) {
    throw new TypeError(`usage.${k} must be an integer ≥ 0, got ${String(u[k])}`);
  }
  return BigInt(u[k]);
}
const min = (a: bigint, b: bigint) => a < b ? a : b;

/** The per-line official cost; `costOf` is their exact sum. */
export function costLines(usage: Usage, ctx: PricingContext, price: ModelPrice): CostLines {
  const r = effectiveRates(price, ctx);
  const tier = ctx.serviceTier ?? "";
  const mulText = r.serviceTiers?.[tier] ?? (NEUTRAL_TIERS.has(tier) ? "1" : undefined);
  if (mulText === undefined) throw new RangeError(`No price for service tier "${tier}"`);
  const mul = parseDecimal(mulText, "service tier multiplier");
  // rate units are 1e-12 USD per 1M tokens (per second for audio): pico = n × rate × mul / den.
  const line = (n: bigint, rate: string | undefined, perMillion = true): Money =>
    rate === undefined || n === 0n ? 0n : divRoundHalfEven(
      n * parseDecimal(rate, "rate") * mul,
      DECIMAL_ONE * (perMillion ? 1_000_000n : 1n),
    );
  const inTotal = count(usage, "inputTokens"), outTotal = count(usage, "outputTokens");
  // a subset priced apart: at most what is left of its total; 0 when it has no own rate
  const part = (rate: string | undefined, k: keyof Usage, left: bigint) =>
    rate === undefined ? 0n : min(count(usage, k), left);
  const aIn = part(r.audioInput, "audioInputTokens", inTotal);
  const iIn = part(r.imageInput, "imageInputTokens", inTotal - aIn);
  const aOut = part(r.audioOutput, "audioOutputTokens", outTotal);
  const iOut = part(r.imageOutput, "imageOutputTokens", outTotal - aOut);
  return {
    input: line(inTotal - aIn - iIn, r.input),
    audioInput: line(aIn, r.audioInput),
    imageInput: line(iIn, r.imageInput),
    cachedInput: line(count(usage, "cachedInputTokens"), r.cachedInput),
    cacheWrite5m: line(count(usage, "cacheWrite5mTokens"), r.cacheWrite5m),
    cacheWrite1h: line(count(usage, "cacheWrite1hTokens"), r.cacheWrite1h),
    output: line(outTotal - aOut - iOut, r.output),
    audioOutput: line(aOut, r.audioOutput),
    imageOutput: line(iOut, r.imageOutput),
    audioSeconds: line(count(usage, "audioSeconds"), r.perAudioSecond, false),
  };
}

/** THE official cost of one request, in picodollars. Pure; hub and agent both call it. */
export function costOf(usage: Usage, ctx: PricingContext, price: ModelPrice): Money {
  return Object.values(costLines(usage, ctx, price)).reduce((a, b) => a + b, 0n);
}

/** Settlement split: each side rounded once; `platformMargin = userCharge − agentPayout`. */
export function charges(
  args: { official: Money; zoneMultiplier: string; payoutRatio: string },
): { userCharge: Money; agentPayout: Money; platformMargin: Money } {
  if (typeof args.official !== "bigint" || args.official < 0n) {
    throw new TypeError("official must be a non-negative bigint of picodollars");
  }
  const ratio = parseDecimal(args.payoutRatio, "payout ratio");
  if (ratio > DECIMAL_ONE) throw new RangeError("payout ratio must be at most 1");
  const userCharge = mulRatio(args.official, parseDecimal(args.zoneMultiplier, "zone multiplier"));
  const agentPayout = mulRatio(args.official, ratio);
  return { userCharge, agentPayout, platformMargin: userCharge - agentPayout };
}

/** Default pricing-zone multipliers (configurable: pass your own map to `zoneMultiplier`). */
export const DEFAULT_ZONE_MULTIPLIERS: Readonly<Record<string, string>> = Object.freeze({
  standard: "1.00",
  discount: "0.95",
  premium: "1.25",
});
export function zoneMultiplier(zone: string, zones = DEFAULT_ZONE_MULTIPLIERS): string {
  const m = Object.hasOwn(zones, zone) ? zones[zone] : undefined;
  if (m === undefined) throw new RangeError(`Unknown pricing zone "${zone}"`);
  parseDecimal(m, `zone multiplier of "${zone}"`);
  return m;
}

const SNAPSHOT = /(?:[-@](?:\d{4}-\d{2}-\d{2}|\d{8}|\d{3}|latest)|-v\d+(?::\d+)?)$/;

/**
 * Finds a model's price: the exact `vendor/model` key; else the table's `aliases`; else, after
 * dropping a leading `models/` (Gemini) and then repeatedly one trailing snapshot suffix
 * (`-2024-07-18`, `-20250929`, `@20250929`, `-001`, `-latest`, `-v1:0`), the first key or alias
 * that matches (`gpt-4o-mini-2024-07-18` → `gpt-4o-mini`). No other prefix matching: a distinct
 * model such as `gpt-4o-mini` never falls back to `gpt-4o`. Returns the matched key too.
 */
export function findPrice(
  table: PriceTable,
  vendor: string,
  model: string,
): { key: string; price: ModelPrice } | undefined {
  let name = model.startsWith("models/") ? model.slice(7) : model;
  const probes = [model, name];
  while (SNAPSHOT.test(name)) probes.push(name = name.replace(SNAPSHOT, ""));
  for (const probe of probes) {
    for (const key of [`${vendor}/${probe}`, table.aliases?.[`${vendor}/${probe}`]]) {
      if (key !== undefined && Object.hasOwn(table.models, key)) {
        return { key, price: table.models[key]! };
      }
    }
  }
  return undefined;
}
