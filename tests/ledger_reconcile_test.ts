/**
 * Ledger synchronisation end to end (issue #5 items 6–8), with real processes: a hub, a locked
 * agent and a fake OpenAI, the tunnel running through a TunnelTap that loses chosen frames and
 * cuts the connection (a bad network, staged without hooks in either side).
 *
 * - an agent that missed its SETTLED frames catches up at reconnect and verifies each;
 * - a completion whose RESPONSE_END never reached the hub is CLAIMed and settled once, paid by
 *   the platform (not delivered); a replay and a claim by another agent are refused;
 * - an amount edited in the hub's database and a consistently forged agent ledger are each
 *   pinpointed to their seq; a naive edit stops the agent at start-up;
 * - checkpoints are signed by both, verified both ways, a forged one is refused, and
 *   reconciliation does not search below the last signed checkpoint;
 * - 100 parallel settlements: gapless chain, both ledgers equal.
 */
import assert from "node:assert/strict";
import mysql from "mysql2/promise";
import { join } from "node:path";
import {
  appendEntry,
  type LedgerEntry,
  signCheckpoint,
  verifyChain,
  verifyCheckpoint,
} from "../protocol/chain.ts";
import type { ControlFrame, Frame } from "../protocol/frames.ts";
import { generateIdentity, type Signer, signerFromPem, verifierFor } from "../protocol/identity.ts";
import { parseUsd } from "../protocol/money.ts";
import { AgentLedger } from "../agent/ledger/mod.ts";
import { OwnCountStore } from "../agent/ledger/own_counts.ts";
import { SqlStore } from "../agent/ledger/store.ts";
import { openStore } from "../hub/store/mod.ts";
import { admin, runAgent } from "./support/cluster.ts";
import { waitFor } from "./support/process.ts";
import { auth, hello, RawClient } from "./support/raw_client.ts";
import {
  agentEntries,
  agentLogLines,
  chat,
  divergences,
  hubLedger,
  MODEL,
  type Tapped,
  tappedStack,
  waitAgentEntries,
  waitHubEntries,
} from "./support/ledger_stack.ts";

/** A hand-driven tunnel session as `agentId` (the real agent must be stopped). */
async function rawSession(s: Tapped, agentId: string, signer: Signer): Promise<RawClient> {
  const h = hello({ agentId, signer });
  const client = await RawClient.connect(s.hub.url);
  client.send(h);
  const challenge = await client.next();
  client.send(await auth(h, challenge as Frame<"challenge">, signer));
  await frameOf(client, "welcome");
  return client;
}

function frameOf<T extends ControlFrame["type"]>(
  client: RawClient,
  type: T,
  pred: (f: Frame<T>) => boolean = () => true,
): Promise<Frame<T>> {
  return waitFor(
    () => client.frames.find((f) => f.type === type && pred(f as Frame<T>)) as Frame<T>,
    `a ${type} frame`,
    10_000,
  );
}

const agentSigner = async (s: Tapped) =>
  await signerFromPem(await Deno.readTextFile(join(s.agentDir, "agent.key")));

Deno.test("ledger sync: an agent that missed its SETTLED frames catches up at reconnect", async () => {
  const s = await tappedStack();
  try {
    const first = await chat(s);
    await waitAgentEntries(s, 1);
    // The network now loses every SETTLED: the agent is "offline" for 250 settlements, which
    // come back in bounded batches of 100.
    s.tap.drop = (dir, type) => dir === "toAgent" && type === "settled";
    const missed: string[] = [];
    for (let i = 0; i < 5; i++) {
      missed.push(...await Promise.all(Array.from({ length: 50 }, () => chat(s))));
    }
    const hub = await waitHubEntries(s, 251);
    await waitFor(() => s.tap.dropped.length === 250 || undefined, "250 SETTLED lost");
    assert.equal(await agentLogLines(s), 1, "the agent holds only the first entry");
    s.tap.drop = null;
    const cut = performance.now();
    s.tap.cut();
    await s.agent.waitForLine(
      (l) => l.msg === "ledger caught up a batch" && l.seq === 251,
      `agent catches up\n${s.agent.dump()}`,
    );
    console.log(
      `250 missed settlements caught up and verified ${
        performance.now() - cut | 0
      } ms after the cut`,
    );
    for (const [from, to] of [[2, 101], [102, 201], [202, 251]]) {
      await s.hub.proc.waitForLine(
        (l) => l.msg === "agent catching up" && l.from === from && l.to === to,
        `hub sends ${from}..${to}`,
      );
    }
    await s.agent.waitForLine((l) => l.msg === "ledger agrees with the hub", "heads agree");
    await s.stopAgent();
    const mine = await agentEntries(s);
    assert.deepEqual(mine.entries, hub, "same entries, same hashes");
    assert.deepEqual(
      new Set(mine.entries.map((e) => e.requestId)),
      new Set([first, ...missed]),
    );
    const counts = new OwnCountStore(join(s.agentDir, "ledger", "ledger.db"));
    try {
      assert.equal(counts.size, 0, "every own count was settled and removed");
    } finally {
      counts.close();
    }
    assert.ok(!s.agent.lines.some((l) => /disput/.test(String(l.msg))), s.agent.dump());
    assert.deepEqual(await divergences(s), []);
  } finally {
    await s.stop();
  }
});

