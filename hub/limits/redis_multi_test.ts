/**
 * Multi-process exactness: two separate Deno processes (two "hub processes") hammer the same
 * rule on the shared Redis at the same moment; exactly `limit` acquires are allowed in total.
 */
import assert from "node:assert/strict";
import { deleteByPrefix, TEST_REDIS } from "./_conformance_harness.ts";
import { RedisLimiter } from "./redis.ts";

const HAMMER = new URL("./_hammer.ts", import.meta.url).pathname;

interface HammerResult {
  allowed: number;
  refused: number;
  burstMs: number;
  startedAt: number;
}

async function runHammers(prefix: string, key: string, args: number[]): Promise<HammerResult[]> {
  const procs = [0, 1].map(() =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net", "--allow-env", "--allow-read", HAMMER, TEST_REDIS, prefix, key]
        .concat(args.map(String), ["2"]),
      stdout: "piped",
      stderr: "piped",
    }).output()
  );
  const outs = await Promise.all(procs);
  return outs.map((o, i) => {
    const err = new TextDecoder().decode(o.stderr);
    assert.equal(o.code, 0, `hammer ${i} exited ${o.code}: ${err}`);
    return JSON.parse(new TextDecoder().decode(o.stdout).trim()) as HammerResult;
  });
}

Deno.test("redis limiter: two processes × 200 concurrent acquires, limit 60 → exactly 60", async () => {
  const prefix = `aqtest:multi:${crypto.randomUUID()}:`;
  const probe = await RedisLimiter.connect(TEST_REDIS, { prefix }); // fails clearly if down
  try {
    const windowMs = 2_000;
    const results = await runHammers(prefix, "key:k1:rpm", [200, 60, windowMs]);
    for (const r of results) {
      assert.equal(r.allowed + r.refused, 200);
      assert.ok(r.burstMs < windowMs, `burst took ${r.burstMs} ms: not inside one window`);
    }
    const total = results.reduce((s, r) => s + r.allowed, 0);
    assert.equal(total, 60, `allowed per process: ${results.map((r) => r.allowed).join(" + ")}`);
    assert.equal(await probe.redis.zcard(probe.keysOf("key:k1:rpm")[0]), 60);
    const [a, b] = results as [HammerResult, HammerResult];
    console.log(
      `allowed ${a.allowed} + ${b.allowed} = ${total}; bursts ${a.burstMs.toFixed(1)} and ` +
        `${b.burstMs.toFixed(1)} ms, starts ${Math.abs(a.startedAt - b.startedAt)} ms apart`,
    );
  } finally {
    await deleteByPrefix(probe, prefix);
    await probe.close();
  }
});
