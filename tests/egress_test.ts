/**
 * Egress IP control with real processes: the hub learns each agent's egress IP through a PROBE
 * and refuses vendor accounts past the per-IP cap (default 5), telling the owner why.
 */
import assert from "node:assert/strict";
import { admin, agentCli, enrollAgent, runAgent, startHub, waitOnline } from "./support/cluster.ts";
import { tempDir, waitFor } from "./support/process.ts";

Deno.test("the sixth vendor account behind one egress IP is refused (default cap 5)", async () => {
  const tmp = await tempDir("egress");
  const hub = await startHub({ dir: tmp.path });
  const agents = [];
  try {
    // First agent: 4 accounts. Second agent on the same IP: 2 more — its second is the sixth.
    const first = await enrollAgent(hub, `${tmp.path}/a`);
    for (let i = 1; i <= 4; i++) {
      await agentCli([
        "channel",
        "add",
        "--vendor",
        "openai",
        "--key",
        `sk-a-${i}`,
        "--dir",
        first.dir,
      ]);
    }
    agents.push(runAgent(first.dir));
    await waitOnline(hub, first.id);
    const second = await enrollAgent(hub, `${tmp.path}/b`);
    for (let i = 1; i <= 2; i++) {
      await agentCli([
        "channel",
        "add",
        "--vendor",
        "openai",
        "--key",
        `sk-b-${i}`,
        "--dir",
        second.dir,
      ]);
    }
    const secondProc = runAgent(second.dir);
    agents.push(secondProc);
    await waitOnline(hub, second.id);

    const view = await waitFor(async () => {
      const b = (await admin(hub, "GET", `/agents/${second.id}`)).json;
      return b.session?.egress && b.session.refusedChannels.length === 1 ? b : undefined;
    }, "egress probe and refusal");
    assert.equal(view.session.egress.ip, "127.0.0.1");
    assert.equal(view.session.egress.matchesTunnelIp, true);
    assert.deepEqual(view.session.refusedChannels.map((c: { id: string }) => c.id), ["openai-2"]);
    assert.match(view.session.refusedChannels[0].reason, /5 vendor accounts/);
    const a = (await admin(hub, "GET", `/agents/${first.id}`)).json;
    assert.deepEqual(a.session.refusedChannels, [], "the older agent keeps its accounts");

    const told = await secondProc.waitForLine(
      (l) => l.msg === "hub refuses a channel",
      "owner is told",
    );
    assert.equal(told.channel, "openai-2");

    // Removing one of the first agent's accounts frees a slot: the refusal is lifted.
    await agentCli(["channel", "remove", "--id", "openai-4", "--dir", first.dir]);
    await waitFor(async () => {
      const b = (await admin(hub, "GET", `/agents/${second.id}`)).json;
      return b.session.refusedChannels.length === 0 ? b : undefined;
    }, "refusal lifted");
  } finally {
    for (const p of agents) await p.stop();
    await hub.proc.stop();
    await tmp.remove();
  }
});
