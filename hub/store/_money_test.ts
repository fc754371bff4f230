import assert from "node:assert/strict";
import { formatUsd, parseUsd, PICO_PER_USD } from "./_money.ts";

Deno.test("parseUsd reads decimal strings exactly, in picodollars", () => {
  const cases: [string, bigint][] = [
    ["0", 0n],
    ["-0", 0n],
    ["0.00", 0n],
    ["25", 25n * PICO_PER_USD],
    ["007.5", 7_500_000_000_000n],
    ["0.1", 100_000_000_000n],
    ["0.000001", 1_000_000n],
    ["0.000000000001", 1n],
    ["-2.5", -2_500_000_000_000n],
    ["12345678901.123456789012", 12345678901_123456789012n],
    ["99999999999999999999999999.999999999999", 10n ** 38n - 1n],
  ];
  for (const [text, pico] of cases) assert.equal(parseUsd(text), pico, text);
});

Deno.test("parseUsd rejects floats, junk and excess precision with TypeError", () => {
  const bad = [
    "",
    "-",
    ".",
    ".5",
    "5.",
    "+1",
    "1e-3",
    "1E3",
    "NaN",
    "Infinity",
    "-Infinity",
    "0x10",
    " 1",
    "1 ",
    "1,5",
    "1.2.3",
    "--1",
    "0.1234567890123",
    "١٢",
    "1_000",
  ];
  for (const text of bad) assert.throws(() => parseUsd(text), TypeError, JSON.stringify(text));
  for (const value of [0.001, 1, null, undefined, 1n]) {
    assert.throws(() => parseUsd(value as unknown as string), TypeError, String(value));
  }
});

Deno.test("formatUsd trims trailing zeros but keeps at least 2 decimals", () => {
  const cases: [bigint, string][] = [
    [0n, "0.00"],
    [1n, "0.000000000001"],
    [100_000_000_000n, "0.10"],
    [1_000_000n, "0.000001"],
    [25n * PICO_PER_USD, "25.00"],
    [-2_500_000_000_000n, "-2.50"],
    [-1n, "-0.000000000001"],
    [12345678901_123456789012n, "12345678901.123456789012"],
    [10n ** 38n - 1n, "99999999999999999999999999.999999999999"],
  ];
  for (const [pico, text] of cases) assert.equal(formatUsd(pico), text, text);
});

Deno.test("formatUsd ∘ parseUsd is canonical: equal amounts render alike", () => {
  const same = ["12.5", "12.50", "12.500000000000", "0012.5"];
  assert.deepEqual(new Set(same.map((s) => formatUsd(parseUsd(s)))), new Set(["12.50"]));
  let sum = 0n;
  for (let i = 0; i < 10; i++) sum += parseUsd("0.1");
  assert.equal(formatUsd(sum), "1.00");
  for (const text of ["0.00", "1.00", "0.10", "0.000001", "-3.25", "123.456789012345"]) {
    assert.equal(formatUsd(parseUsd(text)), text);
  }
});
