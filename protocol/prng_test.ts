import assert from "node:assert/strict";
import { seededRandom } from "./prng.ts";

const draw = (seed: number, n: number) => {
  const r = seededRandom(seed);
  return Array.from({ length: n }, () => r());
};

Deno.test("same seed gives the same sequence", () => {
  for (const seed of [0, 1, 42, 0xdead_beef, 0xffff_ffff]) {
    assert.deepEqual(draw(seed, 1000), draw(seed, 1000), `seed ${seed}`);
  }
});

Deno.test("different seeds give different sequences", () => {
  const seeds = [0, 1, 2, 3, 42, 1000, 0x8000_0000, 0xfffffffe, 0xffff_ffff];
  const firsts = new Set<string>();
  for (const seed of seeds) firsts.add(draw(seed, 8).join(","));
  assert.equal(firsts.size, seeds.length, "no two seeds share their first 8 outputs");
  // Neighbouring seeds differ from the very first output on.
  for (let seed = 0; seed < 1000; seed++) {
    assert.notEqual(draw(seed, 1)[0], draw(seed + 1, 1)[0], `seeds ${seed} and ${seed + 1}`);
  }
});

Deno.test("outputs lie in [0, 1) and are roughly uniform", () => {
  const n = 100_000;
  const r = seededRandom(12345);
  const buckets = new Array<number>(10).fill(0);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const x = r();
    assert.ok(x >= 0 && x < 1, `output ${x} at ${i} is outside [0, 1)`);
    sum += x;
    buckets[Math.floor(x * 10)]!++;
  }
  const mean = sum / n;
  assert.ok(Math.abs(mean - 0.5) < 0.01, `mean ${mean} is not within 0.01 of 0.5`);
  for (const [i, count] of buckets.entries()) {
    assert.ok(Math.abs(count - n / 10) < n / 100, `bucket ${i} holds ${count} of ${n}`);
  }
});

Deno.test("the sequence does not repeat quickly", () => {
  const values = draw(7, 100_000);
  assert.ok(new Set(values).size > 99_990, "outputs repeat far more than 32-bit chance allows");
});
