/**
 * The happy path with real processes: an agent started as the README says connects, answers
 * echoes, reports its channels (also when they change), and shuts down gracefully.
 */
import assert from "node:assert/strict";
import { admin, agentCli, enrollAgent, runAgent, startHub, waitOnline } from "./support/cluster.ts";
import { tempDir, waitFor } from "./support/process.ts";

Deno.test("agent connects, echoes through the tunnel, reports capabilities, leaves cleanly", async () => {
  const tmp = await tempDir("connect");
  const hub = await startHub({ dir: tmp.path });
  const dir = `${tmp.path}/agent`;
  let agent;
  try {
    const setup = await enrollAgent(hub, dir, { name: "owner-1", tier: 1 });
    await agentCli([
      "channel",
      "add",
      "--vendor",
      "openai",
      "--key",
      "sk-real-1",
      "--models",
      "gpt-4o,gpt-4o-mini",
      "--rpm",
      "60",
      "--tpm",
      "90000",
      "--dir",
      dir,
    ]);
    agent = runAgent(dir);
    const listed = await waitOnline(hub, setup.id);
    assert.equal(listed.name, "owner-1");
    assert.equal(listed.tier, 1);
    assert.deepEqual(listed.capabilities.channels, [
      { id: "openai-1", vendor: "openai", models: ["gpt-4o", "gpt-4o-mini"], rpm: 60, tpm: 90000 },
    ]);
    assert.ok(Date.parse(listed.lastSeenAt) > Date.now() - 60_000);

    const all = await admin(hub, "GET", "/agents");
    assert.equal(all.status, 200);
    assert.equal(all.json.length, 1);
    assert.equal(all.json[0].online, true);
    // The real key never reaches the hub.
    assert.ok(!JSON.stringify(all.json).includes("sk-real-1"));
    assert.ok(!hub.proc.dump().includes("sk-real-1"));

    for (const payload of ["hello", "ünïcödé ✓", "x".repeat(16 * 1024)]) {
      const echo = await admin(hub, "POST", `/agents/${setup.id}/echo`, { payload });
      assert.equal(echo.status, 200, JSON.stringify(echo.json));
      assert.equal(echo.json.payload, payload);
      assert.ok(echo.json.rttMs >= 0 && echo.json.rttMs < 5000);
    }

    // Channels added while running reach the hub without a restart.
    await agentCli(["channel", "add", "--vendor", "anthropic", "--key", "sk-ant-1", "--dir", dir]);
    await waitFor(async () => {
      const a = await admin(hub, "GET", `/agents/${setup.id}`);
      return a.json.capabilities.channels.length === 2 ? a : undefined;
    }, "capabilities update");

    // Graceful shutdown: goodbye + 1000, exit 0, hub marks it offline.
    agent.kill("SIGTERM");
    assert.equal(await agent.exited(), 0);
    const offline = await waitOnline(hub, setup.id, false);
    assert.equal(offline.capabilities.channels.length, 2, "last capabilities are kept");
    await hub.proc.waitForLine(
      (l) => l.msg === "agent offline" && l.code === 1000,
      "offline with 1000",
    )
      .catch((e) => {
        throw new Error(`${e.message}\n${hub.proc.dump()}\n${agent!.dump()}`);
      });
  } finally {
    await agent?.stop();
    await hub.proc.stop();
    await tmp.remove();
  }
});

Deno.test("admin API: auth, validation, unknown agents, offline echo", async () => {
  const tmp = await tempDir("admin");
  const hub = await startHub({ dir: tmp.path });
  try {
    const noAuth = await fetch(`${hub.url}/admin/agents`);
    assert.equal(noAuth.status, 401);
    assert.equal((await noAuth.json()).error.type, "unauthorized");
    const wrong = await admin(hub, "GET", "/agents", undefined, {
      headers: { authorization: "Bearer nope" },
    });
    assert.equal(wrong.status, 401);

    const badKey = await admin(hub, "POST", "/agents", { name: "x", publicKey: "ed25519:AAAA" });
    assert.equal(badKey.status, 400);
    assert.match(badKey.json.error.message, /publicKey/);
    const badTier = await admin(hub, "POST", "/agents", {
      name: "x",
      publicKey: "ed25519:AAAA",
      tier: 7,
    });
    assert.equal(badTier.status, 400);
    const notJson = await fetch(`${hub.url}/admin/agents`, {
      method: "POST",
      headers: { authorization: "Bearer test-admin-token-0123456789" },
      body: "{nope",
    });
    assert.equal(notJson.status, 400);
    assert.equal((await notJson.json()).error.type, "invalid_json");

    const key = "ed25519:" + btoa(String.fromCharCode(...new Uint8Array(32).fill(7)))
      .replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
    const created = await admin(hub, "POST", "/agents", { name: "a", publicKey: key });
    assert.equal(created.status, 201);
    assert.match(created.json.id, /^agt_[0-9a-f]{20}$/);
    const dup = await admin(hub, "POST", "/agents", { name: "b", publicKey: key });
    assert.equal(dup.status, 409);

    assert.equal((await admin(hub, "GET", "/agents/agt_nope")).status, 404);
    assert.equal((await admin(hub, "POST", "/agents/agt_nope/kick")).status, 404);
    const offlineEcho = await admin(hub, "POST", `/agents/${created.json.id}/echo`, {
      payload: "x",
    });
    assert.equal(offlineEcho.status, 409);
    assert.equal(offlineEcho.json.error.type, "agent_offline");

    const health = await fetch(`${hub.url}/healthz`);
    assert.deepEqual(await health.json(), { ok: true, agentsOnline: 0 });
    const metrics = await (await fetch(`${hub.url}/metrics`)).text();
    assert.match(metrics, /aqueduct_agents_online 0/);
    const tunnelGet = await fetch(`${hub.url}/tunnel/connect`);
    assert.equal(tunnelGet.status, 426);
    await tunnelGet.body?.cancel();
  } finally {
    await hub.proc.stop();
    await tmp.remove();
  }
});
