/**
 * Microbenchmark of `select`: µs per routing decision at 100 / 1 000 / 10 000 candidates for
 * each policy, then one JSON line for the bench collector.
 *
 *   deno run hub/routing/bench_select.ts [--seed=N] [--iterations=N]
 *
 * Candidates are built once (as the gateway would reuse its candidate list's inputs); what is
 * timed is filtering, scoring and ordering — the whole of `select`.
 * @module
 */
import process from "node:process";
import { seededRandom } from "../../protocol/prng.ts";
import { population } from "./_test_fixtures.ts";
import { parsePolicy, type Policy } from "./policy.ts";
import { select } from "./select.ts";

const arg = (name: string, fallback: number) => {
  const hit = Deno.args.find((a) => a.startsWith(`--${name}=`));
  return hit ? Number(hit.slice(name.length + 3)) : fallback;
};
const seed = arg("seed", 20240601);
const iterations = arg("iterations", 0); // 0 = adaptive: about 200 ms per case

const pinned = parsePolicy({
  type: "pinned",
  agents: Array.from({ length: 50 }, (_, i) => `agt_${i * 7}`),
  channels: ["agt_3/c1", "agt_11/c2"],
});
const cases: { name: string; policy: Policy; limit?: number }[] = [
  { name: "auto", policy: parsePolicy(null) },
  { name: "auto_top3", policy: parsePolicy(null), limit: 3 },
  { name: "grade", policy: parsePolicy({ type: "grade", minGrade: "A" }) },
  { name: "cheapest", policy: parsePolicy({ type: "cheapest", minGrade: "B" }) },
  { name: "pinned", policy: pinned },
];

console.log(`seed ${seed}`);
const results: Record<string, Record<string, number>> = {};
const cpuResults: Record<string, Record<string, number>> = {};
for (const n of [100, 1_000, 10_000]) {
  const candidates = population(n, seed + n);
  for (const { name, policy, limit } of cases) {
    const random = seededRandom(seed);
    const ctx = { vendor: "openai", model: "gpt-4o", nowMs: 0, random, limit };
    let chosen = 0;
    const run = (times: number) => {
      const t0 = performance.now(), cpu0 = process.cpuUsage();
      for (let i = 0; i < times; i++) chosen += select(candidates, policy, ctx).length;
      const cpu = process.cpuUsage(cpu0);
      return { wallMs: performance.now() - t0, cpuMs: (cpu.user + cpu.system) / 1000 };
    };
    run(50); // warm up the JIT
    let times = iterations;
    if (times <= 0) times = Math.max(20, Math.ceil(200 / Math.max(run(20).wallMs / 20, 1e-3)));
    const { wallMs, cpuMs } = run(times);
    const us = (wallMs / times) * 1000, cpuUs = (cpuMs / times) * 1000;
    (results[name] ??= {})[String(n)] = Math.round(us * 10) / 10;
    (cpuResults[name] ??= {})[String(n)] = Math.round(cpuUs * 10) / 10;
    console.log(
      `${name.padEnd(10)} n=${String(n).padStart(6)}  ${us.toFixed(1).padStart(8)} µs/decision` +
        ` (cpu ${cpuUs.toFixed(1)} µs)  ${times} runs, ${
          Math.round(chosen / (times + 70))
        } returned`,
    );
  }
}
// `results` is wall time; `cpu` is this process's CPU time, steadier on a shared machine.
console.log(JSON.stringify({
  bench: "routing-select",
  unit: "us_per_decision",
  seed,
  results,
  cpu: cpuResults,
}));
