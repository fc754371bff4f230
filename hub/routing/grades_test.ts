import assert from "node:assert/strict";
import { statsOf } from "./_test_fixtures.ts";
import {
  DEFAULT_GRADE,
  DEFAULT_PAYOUT_RATIOS,
  type Grade,
  GRADE_THRESHOLDS,
  gradeOf,
  meetsGrade,
  parsePayoutRatio,
  parsePayoutTable,
  ratioRankValue,
} from "./stats.ts";

Deno.test("gradeOf applies the documented thresholds", () => {
  // statsOf(ok, fail, ttftP50) sets ttftP90 = 2 × p50.
  const cases: [string, ReturnType<typeof statsOf>, Grade][] = [
    ["no history → default", statsOf(0, 0), DEFAULT_GRADE],
    ["19 samples → default", statsOf(19, 0, 50), "B"],
    ["19 failures → still default", statsOf(0, 19), "B"],
    ["20 failures → C", statsOf(0, 20), "C"],
    ["S: 99.5%, p90 2000", statsOf(995, 5, 1_000), "S"],
    ["S needs p90 ≤ 2000", statsOf(1000, 0, 1_001), "A"],
    ["S needs 99.5%", statsOf(994, 6, 100), "A"],
    ["A: 98%, p90 4000", statsOf(98, 2, 2_000), "A"],
    ["A needs p90 ≤ 4000", statsOf(100, 0, 2_001), "B"],
    ["B: 95%, p90 8000", statsOf(95, 5, 4_000), "B"],
    ["B needs 95%", statsOf(94, 6, 100), "C"],
    ["slow but available → C", statsOf(100, 0, 4_001), "C"],
    ["unknown TTFT → availability only", statsOf(100, 0), "S"],
  ];
  for (const [name, stats, grade] of cases) assert.equal(gradeOf(stats), grade, name);
  // The honeypot slot is accepted (reserved, no effect yet) and thresholds are configurable.
  assert.equal(gradeOf(statsOf(100, 0, 100), { honeypotAccuracy: 0.2 }), "S");
  const strict = { ...GRADE_THRESHOLDS, minSamples: 1, S: { availability: 1, ttftP90Ms: 100 } };
  assert.equal(gradeOf(statsOf(5, 0, 100), {}, strict), "A");
  assert.equal(gradeOf(statsOf(5, 0, 50), {}, strict), "S");
});

Deno.test("meetsGrade orders S > A > B > C", () => {
  const order: Grade[] = ["S", "A", "B", "C"];
  for (const [i, g] of order.entries()) {
    for (const [j, min] of order.entries()) {
      assert.equal(meetsGrade(g, min), i <= j, `${g} ≥ ${min}`);
    }
  }
});

Deno.test("payout ratios are exact decimal strings", () => {
  assert.deepEqual(DEFAULT_PAYOUT_RATIOS, { S: "0.90", A: "0.80", B: "0.65", C: "0.50" });
  assert.ok(Object.isFrozen(DEFAULT_PAYOUT_RATIOS));
  for (const v of Object.values(DEFAULT_PAYOUT_RATIOS)) assert.equal(typeof v, "string");
  const cases: [string, bigint][] = [
    ["0", 0n],
    ["1", 1_000_000_000_000n],
    ["0.90", 900_000_000_000n],
    ["0.65", 650_000_000_000n],
    ["0.000000000001", 1n],
    ["1.000", 1_000_000_000_000n],
  ];
  for (const [text, units] of cases) assert.equal(parsePayoutRatio(text), units, text);
  for (const bad of [0.9, "1.01", "2", "-0.5", ".5", "0.5 ", "1e-1", "0.1234567890123", ""]) {
    assert.throws(() => parsePayoutRatio(bad), TypeError, String(bad));
  }
  assert.equal(ratioRankValue("0.80"), 800_000_000_000);
  assert.equal(ratioRankValue("nonsense"), Infinity, "unparseable ranks most expensive");
});

Deno.test("parsePayoutTable validates a configured table", () => {
  assert.equal(parsePayoutTable(null), DEFAULT_PAYOUT_RATIOS);
  assert.deepEqual(parsePayoutTable({ S: "0.95", C: "0.4" }), {
    S: "0.95",
    A: "0.80",
    B: "0.65",
    C: "0.4",
  });
  const bad: [unknown, RegExp][] = [
    [[], /must be an object/],
    ["0.9", /must be an object/],
    [{ D: "0.1" }, /Unknown grade "D"/],
    [{ S: 0.9 }, /grade S: A payout ratio must be a decimal string/],
    [{ A: "1.5" }, /grade A: .*at most 1/],
    [{ B: "0.85" }, /grade B \(0.85\) exceeds the better grade's/],
  ];
  for (const [input, message] of bad) assert.throws(() => parsePayoutTable(input), message);
});
