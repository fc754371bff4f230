/**
 * Every handshake rejection ends in its own close code, logged on both sides; malformed frames
 * close only the offending connection, and a well-behaved agent next to it keeps working.
 */
import { peerUnderstands } from "../protocol/capabilities.ts";
import assert from "node:assert/strict";
import { CloseCode } from "../protocol/close_codes.ts";
import { encodeBody, type Frame, PROTOCOL_VERSION } from "../protocol/frames.ts";
import { generateIdentity } from "../protocol/identity.ts";
import { LIMITS } from "../protocol/limits.ts";
import {
  admin,
  enrollAgent,
  type HubProc,
  runAgent,
  startHub,
  waitOnline,
} from "./support/cluster.ts";
import { tempDir } from "./support/process.ts";
import { auth, hello, RawClient } from "./support/raw_client.ts";

async function enrollRaw(hub: HubProc, name: string) {
  const { signer } = await generateIdentity();
  const res = await admin(hub, "POST", "/agents", { name, publicKey: signer.publicKey });
  assert.equal(res.status, 201);
  return { agentId: res.json.id as string, signer };
}

/** Opens a connection, sends HELLO, returns the CHALLENGE. */
async function helloed(hub: HubProc, h: Frame<"hello">) {
  const client = await RawClient.connect(hub.url);
  client.send(h);
  const challenge = await client.next();
  assert.equal(challenge.type, "challenge");
  return { client, challenge: challenge as Frame<"challenge"> };
}

function rejectedOnHub(hub: HubProc, code: number) {
  return hub.proc.waitForLine(
    (l) => l.msg === "tunnel handshake rejected" && l.code === code,
    `hub logs ${code}`,
  );
}

Deno.test("handshake rejections: each cause has its own close code", async (t) => {
  const tmp = await tempDir("reject");
  const hub = await startHub({ dir: tmp.path });
  // Started first: the idle connection must be dropped after the handshake timeout.
  const idle = await RawClient.connect(hub.url);
  try {
    const alice = await enrollRaw(hub, "alice");

    await t.step("a valid handshake works (baseline for the forgeries below)", async () => {
      const h = hello(alice);
      const { client, challenge } = await helloed(hub, h);
      client.send(await auth(h, challenge, alice.signer));
      assert.equal((await client.next()).type, "welcome");
      client.close();
      await client.closed;
    });

    await t.step("unknown agent id, or a key the hub did not enrol → 4401", async () => {
      const stranger = await generateIdentity();
      for (
        const h of [
          hello({ agentId: "agt_00000000000000000000", signer: stranger.signer }),
          hello({ ...alice, signer: stranger.signer }),
        ]
      ) {
        const client = await RawClient.connect(hub.url);
        client.send(h);
        assert.equal((await client.closed).code, CloseCode.unknownAgent);
      }
      await rejectedOnHub(hub, CloseCode.unknownAgent);
    });

    await t.step("replayed HELLO, and a captured AUTH on a new connection → 4403", async () => {
      const h = hello(alice);
      const first = await helloed(hub, h);
      const capturedAuth = await auth(h, first.challenge, alice.signer);
      first.client.send(capturedAuth);
      assert.equal((await first.client.next()).type, "welcome");
      first.client.close();

      const replayHello = await RawClient.connect(hub.url);
      replayHello.send(h);
      assert.equal((await replayHello.closed).code, CloseCode.replayedNonce);

      const { client } = await helloed(hub, hello(alice));
      client.send(capturedAuth);
      assert.equal((await client.closed).code, CloseCode.replayedNonce);
      await rejectedOnHub(hub, CloseCode.replayedNonce);
    });

    await t.step("transcript signed by the wrong key → 4402", async () => {
      const h = hello(alice);
      const { client, challenge } = await helloed(hub, h);
      const mallory = await generateIdentity();
      client.send(await auth(h, challenge, mallory.signer));
      const closed = await client.closed;
      assert.equal(closed.code, CloseCode.badAgentSignature);
      assert.match(closed.reason, /signature/);
      await rejectedOnHub(hub, CloseCode.badAgentSignature);
    });

    await t.step("clock outside ±5 min → 4404; other protocol version → 4001", async () => {
      const skewed = await RawClient.connect(hub.url);
      skewed.send(hello(alice, { timestampMs: Date.now() - LIMITS.handshakeClockSkewMs - 60_000 }));
      assert.equal((await skewed.closed).code, CloseCode.clockSkew);
      const future = await RawClient.connect(hub.url);
      future.send(hello(alice, { v: PROTOCOL_VERSION + 1 }));
      const closed = await future.closed;
      assert.equal(closed.code, CloseCode.unsupportedVersion);
      assert.match(closed.reason, /version/);
    });

    await t.step(
      "malformed, oversized, unknown and out-of-order frames close that connection only",
      async () => {
        const cases: [string | Uint8Array<ArrayBuffer>, number][] = [
          ["{not json", CloseCode.malformedFrame],
          [JSON.stringify({ type: "teleport" }), CloseCode.malformedFrame],
          [JSON.stringify({ type: "hello", v: 1 }), CloseCode.malformedFrame],
          ["x".repeat(LIMITS.controlFrameBytesMax + 1), CloseCode.frameTooLarge],
          [new Uint8Array([9, 9, 9]), CloseCode.malformedFrame],
          [
            new Uint8Array([PROTOCOL_VERSION + 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]),
            CloseCode.unsupportedVersion,
          ],
          [
            encodeBody({ kind: 1, stream: 1, fin: true, payload: new Uint8Array(3) }),
            CloseCode.unexpectedFrame,
          ],
          [JSON.stringify({ type: "ping", seq: 1, sentAtMs: 1 }), CloseCode.unexpectedFrame],
        ];
        for (const [data, code] of cases) {
          const client = await RawClient.connect(hub.url);
          client.send(data);
          assert.equal(
            (await client.closed).code,
            code,
            `for ${typeof data === "string" ? data.slice(0, 40) : "binary"}`,
          );
        }
        // A second HELLO in an open session is refused too.
        const h = hello(alice);
        const { client, challenge } = await helloed(hub, h);
        client.send(await auth(h, challenge, alice.signer));
        assert.equal((await client.next()).type, "welcome");
        client.send(hello(alice));
        assert.equal((await client.closed).code, CloseCode.unexpectedFrame);
      },
    );

    await t.step(
      "open session: an unknown control type is ignored; an agent without features gets no PRICES",
      async () => {
        const h = hello(alice);
        const { client, challenge } = await helloed(hub, h);
        client.send(await auth(h, challenge, alice.signer));
        assert.equal((await client.next()).type, "welcome");
        client.send(JSON.stringify({ type: "teleport_from_the_future", x: 1 }));
        // Still open and reading: the next frame (a second HELLO) gets its own close code.
        client.send(hello(alice));
        assert.equal((await client.closed).code, CloseCode.unexpectedFrame);
        assert.ok(client.frames.some((f) => f.type === "prices"), "a current agent gets PRICES");

        const old = hello(alice, { capabilities: { agentVersion: "0.1.0", channels: [] } });
        const first = await helloed(hub, old);
        first.client.send(await auth(old, first.challenge, alice.signer));
        assert.equal((await first.client.next()).type, "welcome");
        first.client.send(hello(alice));
        assert.equal((await first.client.closed).code, CloseCode.unexpectedFrame);
        assert.deepEqual(
          first.client.frames.filter((f) => !peerUnderstands(old.capabilities.features, f.type)),
          [],
          "an agent that lists no features gets nothing it cannot read",
        );
        assert.ok(!first.client.frames.some((f) => f.type === "prices"));
      },
    );

    await t.step("a silent connection is dropped after the handshake timeout → 4408", async () => {
      assert.equal((await idle.closed).code, CloseCode.handshakeTimeout);
    });
  } finally {
    idle.close();
    await hub.proc.stop();
    await tmp.remove();
  }
});

