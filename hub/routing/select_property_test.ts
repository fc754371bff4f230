/**
 * Property tests of `select` on 10 000 seeded random candidates. The seed is printed; replay a
 * failure with `ROUTING_TEST_SEED=<seed> deno test -A hub/routing/select_property_test.ts`.
 */
import assert from "node:assert/strict";
import { seededRandom } from "../../protocol/prng.ts";
import { ctx, population } from "./_test_fixtures.ts";
import { meetsGrade, ratioRankValue } from "./grades.ts";
import { parsePolicy, type Policy } from "./policy.ts";
import { rankOrder } from "./rank.ts";
import { type Candidate, scoreCandidate, select } from "./select.ts";

function testSeed(): number {
  let env: string | undefined;
  try {
    env = Deno.env.get("ROUTING_TEST_SEED");
  } catch {
    // No env permission: a fresh seed each run still gets printed.
  }
  return env ? Number(env) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
}

/** The filters written out plainly, independent of the implementation. */
function passes(c: Candidate, p: Policy): boolean {
  const healthy = c.breaker === "closed" || (c.breaker === "half-open" && !c.probeInFlight);
  if (c.vendor !== "openai" || !healthy) return false;
  if (c.models.length > 0 && !c.models.includes("gpt-4o")) return false;
  switch (p.type) {
    case "auto":
      return true;
    case "grade":
      return meetsGrade(c.grade, p.minGrade);
    case "cheapest":
      return p.minGrade === null || meetsGrade(c.grade, p.minGrade);
    case "pinned":
      return p.agents.includes(c.agentId) || p.channels.includes(`${c.agentId}/${c.channelId}`);
  }
}

/** The ordering key under `p`: lower is better. */
function key(c: Candidate, p: Policy): [number, number] {
  return [p.type === "cheapest" ? ratioRankValue(c.payoutRatio) : 0, -scoreCandidate(c)];
}
const cmp = (a: [number, number], b: [number, number]) => a[0] - b[0] || a[1] - b[1];

Deno.test("select on 10 000 candidates: filters hold, order is by the policy's key", () => {
  const seed = testSeed();
  console.log(`property seed ${seed}`);
  const candidates = population(10_000, seed);
  const r = seededRandom(seed ^ 0x5bd1e995);
  const someAgents = Array.from({ length: 40 }, () => `agt_${Math.floor(r() * 2_500)}`);
  const someChannels = Array.from(
    { length: 40 },
    () => `agt_${Math.floor(r() * 2_500)}/c${Math.floor(r() * 4)}`,
  );
  const policies = [
    parsePolicy(null),
    parsePolicy({ type: "grade", minGrade: "A" }),
    parsePolicy({ type: "grade", minGrade: "C" }),
    parsePolicy({ type: "cheapest" }),
    parsePolicy({ type: "cheapest", minGrade: "B" }),
    parsePolicy({ type: "pinned", agents: someAgents, channels: someChannels }),
  ];
  for (const policy of policies) {
    const label = `${JSON.stringify(policy).slice(0, 50)} seed ${seed}`;
    const got = select(candidates, policy, ctx(seed));
    const expected = candidates.filter((c) => passes(c, policy));
    assert.equal(got.length, expected.length, `${label}: every passing candidate is returned`);
    assert.equal(new Set(got).size, got.length, `${label}: no duplicates`);
    for (const c of got) assert.ok(passes(c, policy), `${label}: ${c.agentId} passes`);
    for (let i = 1; i < got.length; i++) {
      assert.ok(cmp(key(got[i - 1]!, policy), key(got[i]!, policy)) <= 0, `${label}: order @${i}`);
    }
    if (expected.length > 0) {
      const best = expected.reduce((a, b) => (cmp(key(b, policy), key(a, policy)) < 0 ? b : a));
      assert.deepEqual(key(got[0]!, policy), key(best, policy), `${label}: first is best`);
    }
    // A limited selection is a prefix of the same ordering (keys equal; ties may differ).
    const top = select(candidates, policy, ctx(seed, { limit: 5 }));
    assert.deepEqual(top.map((c) => key(c, policy)), got.slice(0, 5).map((c) => key(c, policy)));
  }
});

Deno.test("rankOrder: counting sort and comparator fallback agree on keys", () => {
  const seed = testSeed();
  console.log(`rankOrder seed ${seed}`);
  const r = seededRandom(seed);
  for (const n of [0, 1, 2, 7, 100, 5_000]) {
    const steps = Uint16Array.from({ length: n }, () => Math.floor(r() * 1001));
    const classes = Uint32Array.from({ length: n }, () => Math.floor(r() * 3));
    for (const cls of [null, classes]) {
      const input = { steps, classes: cls, classCount: cls ? 3 : 1, random: seededRandom(seed) };
      const fast = rankOrder(input), slow = rankOrder(input, Infinity, true);
      const k = (i: number) => (cls ? cls[i]! * 2000 : 0) - steps[i]!;
      assert.deepEqual(Array.from(fast, k), Array.from(slow, k), `n=${n} seed ${seed}`);
      assert.deepEqual([...fast].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
      assert.equal(rankOrder(input, 3).length, Math.min(3, n));
    }
  }
});

Deno.test("rankOrder shuffles equal keys uniformly", () => {
  const seed = 4242;
  console.log(`uniform seed ${seed}`);
  const random = seededRandom(seed);
  const steps = new Uint16Array(5).fill(500);
  const counts = new Array<number>(5).fill(0);
  for (let i = 0; i < 10_000; i++) {
    counts[rankOrder({ steps, classes: null, classCount: 1, random }, 1)[0]!]!++;
  }
  for (const n of counts) assert.ok(Math.abs(n - 2_000) < 200, `first-place counts ${counts}`);
});
