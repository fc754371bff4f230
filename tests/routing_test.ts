/**
 * Routing with real processes: several agents, each with its own fake vendor that a test can make
 * fail. Each policy picks what it should; a failing channel is failed over before the first byte,
 * skipped while its breaker is open, and taken back after a half-open probe.
 */
import assert from "node:assert/strict";
import { admin } from "./support/cluster.ts";
import { chat, servedCounts, startFleet } from "./support/fleet.ts";
import { waitFor } from "./support/process.ts";

Deno.test("policies: pinned, minimum grade, cheapest, auto", async (t) => {
  const fleet = await startFleet({
    agents: [{ name: "alpha", tier: 1 }, { name: "beta" }, { name: "gamma" }],
  });
  const [alpha, beta] = fleet.agents as [typeof fleet.agents[0], typeof fleet.agents[0]];
  const hub = fleet.hubs[0]!;
  const run = async (key: string, n: number) => {
    for (let i = 0; i < n; i++) assert.equal((await chat(hub, key, `r${i}`)).status, 200);
  };
  try {
    await t.step("pinned: only the pinned agent serves", async () => {
      const { key } = await fleet.key({ policy: { type: "pinned", agents: [beta.id] } });
      const before = servedCounts(fleet);
      await run(key, 8);
      const after = servedCounts(fleet);
      assert.equal(after.beta! - before.beta!, 8);
      assert.equal(after.alpha, before.alpha);
      assert.equal(after.gamma, before.gamma);
    });

    await t.step(
      "grade: nothing below the minimum (alpha earns S; new agents start at B)",
      async () => {
        const { key: warm } = await fleet.key({ policy: { type: "pinned", agents: [alpha.id] } });
        await run(warm, 25);
        const view = (await admin(hub, "GET", `/agents/${alpha.id}`)).json;
        assert.equal(view.grade, "S", JSON.stringify(view.stats));
        assert.equal(view.payoutRatio, "0.90");
        assert.equal((await admin(hub, "GET", `/agents/${beta.id}`)).json.grade, "B");
        const { key } = await fleet.key({ policy: { type: "grade", minGrade: "A" } });
        const before = servedCounts(fleet);
        await run(key, 6);
        assert.equal(servedCounts(fleet).alpha! - before.alpha!, 6);
      },
    );

    await t.step("cheapest: the lowest payout ratio that meets the grade", async () => {
      const { key } = await fleet.key({ policy: { type: "cheapest" } });
      const before = servedCounts(fleet);
      await run(key, 6);
      const after = servedCounts(fleet);
      assert.equal(after.alpha, before.alpha, "S pays 0.90: never the cheapest");
      const { key: good } = await fleet.key({ policy: { type: "cheapest", minGrade: "A" } });
      await run(good, 3);
      assert.equal(servedCounts(fleet).alpha! - after.alpha!, 3);
    });

    await t.step(
      "a key's policy can be changed (PATCH), and bad policies are refused",
      async () => {
        const { id, key } = await fleet.key();
        const patched = await admin(hub, "PATCH", `/keys/${id}`, {
          policy: { type: "pinned", agents: [beta.id] },
        });
        assert.equal(patched.status, 200);
        assert.deepEqual(patched.json.policy.agents, [beta.id]);
        const bad = await admin(hub, "PATCH", `/keys/${id}`, { policy: { type: "fastest" } });
        assert.equal(bad.status, 400);
        await waitFor(
          async () => {
            const before = servedCounts(fleet).beta!;
            await chat(hub, key);
            return servedCounts(fleet).beta! === before + 1;
          },
          "the new policy takes effect (key cache ≤ 5 s)",
          10_000,
        );
      },
    );
  } finally {
    await fleet.stop();
  }
});