Deno.test("agent processes: unenrolled key (4401) and a hub that is not the pinned one (4430)", async () => {
  const tmp = await tempDir("reject-proc");
  const hub = await startHub({ dir: tmp.path });
  const agents = [];
  try {
    // A good agent beside the bad ones must stay unaffected.
    const good = await enrollAgent(hub, `${tmp.path}/good`);
    agents.push(runAgent(good.dir));
    await waitOnline(hub, good.id);

    // Unenrolled: a fresh identity that claims the good agent's id.
    const impostor = await enrollAgent(hub, `${tmp.path}/impostor`);
    await admin(hub, "POST", `/agents/${impostor.id}/disable`);
    const impostorProc = runAgent(impostor.dir, { AGENT_ID: good.id });
    agents.push(impostorProc);
    await impostorProc.waitForLine(
      (l) => l.msg === "tunnel closed" && l.code === CloseCode.unknownAgent,
      "agent sees 4401",
    );
    await rejectedOnHub(hub, CloseCode.unknownAgent);

    // Pinned to another hub identity: the agent refuses the hub and says why.
    const other = await generateIdentity();
    const misPinned = await enrollAgent(hub, `${tmp.path}/mispinned`, {
      hubKey: other.signer.publicKey,
    });
    const misPinnedProc = runAgent(misPinned.dir);
    agents.push(misPinnedProc);
    await misPinnedProc.waitForLine(
      (l) => l.msg === "closing tunnel" && l.code === CloseCode.hubIdentityMismatch,
      "agent closes 4430",
    );
    await hub.proc.waitForLine(
      (l) =>
        l.msg === "agent closed during the handshake" && l.code === CloseCode.hubIdentityMismatch,
      "hub logs 4430",
    );
    assert.equal((await admin(hub, "GET", `/agents/${misPinned.id}`)).json.online, false);

    const echo = await admin(hub, "POST", `/agents/${good.id}/echo`, { payload: "still here" });
    assert.equal(echo.json.payload, "still here");
    const goodView = await admin(hub, "GET", `/agents/${good.id}`);
    assert.equal(goodView.json.session.generation, 1, "the good agent was never disconnected");
  } finally {
    for (const a of agents) await a.stop();
    await hub.proc.stop();
    await tmp.remove();
  }
});
