// A hub killed (SIGKILL) while settling in batches leaves whole settlements or none: every
// reservation is either settled with its entry, postings and charge, or still held with none of
// them; the agent's chain stays gapless and verifiable; nothing reported as settled is lost.
// Runs on a SQLite file and on MariaDB.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import mysql from "mysql2/promise";
import { verifyChain } from "../../protocol/chain.ts";
import { formatUsd, parseUsd } from "../../protocol/money.ts";
import { seededRandom } from "../../protocol/prng.ts";
import { TEST_MYSQL_DSN } from "./_test_backends.ts";
import { payerAndAgent } from "./_test_billing_cases.ts";
import { randomHex } from "./_rows.ts";
import { runUntilKilled } from "../../tests/support/crash_child.ts";
import { openStore } from "./mod.ts";

const SEED = Number(Deno.env.get("CRASH_SEED") ?? Date.now() % 1_000_000);
const CHILD = fileURLToPath(new URL("./_settle_batch_crash_child.ts", import.meta.url));
const START_BALANCE = "1000";

async function crashRounds(dsn: string): Promise<void> {
  const rand = seededRandom(SEED);
  const { userId, agentId } = await (async () => {
    const s = await openStore(dsn);
    try {
      return await payerAndAgent(s, START_BALANCE);
    } finally {
      await s.close();
    }
  })();
  const reported = new Set<string>();
  let reservations = 0;
  for (let round = 0; round < 4; round++) {
    const tag = `c${round}`;
    const minReported = 1 + Math.floor(rand() * 450);
    const extraMs = Math.floor(rand() * 30);
    const now = await runUntilKilled(CHILD, [dsn, userId, agentId, tag], {
      minLines: minReported,
      extraMs,
      timeoutMs: 30_000,
    });
    assert.ok(!now.includes("done"), "killed before it finished");
    const reportedNow = now.length;
    for (const id of now) reported.add(id);
    const s = await openStore(dsn);
    try {
      // Reservations are made one after another, so the ones that exist are a prefix.
      let held = 0n, count = 0;
      for (let n = 0;; n++) {
        const r = await s.getReservation(`${tag}-${n}`);
        if (!r) break;
        const postings = await s.postings(`q-${r.id}`);
        if (r.status === "settled") {
          assert.equal(r.requestId, `q-${r.id}`);
          assert.deepEqual(postings.map((p) => p.amount), ["-0.03", "0.025", "0.005"]);
          count++;
        } else {
          assert.equal(r.status, "held", `${r.id}`);
          assert.deepEqual(postings, [], `held ${r.id} has postings`);
          held += parseUsd(r.amount);
        }
      }
      const chain = await wholeChain(s, agentId);
      const verified = await verifyChain(chain);
      assert.ok(verified.ok, JSON.stringify(verified));
      const roundEntries = chain.filter((e) => e.requestId.startsWith(`q-${tag}-`)).length;
      assert.equal(roundEntries, count, "an entry for each settled reservation, no other");
      reservations += count;
      assert.equal(chain.length, reservations);
      assert.deepEqual(await s.ledgerHead(agentId), verified.head);
      for (const id of reported) {
        assert.ok(chain.some((e) => e.requestId === id), `reported ${id} lost`);
      }
      // Earlier rounds' holds were settled or stay held; balance = start − charges − holds.
      const user = await s.getUser(userId);
      const heldBefore = await heldInEarlierRounds(s, round);
      const spent = parseUsd(verified.head.totals.userCharge);
      assert.equal(user?.balance, formatUsd(parseUsd(START_BALANCE) - spent - held - heldBefore));
      console.log(
        `round ${round}: killed after ≥${minReported} reported + ${extraMs} ms; ` +
          `${count} settled (${reportedNow} reported), ${formatUsd(held)} still held`,
      );
    } finally {
      await s.close();
    }
  }
}

/** Every entry of the agent's chain (pages of at most 1,000). */
async function wholeChain(s: Awaited<ReturnType<typeof openStore>>, agentId: string) {
  const chain = [];
  for (;;) {
    const page = await s.ledgerEntries(agentId, chain.length + 1, 1000);
    if (page.length === 0) return chain;
    chain.push(...page);
  }
}

/** What earlier rounds left held (their children were killed mid-batch too). */
async function heldInEarlierRounds(s: Awaited<ReturnType<typeof openStore>>, round: number) {
  let held = 0n;
  for (let r = 0; r < round; r++) {
    for (let n = 0;; n++) {
      const rec = await s.getReservation(`c${r}-${n}`);
      if (!rec) break;
      if (rec.status === "held") held += parseUsd(rec.amount);
    }
  }
  return held;
}

Deno.test(`settleMany under SIGKILL (SQLite file), seed ${SEED}`, async () => {
  console.log(`settle_batch_crash_test seed ${SEED} (rerun with CRASH_SEED=${SEED})`);
  const dir = Deno.makeTempDirSync({ prefix: "settle-crash-" });
  try {
    await crashRounds(`sqlite:${dir}/hub.db`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test(`settleMany under SIGKILL (MariaDB), seed ${SEED}`, async () => {
  const admin = await mysql.createConnection({ uri: TEST_MYSQL_DSN });
  const db = `aq_test_${randomHex(8)}`;
  await admin.query(`CREATE DATABASE ${db}`);
  try {
    const url = new URL(TEST_MYSQL_DSN);
    url.pathname = `/${db}`;
    await crashRounds(url.href);
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${db}`);
    await admin.end();
  }
});