Deno.test("health: failover before the first byte, breaker open → half-open probe → closed", async () => {
  const fleet = await startFleet({
    agents: [{ name: "flaky" }, { name: "steady" }],
    hubEnv: { HUB_BREAKER_COOLDOWN_MS: "1000" },
  });
  const [flaky, steady] = fleet.agents as [typeof fleet.agents[0], typeof fleet.agents[0]];
  const hub = fleet.hubs[0]!;
  try {
    // A good record first, so flaky ranks first (a known fast channel beats an unknown one).
    const { key: only } = await fleet.key({ policy: { type: "pinned", agents: [flaky.id] } });
    for (let i = 0; i < 5; i++) assert.equal((await chat(hub, only, `warm ${i}`)).status, 200);
    const warmed = flaky.fake.requests.length;
    flaky.fake.setFailStatus(500);
    // Failover: with both pinned, a request whose first choice fails is served by the second,
    // and the failed channel is never retried for that request.
    const { key: both } = await fleet.key({
      policy: { type: "pinned", agents: [flaky.id, steady.id] },
    });
    let failedOver = 0;
    for (let i = 0; i < 20 && failedOver === 0; i++) {
      const before = servedCounts(fleet);
      const res = await chat(hub, both, `attempt ${i}`);
      assert.equal(
        res.status,
        200,
        JSON.stringify(res.json) +
          hub.proc.lines.slice(-6).map((l) => JSON.stringify(l)).join("\n"),
      );
      const after = servedCounts(fleet);
      assert.ok(
        after.flaky! - before.flaky! <= 1,
        "a failed channel is never retried for the same request",
      );
      assert.equal(after.steady! - before.steady!, 1);
      failedOver += after.flaky! - before.flaky!;
    }
    // Consecutive failures so far: the failover's one; two more through the flaky-only key open it.
    assert.equal(
      failedOver,
      1,
      `the first choice failed before the first byte and the second served: ${
        JSON.stringify(servedCounts(fleet))
      }`,
    );

    // Breaker: three consecutive upstream failures open it; then the channel is not even tried.
    while (flaky.fake.requests.length < warmed + 3) {
      assert.equal((await chat(hub, only)).status, 500);
    }
    // Outcomes are recorded when a response ends, a moment after the client has it.
    await waitFor(
      async () =>
        (await admin(hub, "GET", `/agents/${flaky.id}`)).json.channels[0].breaker === "open",
      "breaker open after three upstream failures",
    );
    const open = await chat(hub, only);
    assert.equal(open.status, 503, JSON.stringify(open.json));
    assert.equal(open.json.error.code, "no_capacity");
    assert.equal(
      flaky.fake.requests.length,
      warmed + 3,
      "an open breaker keeps requests away from the channel",
    );

    // Recovered: after the cooldown one probe goes through, succeeds, and closes the breaker.
    flaky.fake.setFailStatus(null);
    await waitFor(
      async () => (await chat(hub, only, "probe?")).status === 200,
      "half-open probe succeeds",
      10_000,
    );
    await waitFor(
      async () =>
        (await admin(hub, "GET", `/agents/${flaky.id}`)).json.channels[0].breaker === "closed",
      "breaker closed after the good probe",
    );
    assert.ok(hub.proc.lines.some((l) => l.msg === "request finished" && Number(l.attempts) === 2));
  } finally {
    await fleet.stop();
  }
});

Deno.test("auto: prefers the fast healthy channel, and moves away when it degrades", async () => {
  const fleet = await startFleet({ agents: [{ name: "quick" }, { name: "sluggish" }] });
  const [quick, sluggish] = fleet.agents as [typeof fleet.agents[0], typeof fleet.agents[0]];
  const hub = fleet.hubs[0]!;
  try {
    sluggish.fake.setChunkDelayMs(150); // its answers take 150 ms to start
    // No warm-up: auto counts an unmeasured channel's speed as the best possible, so both
    // channels get tried and measured, whichever happens to go first.
    const warmed = servedCounts(fleet);
    const { key } = await fleet.key(); // no policy: auto
    for (let i = 0; i < 30; i++) assert.equal((await chat(hub, key, `auto ${i}`)).status, 200);
    const learned = servedCounts(fleet);
    assert.ok(
      learned.quick! - warmed.quick! >= 20,
      `the fast channel carries most of the traffic: ${JSON.stringify(learned)}`,
    );

    quick.fake.setFailStatus(503);
    for (let i = 0; i < 20; i++) assert.equal((await chat(hub, key, `degraded ${i}`)).status, 200);
    const after = servedCounts(fleet);
    assert.ok(
      after.quick! - learned.quick! <= 3,
      "a failing channel is left after at most three tries",
    );
    assert.ok(after.sluggish! - learned.sluggish! >= 20, "the healthy one takes over");
  } finally {
    await fleet.stop();
  }
});
