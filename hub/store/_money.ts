/**
 * Exact USD amounts as BigInt counts of picodollars (1e-12 USD), and their one text form.
 *
 * Canonical rendering (`formatUsd`): an optional `-`, the integer part without leading zeros,
 * a `.`, then the fractional digits with trailing zeros trimmed but never fewer than 2:
 * `"0.00"`, `"25.00"`, `"0.10"`, `"0.000001"`, `"12345678901.123456789012"`, `"-2.50"`.
 * Equal amounts always render as the same string, whatever the backend stored.
 *
 * (A later change moves this to `protocol/money.ts`; keep the API this small.)
 */

/** Fractional decimal digits a USD amount may carry: 1 picodollar is the smallest step. */
export const USD_SCALE = 12;

/** Picodollars in one USD. */
export const PICO_PER_USD = 10n ** BigInt(USD_SCALE);

// ASCII digits only (no `u` flag, so `\d` is [0-9]); no exponent, no `+`, no bare `.5` / `5.`.
const USD_TEXT = /^(-?)(\d+)(?:\.(\d{1,12}))?$/;

/**
 * Parses a decimal USD string (`"25"`, `"0.000001"`, `"-2.5"`) into picodollars.
 *
 * Throws `TypeError` for anything else: a non-string, exponents (`"1e-3"`), `"NaN"`,
 * `"Infinity"`, more than 12 fractional digits, whitespace, `+`, `,` or an empty string.
 */
export function parseUsd(text: string): bigint {
  if (typeof text !== "string") {
    throw new TypeError(`Cannot parse a USD amount from a ${typeof text}: send a decimal string`);
  }
  const m = USD_TEXT.exec(text);
  if (!m) {
    const shown = text.length > 40 ? `${text.slice(0, 40)}…` : text;
    throw new TypeError(
      `Cannot parse USD amount "${shown}": expected a decimal string such as "25" or ` +
        `"0.000001", with at most ${USD_SCALE} fractional digits`,
    );
  }
  const [, sign, whole, fraction = ""] = m as unknown as [string, string, string, string?];
  const pico = BigInt(whole) * PICO_PER_USD + BigInt(fraction.padEnd(USD_SCALE, "0"));
  return sign === "-" ? -pico : pico;
}

/** Renders picodollars in the canonical form described in the module docs. */
export function formatUsd(pico: bigint): string {
  const negative = pico < 0n;
  const abs = negative ? -pico : pico;
  const fraction = (abs % PICO_PER_USD).toString().padStart(USD_SCALE, "0")
    .replace(/0+$/, "").padEnd(2, "0");
  return `${negative ? "-" : ""}${abs / PICO_PER_USD}.${fraction}`;
}
