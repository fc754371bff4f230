/**
 * Limiter benchmark (not a test): decisions/s of one 2-rule acquire (RPM + TPM) per decision,
 * for the memory and Redis limiters, sequential and with 64 acquires in flight.
 *
 *   deno run -A hub/limits/bench_limiter.ts [seconds-per-row=2] [redisUrl]
 *
 * Keys rotate over 1,000 "API keys" with generous limits, so nearly every decision is an
 * allow (the expensive path: trim + check + charge). Prints a table and one JSON line
 * {"bench":"limiter",...}. Redis keys live under a random prefix and are deleted at the end.
 */
import { deleteByPrefix } from "./_conformance_harness.ts";
import { MemoryLimiter } from "./memory.ts";
import type { Acquire, Limiter } from "./mod.ts";
import { RedisLimiter } from "./redis.ts";

const seconds = Number(Deno.args[0] ?? 2);
const url = Deno.args[1] ?? Deno.env.get("AQUEDUCT_TEST_REDIS") ?? "redis://127.0.0.1:6379";
const KEYS = 1_000;

function partsFor(i: number): Acquire[] {
  const k = i % KEYS;
  return [
    { rule: { key: `key:${k}:rpm`, limit: 1_000_000, windowMs: 10_000 }, units: 1 },
    { rule: { key: `key:${k}:tpm`, limit: 1_000_000_000, windowMs: 10_000 }, units: 500 },
  ];
}

interface Row {
  limiter: string;
  inFlight: number;
  decisions: number;
  allowed: number;
  perSec: number;
  p50us: number;
  p99us: number;
}

async function run(name: string, l: Limiter, inFlight: number): Promise<Row> {
  let i = 0, allowed = 0;
  const lat: number[] = [];
  const deadline = performance.now() + seconds * 1_000;
  const worker = async () => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      if ((await l.acquire(partsFor(i++))).allowed) allowed++;
      lat.push(performance.now() - t0);
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: inFlight }, worker));
  const elapsed = (performance.now() - start) / 1_000;
  lat.sort((a, b) => a - b);
  const q = (p: number) => Math.round((lat[Math.floor(p * (lat.length - 1))] ?? 0) * 1_000);
  return {
    limiter: name,
    inFlight,
    decisions: lat.length,
    allowed,
    perSec: Math.round(lat.length / elapsed),
    p50us: q(0.5),
    p99us: q(0.99),
  };
}

const rows: Row[] = [];
const memory = new MemoryLimiter();
await run("memory", memory, 1); // warm-up
for (const n of [1, 64]) rows.push(await run("memory", memory, n));
await memory.close();

const prefix = `aqbench:${crypto.randomUUID()}:`;
const redis = await RedisLimiter.connect(url, { prefix });
try {
  for (let w = 0; w < 500; w++) await redis.acquire(partsFor(w)); // warm-up, script cached
  for (const n of [1, 64]) rows.push(await run("redis", redis, n));
} finally {
  await deleteByPrefix(redis, prefix);
  await redis.close();
}

console.log(`limiter bench: ${seconds} s per row, 2 rules per acquire, ${KEYS} keys`);
console.log("| limiter | in flight | decisions/s | p50 µs | p99 µs | decisions | allowed |");
console.log("|---|---:|---:|---:|---:|---:|---:|");
for (const r of rows) {
  console.log(
    `| ${r.limiter} | ${r.inFlight} | ${
      r.perSec.toLocaleString("en")
    } | ${r.p50us} | ${r.p99us} | ${r.decisions} | ${r.allowed} |`,
  );
}
console.log(JSON.stringify({ bench: "limiter", seconds, rulesPerAcquire: 2, keys: KEYS, rows }));