Deno.test("ledger sync: a CLAIM after a tunnel drop settles once; replays and strangers are refused", async () => {
  const s = await tappedStack();
  try {
    await chat(s);
    await waitAgentEntries(s, 1);
    const before = (await admin(s.hub, "GET", `/users/${s.userId}`)).json.balance;
    // The vendor finishes, but RESPONSE_END never reaches the hub; then the tunnel drops.
    s.tap.drop = (dir, type) => dir === "toHub" && type === "response_end";
    const pending = fetch(`${s.hub.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${s.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "lost" }] }),
    }).then(async (r) => ({ id: r.headers.get("x-request-id")!, body: await r.text() }))
      .catch((e) => ({ id: null, body: String(e) }));
    await waitFor(() => s.tap.dropped.length === 1 || undefined, "RESPONSE_END lost");
    s.tap.drop = null;
    s.tap.cut();
    await pending;
    const claimLine = await s.agent.waitForLine(
      (l) => l.msg === "claiming an unsettled completion",
      `agent claims\n${s.agent.dump()}`,
    );
    const requestId = String(claimLine.requestId);
    await s.agent.waitForLine((l) => l.msg === "claim settled", "claim settled");
    const hub = await waitHubEntries(s, 2);
    const claimed = hub[1]!;
    assert.equal(claimed.requestId, requestId);
    assert.equal(claimed.userCharge, "0.00", "not delivered: the user pays nothing");
    assert.ok(parseUsd(claimed.agentPayout) > 0n, "the agent is paid for its measured usage");
    assert.equal(
      (await admin(s.hub, "GET", `/users/${s.userId}`)).json.balance,
      before,
      "the hold went back",
    );
    await waitAgentEntries(s, 2);
    await s.stopAgent();
    assert.deepEqual((await agentEntries(s)).entries, hub);

    const store = await openStore(`sqlite:${s.hubDb}`);
    try {
      const postings = await store.postings(requestId);
      assert.deepEqual(postings.map((p) => [p.account, p.amount]), [
        ["user", "0.00"],
        ["agent", claimed.agentPayout],
        ["platform", `-${claimed.agentPayout}`],
      ]);
      assert.equal((await store.getReservation(requestId))?.status, "released");
    } finally {
      await store.close();
    }

    // A replay by the same agent: refused, nothing booked twice.
    const raw = await rawSession(s, s.agentId, await agentSigner(s));
    const claim: Frame<"claim"> = {
      type: "claim",
      requestId,
      vendor: "openai",
      model: claimed.model,
      usage: claimed.usage,
      promptTokens: 10,
      completedAtMs: claimed.completedAtMs,
    };
    raw.send(claim);
    const replay = await frameOf(raw, "claim_result");
    assert.equal(replay.outcome, "rejected");
    assert.match(replay.reason, /already settled as seq 2/);
    raw.close();
    await raw.closed;

    // Another enrolled agent claiming this request (and an unknown one): refused.
    const stranger = await generateIdentity();
    const enrolled = await admin(s.hub, "POST", "/agents", {
      name: "stranger",
      publicKey: stranger.signer.publicKey,
      tier: 2,
    });
    const other = await rawSession(s, enrolled.json.id, stranger.signer);
    other.send(claim);
    other.send({ ...claim, requestId: "req_000000000000000000000000" });
    const [a, b] = [
      await frameOf(other, "claim_result", (f) => f.requestId === requestId),
      await frameOf(other, "claim_result", (f) => f.requestId !== requestId),
    ];
    assert.equal(a.outcome, "rejected");
    assert.match(a.reason, /another agent/);
    assert.equal(b.outcome, "rejected");
    assert.match(b.reason, /unknown request/);
    other.close();
    await other.closed;
    assert.equal((await hubLedger(s)).entries.length, 2, "nothing more was settled");
    const log = (await admin(s.hub, "GET", `/ledger/claims?agentId=${enrolled.json.id}`)).json;
    assert.deepEqual(log.claims.map((c: { outcome: string }) => c.outcome), [
      "rejected",
      "rejected",
    ]);
  } finally {
    await s.stop();
  }
});

/** Rewrites the agent's entry `seq` with `payout` and re-chains the rest, in both copies. */
async function forgeAgentLedger(dir: string, seq: number, payout: string): Promise<void> {
  const { entries } = await (async () => {
    const l = await AgentLedger.open(dir);
    try {
      return { entries: l.entriesFrom(1) };
    } finally {
      await l.close();
    }
  })();
  const forged: LedgerEntry[] = entries.slice(0, seq - 1);
  for (const e of entries.slice(seq - 1)) {
    const { seq: _s, prevHash: _p, hash: _h, ...fields } = e;
    const f = e.seq === seq ? { ...fields, agentPayout: payout } : fields;
    forged.push(await appendEntry(forged.at(-1) ?? null, f));
  }
  const sql = new SqlStore(join(dir, "ledger.db"));
  try {
    sql.db.exec(`DELETE FROM entries WHERE seq >= ${seq}`);
    sql.insert(forged.slice(seq - 1));
  } finally {
    sql.close();
  }
  await Deno.writeTextFile(
    join(dir, "ledger.log"),
    forged.map((e) => JSON.stringify(e) + "\n").join(""),
  );
}

Deno.test("ledger sync: tampering on either side is pinpointed to its seq", async (t) => {
  // Periodic reconciliation every 300 ms: the hub's own edit is found without a reconnect.
  const s = await tappedStack({ hubEnv: { HUB_RECONCILE_INTERVAL_MS: "300" } });
  try {
    for (let i = 0; i < 6; i++) await chat(s, 40 + i);
    await waitHubEntries(s, 6);
    await waitAgentEntries(s, 6);

    await t.step("an amount edited in the hub's database: its seq (periodic check)", async () => {
      const { DatabaseSync } = await import("node:sqlite");
      const db = new DatabaseSync(s.hubDb);
      const original = db.prepare(
        "SELECT agent_payout FROM ledger_entries WHERE agent_id = ? AND seq = 3",
      ).get(s.agentId)!.agent_payout as string;
      const edit = (v: string) =>
        db.prepare("UPDATE ledger_entries SET agent_payout = ? WHERE agent_id = ? AND seq = 3")
          .run(v, s.agentId);
      edit("9.99");
      try {
        const found = await waitFor(async () => (await divergences(s))[0], "a divergence");
        assert.equal(found.seq, 3);
        assert.equal(found.kind, "hub_entry_corrupt");
        assert.match(found.detail, /do not match its hash/);
        await s.hub.proc.waitForLine(
          (l) => l.msg === "ALERT ledger divergence" && l.seq === 3,
          "hub alert",
        );
        await s.agent.waitForLine(
          (l) => l.msg === "ALERT ledger diverges from the hub's" && l.divergentSeq === 3,
          "agent alert",
        );
      } finally {
        edit(original);
        db.close();
      }
      await s.stopAgent();
    });

    await t.step("a consistently forged agent ledger (passes its own check): its seq", async () => {
      await forgeAgentLedger(join(s.agentDir, "ledger"), 2, "0.000001");
      await s.startAgent();
      const found = await waitFor(
        async () => (await divergences(s)).find((d) => d.kind === "hash_mismatch"),
        "a hash mismatch",
      );
      assert.equal(found.seq, 2, JSON.stringify(found));
      await s.stopAgent();
    });

    await t.step(
      "a naive edit of an agent row stops the agent at start-up, naming the seq",
      async () => {
        const sql = new SqlStore(join(s.agentDir, "ledger", "ledger.db"));
        sql.db.exec("UPDATE entries SET official = '7.00' WHERE seq = 4");
        sql.close();
        s.agent = runAgent(s.agentDir, {});
        const code = await s.agent.exited(30_000);
        await s.agent.stop();
        assert.notEqual(code, 0);
        assert.match(s.agent.dump(), /chain break at seq 4/, s.agent.dump());
      },
    );
  } finally {
    await s.stop();
  }
});

Deno.test("ledger sync: 100 parallel settlements; checkpoints signed both ways, forgeries refused", async () => {
  const s = await tappedStack({ agentEnv: { AGENT_CHECKPOINT_EVERY: "25" } });
  try {
    const started = performance.now();
    const ids = await Promise.all(Array.from({ length: 100 }, (_, i) => chat(s, 30 + (i % 7))));
    const hub = await waitHubEntries(s, 100);
    await waitAgentEntries(s, 100);
    const settledMs = performance.now() - started;
    assert.equal(new Set(ids).size, 100);
    assert.deepEqual(hub.map((e) => e.seq), Array.from({ length: 100 }, (_, i) => i + 1));
    const checked = await verifyChain(hub);
    assert.ok(checked.ok, JSON.stringify(checked));

    const hubKey = await verifierFor(s.hub.hubKey);
    const agentKey = await verifierFor((await agentSigner(s)).publicKey);
    const cps = await waitFor(async () => {
      const r = await admin(s.hub, "GET", `/ledger/checkpoints?agentId=${s.agentId}`);
      return r.json.checkpoints.length === 4 ? r.json.checkpoints : undefined;
    }, `four checkpoints\n${s.hub.proc.dump()}\n${s.agent.dump()}`) as {
      seq: number;
      hash: string;
      note: string;
    }[];
    assert.deepEqual(cps.map((c) => c.seq), [100, 75, 50, 25]);
    for (const c of cps) {
      const v = await verifyCheckpoint(c.note, { agent: agentKey, hub: hubKey });
      assert.ok(v.ok, JSON.stringify(v));
      assert.equal(c.hash, hub[c.seq - 1]!.hash);
    }
    await s.agent.waitForLine(
      (l) => l.msg === "checkpoint countersigned by the hub" && l.seq === 100,
      "agent verified the hub's countersignature",
    );
    console.log(`100 parallel requests settled and verified on both sides in ${settledMs | 0} ms`);
    await s.stopAgent();
    const mine = await agentEntries(s);
    assert.deepEqual(mine.entries, hub);
    assert.deepEqual(mine.head, (await hubLedger(s)).head);
    const counts = new OwnCountStore(join(s.agentDir, "ledger", "ledger.db"));
    try {
      assert.deepEqual(counts.checkpoints().map((c) => [c.seq, c.hubSigned]), [
        [25, true],
        [50, true],
        [75, true],
        [100, true],
      ]);
    } finally {
      counts.close();
    }

    // Forged checkpoints over a raw session as this agent: a wrong key, then wrong totals.
    const raw = await rawSession(s, s.agentId, await agentSigner(s));
    const intruder = await generateIdentity();
    const head = mine.head;
    raw.send({ type: "checkpoint", note: await signCheckpoint(head, "agent", intruder.signer) });
    const wrongKey = await frameOf(raw, "checkpoint_reply");
    assert.match(wrongKey.reason ?? "", /no valid agent signature/);
    const inflated = { ...head, totals: { ...head.totals, agentPayout: "999.00" } };
    raw.send({
      type: "checkpoint",
      note: await signCheckpoint(inflated, "agent", await agentSigner(s)),
    });
    const wrongTotals = await frameOf(raw, "checkpoint_reply", (f) => f !== wrongKey);
    assert.match(wrongTotals.reason ?? "", /does not match the hub's ledger/);
    assert.equal(wrongTotals.note, undefined);
    raw.close();
    await raw.closed;
    const after = await admin(s.hub, "GET", `/ledger/checkpoints?agentId=${s.agentId}`);
    assert.equal(after.json.checkpoints.length, 4, "nothing stored");

    // History below the last signed checkpoint (seq 100) cannot be renegotiated: a forgery at
    // seq 10 is reported at the checkpoint, not searched below it.
    await forgeAgentLedger(join(s.agentDir, "ledger"), 10, "0.000001");
    await s.startAgent();
    const found = await waitFor(async () => (await divergences(s))[0], "a divergence");
    assert.deepEqual([found.seq, found.kind], [100, "checkpoint_mismatch"]);
  } finally {
    await s.stop();
  }
});

Deno.test("ledger sync (MariaDB hub): a delivered response the hub died before booking is claimed and charged", async () => {
  const root = await mysql.createConnection({ host: "127.0.0.1", port: 3306, user: "root" });
  const db = `aq_ledger_sync_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  await root.query(`CREATE DATABASE ${db}`);
  const locker = await mysql.createConnection({ host: "127.0.0.1", user: "root", database: db });
  let s: Tapped | undefined;
  try {
    s = await tappedStack({ hubEnv: { HUB_DB: `mysql://root@127.0.0.1:3306/${db}` } });
    const first = await chat(s);
    await waitAgentEntries(s, 1);
    // Hold the agent's row lock: the next settlement blocks after the response was delivered
    // and the dispatch marked delivered; then the hub is killed mid-settlement.
    await locker.beginTransaction();
    await locker.query("SELECT id FROM agents WHERE id = ? FOR UPDATE", [s.agentId]);
    const delivered = await chat(s);
    await waitFor(async () => {
      const [rows] = await root.query(
        `SELECT delivered_at_ms FROM ${db}.ledger_dispatches WHERE request_id = ?`,
        [delivered],
      );
      return (rows as { delivered_at_ms: number | null }[])[0]?.delivered_at_ms != null ||
        undefined;
    }, "dispatch marked delivered");
    await s.crashAndRestartHub();
    await locker.rollback();
    await s.agent.waitForLine(
      (l) => l.msg === "claim settled" && l.requestId === delivered,
      `agent claims after the hub restarts\n${s.agent.dump()}`,
    );
    const hub = await waitHubEntries(s, 2);
    assert.deepEqual(hub.map((e) => e.requestId), [first, delivered]);
    const e = hub[1]!;
    assert.ok(parseUsd(e.userCharge) > 0n, "delivered: the user pays");
    const balance = (await admin(s.hub, "GET", `/users/${s.userId}`)).json.balance;
    assert.equal(
      parseUsd(balance),
      parseUsd("10.00") - parseUsd(hub[0]!.userCharge) - parseUsd(e.userCharge),
      "each request charged exactly once, the held rest returned",
    );
    const store = await openStore(`mysql://root@127.0.0.1:3306/${db}`);
    try {
      assert.equal((await store.getReservation(delivered))?.status, "settled");
      const postings = await store.postings(delivered);
      assert.equal(postings.reduce((t, p) => t + parseUsd(p.amount), 0n), 0n);
      assert.deepEqual(postings.map((p) => p.account), ["user", "agent", "platform"]);
    } finally {
      await store.close();
    }
    await waitAgentEntries(s, 2);
    await s.stopAgent();
    assert.deepEqual((await agentEntries(s)).entries, hub);
  } finally {
    await s?.stop();
    await locker.end();
    await root.query(`DROP DATABASE ${db}`);
    await root.end();
  }
});

Deno.test("ledger sync: against a hub that lists no features the agent sends no ledger-sync frame", async () => {
  const s = await tappedStack();
  try {
    await chat(s);
    await waitAgentEntries(s, 1);
    assert.ok(s.tap.seen.some((f) => f.type === "reconcile"), "a current hub gets RECONCILE");
    // Play a first-release hub: WELCOME without `features`; reconnect through it.
    s.tap.rewrite = (text) => {
      const frame = JSON.parse(text);
      if (frame.type !== "welcome") return text;
      delete frame.features;
      return JSON.stringify(frame);
    };
    const from = s.tap.seen.length;
    s.tap.cut();
    await waitFor(
      () => s.tap.seen.slice(from).some((f) => f.type === "welcome") || undefined,
      "a WELCOME through the tap",
    );
    await s.waitAgentOnline();
    const id = await chat(s); // the tunnel works as before: settled and acknowledged
    await waitAgentEntries(s, 2);
    const after = s.tap.seen.slice(from).filter((f) => f.dir === "toHub").map((f) => f.type);
    assert.ok(after.includes("settle_ack"), JSON.stringify(after));
    const ledgerSync = ["reconcile", "claim", "checkpoint", "ledger_hashes", "prices_get"];
    assert.deepEqual(after.filter((t) => ledgerSync.includes(t)), [], `request ${id}`);
  } finally {
    await s.stop();
  }
});
