import assert from "node:assert/strict";
import {
  DECIMAL_ONE,
  divRoundHalfEven,
  formatDecimal,
  formatUsd,
  mulRatio,
  parseDecimal,
  parseUsd,
  PICO_PER_USD,
  sumMoney,
} from "./money.ts";

Deno.test("parseUsd / formatUsd: canonical forms", () => {
  const cases: [string, bigint, string][] = [
    ["0", 0n, "0.00"],
    ["25", 25n * PICO_PER_USD, "25.00"],
    ["0.1", 100_000_000_000n, "0.10"],
    ["0.000001", 1_000_000n, "0.000001"],
    ["0.000000000001", 1n, "0.000000000001"],
    ["-2.5", -2_500_000_000_000n, "-2.50"],
    ["12345678901.123456789012", 12345678901123456789012n, "12345678901.123456789012"],
    ["007.50", 7_500_000_000_000n, "7.50"],
  ];
  for (const [text, pico, canon] of cases) {
    assert.equal(parseUsd(text), pico, text);
    assert.equal(formatUsd(pico), canon, text);
  }
});

Deno.test("parseUsd / parseDecimal reject non-decimal text", () => {
  for (
    const bad of ["", "1e-3", "NaN", "Infinity", " 1", "+1", "1,5", ".5", "5.", "0.0000000000001"]
  ) {
    assert.throws(() => parseUsd(bad), TypeError, bad);
    assert.throws(() => parseDecimal(bad), TypeError, bad);
  }
  assert.throws(() => parseUsd(1 as unknown as string), TypeError);
  assert.throws(() => parseDecimal(0.9), TypeError);
  assert.throws(() => parseDecimal("-0.5"), TypeError);
  assert.throws(() => formatUsd(1 as unknown as bigint), TypeError);
  assert.equal(parseDecimal("0.90"), 900_000_000_000n);
  assert.equal(formatDecimal(parseDecimal("1.250")), "1.25");
});

Deno.test("divRoundHalfEven: the one rounding rule", () => {
  const cases: [bigint, bigint, bigint][] = [
    [5n, 10n, 0n], // 0.5 → 0 (even)
    [15n, 10n, 2n], // 1.5 → 2
    [25n, 10n, 2n], // 2.5 → 2
    [26n, 10n, 3n],
    [24n, 10n, 2n],
    [-5n, 10n, 0n],
    [-15n, 10n, -2n],
    [-25n, 10n, -2n],
    [-26n, 10n, -3n],
    [7n, 1n, 7n],
  ];
  for (const [n, d, q] of cases) assert.equal(divRoundHalfEven(n, d), q, `${n}/${d}`);
  assert.throws(() => divRoundHalfEven(1n, 0n), RangeError);
});

Deno.test("mulRatio and sumMoney", () => {
  assert.equal(mulRatio(parseUsd("10"), "0.90"), parseUsd("9"));
  assert.equal(mulRatio(parseUsd("0.000000000001"), "0.5"), 0n); // half → even
  assert.equal(mulRatio(parseUsd("0.000000000003"), "0.5"), 2n); // 1.5 → 2
  assert.equal(mulRatio(parseUsd("1"), DECIMAL_ONE), parseUsd("1"));
  assert.equal(mulRatio(parseUsd("2"), "1.25"), parseUsd("2.5"));
  assert.throws(() => mulRatio(1n, -1n), RangeError);
  assert.equal(sumMoney([1n, 2n, -3n, parseUsd("0.10")]), parseUsd("0.10"));
  assert.throws(() => sumMoney([1 as unknown as bigint]), TypeError);
});

Deno.test("no floats on money paths: sources avoid float parsing and Math", async () => {
  for (const file of ["money.ts", "pricing.ts", "prices_default.ts"]) {
    const src = await Deno.readTextFile(new URL(`./${file}`, import.meta.url));
    const code = src.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
    for (
      const banned of [/parseFloat/, /\bNumber\(/, /toFixed/, /toPrecision/, /\bMath\./, /parseInt/]
    ) {
      assert.doesNotMatch(code, banned, `${file} uses ${banned}`);
    }
  }
});
