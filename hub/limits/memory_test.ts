/** Memory-only properties: bounded maps, idle-key sweeping, limit scaling (fake clock). */
import assert from "node:assert/strict";
import type { Clock } from "../../protocol/clock.ts";
import { MemoryLimiter } from "./memory.ts";

function fakeClock(): Clock & { t: number } {
  const c = { t: 0, nowMs: () => c.t, monoMs: () => c.t };
  return c;
}

Deno.test("memory limiter: idle keys are swept, like Redis PEXPIRE", async () => {
  const clock = fakeClock();
  const l = new MemoryLimiter({ clock });
  for (let i = 0; i < 100; i++) {
    await l.acquire([{ rule: { key: `k${i}`, limit: 5, windowMs: 1_000 }, units: 1 }]);
    await l.acquireSlot(`s${i}`, 1, 1_000);
  }
  assert.deepEqual(l.size, { rules: 100, slots: 100 });
  clock.t += 1_000; // every window and slot TTL has passed
  for (let i = 0; i < 60; i++) {
    await l.acquire([{ rule: { key: "hot", limit: 1e9, windowMs: 1_000 }, units: 1 }]);
    await l.acquireSlot("hot", 1e9, 1_000);
  }
  assert.deepEqual(l.size, { rules: 1, slots: 1 }, "two idle keys dropped per call");
});

Deno.test("memory limiter: maxKeys bounds the maps (least recently used goes first)", async () => {
  const clock = fakeClock();
  const l = new MemoryLimiter({ clock, maxKeys: 10 });
  const rule = (i: number) => ({ key: `k${i}`, limit: 1, windowMs: 60_000 });
  for (let i = 0; i < 50; i++) {
    assert.ok((await l.acquire([{ rule: rule(i), units: 1 }])).allowed);
    assert.ok((await l.acquireSlot(`s${i}`, 1, 60_000)).allowed);
    if (i >= 40) assert.equal((await l.acquire([{ rule: rule(40), units: 1 }])).allowed, false);
  }
  assert.deepEqual(l.size, { rules: 10, slots: 10 });
  assert.equal((await l.acquire([{ rule: rule(40), units: 1 }])).allowed, false, "recent key kept");
  assert.equal(
    (await l.acquire([{ rule: rule(0), units: 1 }])).allowed,
    true,
    "evicted: forgotten",
  );
});

Deno.test("memory limiter: limitScale gives each process its share (1 / hub count)", async () => {
  const l = new MemoryLimiter({ clock: fakeClock(), limitScale: 1 / 3 });
  const rule = { key: "k", limit: 60, windowMs: 60_000 };
  let ok = 0;
  for (let i = 0; i < 100; i++) if ((await l.acquire([{ rule, units: 1 }])).allowed) ok++;
  assert.equal(ok, 20);
  const tiny = { key: "tiny", limit: 2, windowMs: 60_000 };
  assert.ok((await l.acquire([{ rule: tiny, units: 1 }])).allowed, "never scaled below 1");
  assert.ok((await l.acquireSlot("s", 2, 1_000)).allowed);
  assert.equal((await l.acquireSlot("s", 2, 1_000)).allowed, false);
});

Deno.test("memory limiter: a long log stays O(requests) and compacts", async () => {
  const clock = fakeClock();
  const l = new MemoryLimiter({ clock });
  const rule = { key: "tpm", limit: 1_000_000, windowMs: 1_000 };
  for (let i = 0; i < 10_000; i++) {
    await l.acquire([{ rule, units: 50 }]);
    clock.t += 1;
  }
  assert.equal(l.entryCount("tpm"), 999, "only entries younger than 1 s (t = 9001..9999) are live");
});
