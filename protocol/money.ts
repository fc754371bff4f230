/**
 * Exact money for hub and agent alike: USD amounts are `bigint` counts of picodollars
 * (1e-12 USD), ratios and multipliers are decimal strings parsed to exact integers. No floats
 * anywhere on a money path (a test scans this file for them).
 *
 * Canonical text form (`formatUsd`, identical to hub/store/_money.ts): an optional `-`, the
 * integer part without leading zeros, a `.`, then the fractional digits with trailing zeros
 * trimmed but never fewer than 2: `"0.00"`, `"25.00"`, `"0.10"`, `"0.000001"`, `"-2.50"`.
 *
 * ROUNDING RULE (the only one): round half to even at the picodollar. It is applied exactly once
 * per line item: each cost line in `protocol/pricing.ts` (one usage dimension × its rate × any
 * service-tier multiplier), the user charge, and the agent payout. Sums and differences of
 * amounts are exact and never rounded. So a total of n line items is within n/2 picodollars of
 * the exact rational value.
 * @module
 */

/** USD as a count of picodollars (1e-12 USD). */
export type Money = bigint;

/** Fractional decimal digits a USD amount may carry: 1 picodollar is the smallest step. */
export const USD_SCALE = 12;

/** Picodollars in one USD. */
export const PICO_PER_USD: bigint = 10n ** BigInt(USD_SCALE);

/** Fractional digits a decimal ratio, multiplier or price may carry. */
export const DECIMAL_SCALE = 12;

/** `parseDecimal("1")`: ratios and multipliers are integers in units of 1e-12. */
export const DECIMAL_ONE: bigint = 10n ** BigInt(DECIMAL_SCALE);

// ASCII digits only (no `u` flag, so `\d` is [0-9]); no exponent, no `+`, no bare `.5` / `5.`.
const USD_TEXT = /^(-?)(\d+)(?:\.(\d{1,12}))?$/;
const DECIMAL_TEXT = /^(\d+)(?:\.(\d{1,12}))?$/;

function shown(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

/**
 * Parses a decimal USD string (`"25"`, `"0.000001"`, `"-2.5"`) into picodollars.
 * Throws `TypeError` for anything else: a non-string, exponents (`"1e-3"`), `"NaN"`,
 * `"Infinity"`, more than 12 fractional digits, whitespace, `+`, `,` or an empty string.
 */
export function parseUsd(text: string): Money {
  if (typeof text !== "string") {
    throw new TypeError(`Cannot parse a USD amount from a ${typeof text}: send a decimal string`);
  }
  const m = USD_TEXT.exec(text);
  if (!m) {
    throw new TypeError(
      `Cannot parse USD amount "${shown(text)}": expected a decimal string such as "25" or ` +
        `"0.000001", with at most ${USD_SCALE} fractional digits`,
    );
  }
  const [, sign, whole, fraction = ""] = m as unknown as [string, string, string, string?];
  const pico = BigInt(whole) * PICO_PER_USD + BigInt(fraction.padEnd(USD_SCALE, "0"));
  return sign === "-" ? -pico : pico;
}

/** Renders picodollars in the canonical form described in the module docs. */
export function formatUsd(pico: Money): string {
  if (typeof pico !== "bigint") throw new TypeError(`Money must be a bigint, not ${typeof pico}`);
  const negative = pico < 0n;
  const abs = negative ? -pico : pico;
  const fraction = (abs % PICO_PER_USD).toString().padStart(USD_SCALE, "0")
    .replace(/0+$/, "").padEnd(2, "0");
  return `${negative ? "-" : ""}${abs / PICO_PER_USD}.${fraction}`;
}

/**
 * Parses a non-negative decimal string (`"0.90"`, `"1.25"`, `"0.003625"`) into exact units of
 * 1e-12 (`"0.90"` → 900_000_000_000n). `what` names the value in the error. Throws `TypeError`
 * for non-strings, signs, exponents, whitespace or more than 12 fractional digits.
 */
export function parseDecimal(text: unknown, what = "decimal"): bigint {
  if (typeof text !== "string") {
    throw new TypeError(`${what} must be a decimal string such as "0.80", not ${typeof text}`);
  }
  const m = DECIMAL_TEXT.exec(text);
  if (!m) {
    throw new TypeError(
      `Invalid ${what} "${shown(text)}": expected a non-negative decimal string such as "0.80" ` +
        `with at most ${DECIMAL_SCALE} fractional digits`,
    );
  }
  return BigInt(m[1]!) * DECIMAL_ONE + BigInt((m[2] ?? "").padEnd(DECIMAL_SCALE, "0"));
}

/** Renders units of 1e-12 as a decimal string, trimmed like `formatUsd` (`"0.90"`, `"1.00"`). */
export function formatDecimal(units: bigint): string {
  return formatUsd(units);
}

/**
 * `numerator / denominator` rounded half to even to an integer (the module's rounding rule).
 * `denominator` must be positive; `numerator` may be negative.
 */
export function divRoundHalfEven(numerator: bigint, denominator: bigint): bigint {
  if (denominator <= 0n) throw new RangeError("divRoundHalfEven: denominator must be positive");
  const negative = numerator < 0n;
  const abs = negative ? -numerator : numerator;
  let q = abs / denominator;
  const twiceRest = (abs % denominator) * 2n;
  if (twiceRest > denominator || (twiceRest === denominator && q % 2n === 1n)) q += 1n;
  return negative ? -q : q;
}

/**
 * `amount × ratio`, rounded once, half to even at the picodollar. `ratio` is a decimal string
 * (`"0.90"`, `"1.25"`) or already-parsed units of 1e-12.
 */
export function mulRatio(amount: Money, ratio: string | bigint): Money {
  const units = typeof ratio === "bigint" ? ratio : parseDecimal(ratio, "ratio");
  if (units < 0n) throw new RangeError("A ratio must not be negative");
  return divRoundHalfEven(amount * units, DECIMAL_ONE);
}

/** Exact sum of amounts (no rounding: picodollars add as integers). */
export function sumMoney(amounts: Iterable<Money>): Money {
  let total = 0n;
  for (const a of amounts) {
    if (typeof a !== "bigint") throw new TypeError(`Money must be a bigint, not ${typeof a}`);
    total += a;
  }
  return total;
}
