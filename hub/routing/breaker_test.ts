import assert from "node:assert/strict";
import { BreakerBoard, type BreakerState } from "./breaker.ts";

const K = "agt_a/main";

type Step =
  | ["ok" | "fail" | "client" | "tunnel", number]
  | ["probe", number, boolean]
  | ["release"]
  | ["expect", number, BreakerState];

/** Replays `steps` on a fresh board (3 failures, 30 s cooldown, 120 s cap, 60 s probe timeout). */
function replay(name: string, steps: Step[]): void {
  const b = new BreakerBoard({
    cooldownMs: 30_000,
    maxCooldownMs: 120_000,
    probeTimeoutMs: 60_000,
  });
  steps.forEach((step, i) => {
    const at = `${name}, step ${i} ${JSON.stringify(step)}`;
    switch (step[0]) {
      case "ok":
        return b.onSuccess(K, step[1]);
      case "fail":
        return b.onFailure(K, step[1]);
      case "client":
        return b.record(K, "client_error", step[1]);
      case "tunnel":
        return b.record(K, "tunnel_failure", step[1]);
      case "probe":
        return assert.equal(b.tryAcquireProbe(K, step[1]), step[2], at);
      case "release":
        return b.releaseProbe(K);
      case "expect":
        return assert.equal(b.state(K, step[1]), step[2], at);
    }
  });
}

Deno.test("breaker transitions, table-driven", () => {
  const cases: [string, Step[]][] = [
    ["fresh channel is closed and admits", [["expect", 0, "closed"], ["probe", 0, true]]],
    ["two failures stay closed", [["fail", 1], ["fail", 2], ["expect", 3, "closed"]]],
    ["three consecutive failures open", [
      ["fail", 1],
      ["fail", 2],
      ["fail", 3],
      ["expect", 3, "open"],
      ["probe", 4, false],
      ["expect", 30_002, "open"],
      ["expect", 30_003, "half-open"],
    ]],
    ["a success while closed resets the count", [
      ["fail", 1],
      ["fail", 2],
      ["ok", 3],
      ["fail", 4],
      ["fail", 5],
      ["expect", 6, "closed"],
      ["fail", 7],
      ["expect", 7, "open"],
    ]],
    ["client errors never count", [
      ["fail", 1],
      ["client", 2],
      ["fail", 3],
      ["client", 4],
      ["client", 5],
      ["client", 6],
      ["expect", 7, "closed"],
      ["fail", 8],
      ["expect", 8, "open"],
    ]],
    ["a lost tunnel never opens the channel (the agent reconnects to a closed breaker)", [
      ["fail", 1],
      ["tunnel", 2],
      ["tunnel", 3],
      ["tunnel", 4],
      ["expect", 5, "closed"],
      ["probe", 5, true],
    ]],
    ["a lost tunnel on the probe releases it without a verdict", [
      ["fail", 0],
      ["fail", 0],
      ["fail", 0],
      ["probe", 30_000, true],
      ["tunnel", 30_100],
      ["expect", 30_100, "half-open"],
      ["probe", 30_200, true],
    ]],
    ["client errors do not reset the count either", [
      ["fail", 1],
      ["fail", 2],
      ["client", 3],
      ["fail", 4],
      ["expect", 4, "open"],
    ]],
    ["half-open admits exactly one probe; success closes", [
      ["fail", 0],
      ["fail", 0],
      ["fail", 0],
      ["probe", 30_000, true],
      ["probe", 30_001, false],
      ["probe", 30_002, false],
      ["expect", 30_003, "half-open"],
      ["ok", 31_000],
      ["expect", 31_000, "closed"],
      ["probe", 31_001, true],
      ["fail", 31_002],
      ["fail", 31_003],
      ["expect", 31_004, "closed"], // counters were reset by the success
    ]],
    ["failed probe reopens with a doubled cooldown, capped", [
      ["fail", 0],
      ["fail", 0],
      ["fail", 0],
      ["probe", 30_000, true],
      ["fail", 30_500], // reopens for 60 s
      ["expect", 90_499, "open"],
      ["expect", 90_500, "half-open"],
      ["probe", 90_500, true],
      ["fail", 91_000], // 120 s
      ["expect", 210_999, "open"],
      ["probe", 211_000, true],
      ["fail", 211_000], // capped at 120 s
      ["expect", 330_999, "open"],
      ["expect", 331_000, "half-open"],
      ["probe", 331_000, true],
      ["ok", 331_100],
      ["expect", 331_100, "closed"],
      ["fail", 400_000],
      ["fail", 400_000],
      ["fail", 400_000], // reopened after a recovery: back to the base 30 s
      ["expect", 429_999, "open"],
      ["expect", 430_000, "half-open"],
    ]],
    ["stragglers during the open cooldown change nothing", [
      ["fail", 0],
      ["fail", 0],
      ["fail", 0],
      ["ok", 10_000],
      ["fail", 20_000],
      ["expect", 29_999, "open"],
      ["expect", 30_000, "half-open"],
    ]],
    ["client error on the probe releases it without a verdict", [
      ["fail", 0],
      ["fail", 0],
      ["fail", 0],
      ["probe", 30_000, true],
      ["client", 30_100],
      ["expect", 30_100, "half-open"],
      ["probe", 30_200, true],
    ]],
    ["releaseProbe hands the probe back", [
      ["fail", 0],
      ["fail", 0],
      ["fail", 0],
      ["probe", 30_000, true],
      ["release"],
      ["probe", 30_001, true],
    ]],
    ["a lost probe expires after probeTimeoutMs", [
      ["fail", 0],
      ["fail", 0],
      ["fail", 0],
      ["probe", 30_000, true],
      ["probe", 89_999, false],
      ["probe", 90_000, true],
    ]],
  ];
  for (const [name, steps] of cases) replay(name, steps);
});

Deno.test("probeInFlight reflects the held probe and its expiry", () => {
  const b = new BreakerBoard({ probeTimeoutMs: 1_000 });
  for (let i = 0; i < 3; i++) b.onFailure(K, 0);
  assert.equal(b.probeInFlight(K, 30_000), false);
  assert.equal(b.tryAcquireProbe(K, 30_000), true);
  assert.equal(b.probeInFlight(K, 30_500), true);
  assert.equal(b.probeInFlight(K, 31_000), false);
  assert.equal(b.probeInFlight("other", 0), false);
});

Deno.test("breakers are per channel and closed channels hold no memory", () => {
  const b = new BreakerBoard();
  for (let i = 0; i < 3; i++) b.onFailure("a/1", 0);
  b.onFailure("a/2", 0);
  assert.equal(b.state("a/1", 1), "open");
  assert.equal(b.state("a/2", 1), "closed");
  assert.equal(b.size, 2);
  b.onSuccess("a/2", 2);
  b.onSuccess("a/1", 30_000); // half-open success closes
  assert.equal(b.size, 0);
});

Deno.test("BreakerBoard validates its options", () => {
  assert.throws(() => new BreakerBoard({ failureThreshold: 0 }), RangeError);
  assert.throws(() => new BreakerBoard({ cooldownMs: -1 }), RangeError);
  assert.equal(new BreakerBoard({ cooldownMs: 500_000 }).maxCooldownMs, 500_000);
});
