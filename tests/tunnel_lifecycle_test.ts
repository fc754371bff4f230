/**
 * Failure and recovery with real processes: a killed or frozen agent is declared offline within
 * the dead-peer timeout, a restarted hub is rejoined on the agent's own, a kicked agent comes
 * back, and a second process with the same identity fences the first.
 */
import assert from "node:assert/strict";
import { CloseCode } from "../protocol/close_codes.ts";
import {
  admin,
  enrollAgent,
  lockedAgentPid,
  runAgent,
  startHub,
  waitOnline,
} from "./support/cluster.ts";
import { tempDir } from "./support/process.ts";

const FAST_HEARTBEAT = { HUB_PING_INTERVAL_MS: "200", HUB_PEER_DEAD_AFTER_MS: "1000" };
const DEAD_AFTER_MS = 1000;
const PING_MS = 200;

Deno.test("kill -9 and SIGSTOP of the agent: offline within the dead-peer timeout; back after SIGCONT", async () => {
  const tmp = await tempDir("lifecycle-kill");
  const hub = await startHub({ dir: tmp.path, env: FAST_HEARTBEAT });
  const agents = [];
  try {
    const setup = await enrollAgent(hub, `${tmp.path}/a`);

    // SIGSTOP: the TCP connection stays up, only the heartbeat can tell.
    const frozen = runAgent(setup.dir);
    agents.push(frozen);
    const before = await waitOnline(hub, setup.id);
    const pid = await lockedAgentPid(frozen);
    Deno.kill(pid, "SIGSTOP");
    const stoppedAt = performance.now();
    await waitOnline(hub, setup.id, false, 5000);
    const detectMs = performance.now() - stoppedAt;
    console.log(
      `SIGSTOP detected after ${
        Math.round(detectMs)
      } ms (dead-after ${DEAD_AFTER_MS} ms, ping ${PING_MS} ms)`,
    );
    assert.ok(detectMs <= DEAD_AFTER_MS + 2 * PING_MS + 300, `detected after ${detectMs} ms`);
    await hub.proc.waitForLine(
      (l) => l.msg === "agent offline" && l.code === CloseCode.peerDead,
      "offline: peerDead",
    );
    Deno.kill(pid, "SIGCONT");
    const after = await waitOnline(hub, setup.id);
    assert.ok(after.session.generation > before.session.generation, "reconnected as a new session");

    // kill -9: the socket dies with the process.
    const killPid = await lockedAgentPid(frozen);
    Deno.kill(killPid, "SIGKILL");
    const killedAt = performance.now();
    await waitOnline(hub, setup.id, false, 5000);
    const killDetectMs = performance.now() - killedAt;
    console.log(`kill -9 detected after ${Math.round(killDetectMs)} ms`);
    assert.ok(killDetectMs <= DEAD_AFTER_MS + 2 * PING_MS + 300);
  } finally {
    for (const a of agents) await a.stop();
    await hub.proc.stop();
    await tmp.remove();
  }
});

Deno.test("hub restart: the agent reconnects by itself with backoff; kick: it comes back", async () => {
  const tmp = await tempDir("lifecycle-restart");
  let hub = await startHub({ dir: tmp.path });
  let agent;
  try {
    const setup = await enrollAgent(hub, `${tmp.path}/a`);
    agent = runAgent(setup.dir);
    const first = await waitOnline(hub, setup.id);

    const kicked = await admin(hub, "POST", `/agents/${setup.id}/kick`);
    assert.deepEqual(kicked.json, { kicked: true });
    await agent.waitForLine(
      (l) => l.msg === "tunnel closed" && l.code === CloseCode.kicked,
      "agent sees kick",
    );
    const back = await waitOnline(hub, setup.id);
    assert.ok(back.session.generation > first.session.generation);

    const port = hub.port;
    hub.proc.kill("SIGTERM");
    assert.equal(await hub.proc.exited(), 0);
    await agent.waitForLine(
      (l) => l.msg === "tunnel closed" && l.code === CloseCode.shutdown,
      "agent sees hub shutdown",
    )
      .catch((e) => {
        throw new Error(`${e.message}\n${agent!.dump()}\n${hub.proc.dump()}`);
      });
    await agent.waitForLine(
      (l) => l.msg === "reconnecting" && l.lastClose === "dial failed",
      "failed redial while hub is down",
    );
    await hub.proc.stop();

    hub = await startHub({ dir: tmp.path, port });
    const rejoined = await waitOnline(hub, setup.id, true, 10_000);
    assert.equal(rejoined.session.generation, 1, "first session of the new hub process");
    const delays = agent.lines.filter((l) => l.msg === "reconnecting").map((l) =>
      Number(l.delayMs)
    );
    assert.ok(
      delays.length >= 2 && delays.every((d) => d >= 0 && d <= 1000),
      `backoff delays ${delays}`,
    );
    const echo = await admin(hub, "POST", `/agents/${setup.id}/echo`, { payload: "after restart" });
    assert.equal(echo.json.payload, "after restart");
  } finally {
    await agent?.stop();
    await hub.proc.stop();
    await tmp.remove();
  }
});

Deno.test("two processes with one agent identity: the newer session fences the older", async () => {
  const tmp = await tempDir("lifecycle-fence");
  const hub = await startHub({ dir: tmp.path });
  const agents = [];
  try {
    const setup = await enrollAgent(hub, `${tmp.path}/a`);
    const older = runAgent(setup.dir);
    agents.push(older);
    const first = await waitOnline(hub, setup.id);

    const copy = `${tmp.path}/copy`;
    await Deno.mkdir(copy);
    for (const f of ["agent.key", "config.json"]) {
      await Deno.copyFile(`${setup.dir}/${f}`, `${copy}/${f}`);
    }
    const newer = runAgent(copy);
    agents.push(newer);
    await newer.waitForLine((l) => l.msg === "tunnel open", "newer session open");

    assert.equal(await older.exited(), 3, "the fenced process stops instead of fighting back");
    assert.ok(
      older.lines.some((l) => l.msg === "tunnel closed" && l.code === CloseCode.superseded),
    );
    const now = await waitOnline(hub, setup.id);
    assert.ok(now.session.generation > first.session.generation);
    const echo = await admin(hub, "POST", `/agents/${setup.id}/echo`, { payload: "newer" });
    assert.equal(echo.json.payload, "newer");
    assert.ok(
      hub.proc.lines.some((l) => l.msg === "agent offline" && l.code === CloseCode.superseded),
    );
  } finally {
    for (const a of agents) await a.stop();
    await hub.proc.stop();
    await tmp.remove();
  }
});
