/**
 * Issue #5 must-show: 1,000 mixed requests through a real hub and agent (chat and Responses,
 * streamed with and without include_usage and not streamed, reasoning and non-reasoning models,
 * prompts long enough to be cached) leave the hub's ledger and the agent's ledger identical entry
 * by entry, with equal heads and totals — on SQLite and on MariaDB. Every request is sent twice,
 * streamed and not, and both cost exactly the same. The client's balance afterwards is its
 * credit minus the sum of the charges, to the last digit.
 */
import assert from "node:assert/strict";
import mysql from "mysql2/promise";
import { verifyChain } from "../protocol/chain.ts";
import { formatUsd, parseUsd } from "../protocol/money.ts";
import { waitFor } from "./support/process.ts";
import {
  agentEntries,
  hubLedger,
  tappedStack,
  waitAgentEntries,
  waitHubEntries,
} from "./support/ledger_stack.ts";

const PAIRS = 500;
const CONCURRENCY = 16;
const CREDIT = "1000.00";

/** Request `i` of the run: its shape depends on `i` only, so both halves of a pair match. */
function shape(i: number, stream: boolean): { path: string; body: Record<string, unknown> } {
  const model = i % 3 === 0 ? "gpt-6-luna" : "gpt-5.5"; // gpt-5.5 reasons, gpt-6-luna does not
  // One in four prompts is long enough for the vendor to report cached input tokens.
  const filler = i % 4 === 0 ? " lorem".repeat(1100 + i) : "";
  const text = `pair ${i}${filler}`;
  const limit = i % 5 === 0 ? {} : { max_tokens: 300 + (i % 7) * 50 };
  if (i % 2 === 1) {
    const { max_tokens, ...rest } = limit as { max_tokens?: number };
    return {
      path: "/v1/responses",
      body: {
        model,
        input: text,
        ...rest,
        ...(max_tokens ? { max_output_tokens: max_tokens } : {}),
        ...(stream ? { stream: true } : {}),
      },
    };
  }
  const usageOption = i % 4 === 2 ? {} : { stream_options: { include_usage: true } };
  return {
    path: "/v1/chat/completions",
    body: {
      model,
      messages: [{ role: "user", content: text }],
      ...limit,
      ...(stream ? { stream: true, ...usageOption } : {}),
    },
  };
}

async function run(backend: "sqlite" | "mariadb", hubDb?: string): Promise<void> {
  const s = await tappedStack({
    credit: CREDIT,
    hubEnv: hubDb ? { HUB_DB: hubDb } : {},
  });
  try {
    // pair index → [non-streamed id, streamed id]
    const ids: [string, string][] = Array.from({ length: PAIRS }, () => ["", ""]);
    const work = Array.from({ length: PAIRS * 2 }, (_, n) => n);
    const started = performance.now();
    const worker = async () => {
      for (let n = work.shift(); n !== undefined; n = work.shift()) {
        const i = n >> 1, stream = (n & 1) === 1;
        const { path, body } = shape(i, stream);
        const res = await fetch(`${s.hub.url}${path}`, {
          method: "POST",
          headers: { authorization: `Bearer ${s.key}`, "content-type": "application/json" },
          body: JSON.stringify(body),
        });
        const text = await res.text();
        assert.equal(res.status, 200, `${path} #${i}: ${text.slice(0, 500)}`);
        if (stream) assert.match(text, /^(data|event): /, "an event stream");
        ids[i]![stream ? 1 : 0] = res.headers.get("x-request-id")!;
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const hub = await waitHubEntries(s, PAIRS * 2);
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `${backend}: ${PAIRS * 2} requests settled in ${seconds.toFixed(1)} s ` +
        `(${(PAIRS * 2 / seconds).toFixed(0)}/s through hub + agent)`,
    );
    assert.equal(hub.length, PAIRS * 2, "one entry per request, none extra");
    await waitAgentEntries(s, PAIRS * 2);
    const { head: hubHead } = await hubLedger(s);
    await s.stopAgent();

    // The two ledgers: identical entry by entry (amounts as exact strings), same head.
    const agent = await agentEntries(s);
    assert.equal(agent.entries.length, hub.length);
    for (let k = 0; k < hub.length; k++) {
      assert.deepEqual(agent.entries[k], hub[k], `entry seq ${k + 1}`);
    }
    assert.deepEqual(agent.head, hubHead);
    const chain = await verifyChain(hub);
    assert.ok(chain.ok, JSON.stringify(chain));
    const sum = (k: "official" | "userCharge" | "agentPayout") =>
      formatUsd(hub.reduce((t, e) => t + parseUsd(e[k]), 0n));
    assert.deepEqual(hubHead?.totals, {
      official: sum("official"),
      userCharge: sum("userCharge"),
      agentPayout: sum("agentPayout"),
    });

    // The run really was mixed: cached input and reasoning were billed, amounts below a cent
    // were kept (at least 6 decimals), and the platform margin is never negative.
    assert.ok(hub.some((e) => e.usage.cachedInputTokens > 0), "some cached input");
    assert.ok(hub.some((e) => e.usage.reasoningTokens > 0), "some reasoning");
    assert.ok(hub.some((e) => /\.\d{6,}$/.test(e.userCharge)), "sub-cent precision kept");
    for (const e of hub) assert.ok(parseUsd(e.userCharge) >= parseUsd(e.agentPayout), e.requestId);

    // Streamed and non-streamed versions of the same request cost exactly the same. (The agent's
    // payout follows its grade at settlement time, which the run itself may move.)
    const byId = new Map(hub.map((e) => [e.requestId, e]));
    for (const [i, [plain, streamed]] of ids.entries()) {
      const a = byId.get(plain), b = byId.get(streamed);
      assert.ok(a && b, `pair ${i} settled`);
      const cost = (e: typeof a) => [e.usage, e.official, e.userCharge];
      assert.deepEqual(cost(b), cost(a), `pair ${i} (${shape(i, false).path})`);
    }

    // The client's money: credit − Σ charges, nothing held.
    const status = await waitFor(async () => {
      const res = await fetch(`${s.hub.url}/api/keys/status`, {
        headers: { authorization: `Bearer ${s.key}` },
      });
      const json = await res.json();
      return json.spend.held === "0.00" ? json : undefined;
    }, "every hold closed");
    assert.equal(
      parseUsd(status.balance),
      parseUsd(CREDIT) - parseUsd(sum("userCharge")),
      "balance = credit − Σ charges",
    );
    assert.equal(status.spend.total.spent, sum("userCharge"));
  } finally {
    await s.stop();
  }
}

Deno.test("ledger e2e (SQLite hub): 1,000 mixed requests, both ledgers identical", async () => {
  await run("sqlite");
});

Deno.test("ledger e2e (MariaDB hub): 1,000 mixed requests, both ledgers identical", async () => {
  const root = await mysql.createConnection({ host: "127.0.0.1", port: 3306, user: "root" });
  const db = `aq_ledger_e2e_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  await root.query(`CREATE DATABASE ${db}`);
  try {
    await run("mariadb", `mysql://root@127.0.0.1:3306/${db}`);
  } finally {
    await root.query(`DROP DATABASE ${db}`);
    await root.end();
  }
});
