/**
 * Balances and quotas end to end with real processes (hub + locked agent + fake OpenAI) and the
 * official `openai` SDK: a key's spend caps refuse a request with 429 `insufficient_quota`
 * naming the cap (the SDK's RateLimitError); `/api/keys/status` (and the dashboard pair), with
 * the key itself, shows the exact spend and what remains after a few requests; a bad key gets
 * 401; a retried top-up with the same Idempotency-Key credits once; two hubs sharing one MariaDB
 * never take a key past its cap.
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import type { LedgerEntry } from "../protocol/chain.ts";
import { formatUsd, parseUsd } from "../protocol/money.ts";
import mysql from "mysql2/promise";
import { TEST_MYSQL_DSN } from "../hub/store/_test_backends.ts";
import { admin, ADMIN_TOKEN, type HubProc } from "./support/cluster.ts";
import { startFleet } from "./support/fleet.ts";
import { waitFor } from "./support/process.ts";
import { startStack } from "./support/stack.ts";

/** Priced in the default table (openai/gpt-5.5: $5 in, $30 out per 1M tokens). */
const MODEL = "gpt-5.5";
const messages = [{ role: "user" as const, content: "count my spend" }];
const ask = { model: MODEL, messages, max_tokens: 64 };

Deno.test("quotas: key caps, key status, idempotent top-ups", async (t) => {
  const stack = await startStack({ credit: "1.00" });
  let worstCase = 0n;
  const hubUrl = stack.hub.url;
  const newKey = async (caps: Record<string, string>) => {
    const res = await admin(stack.hub, "POST", "/keys", { userId: stack.userId, ...caps });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    return { id: res.json.id as string, secret: res.json.key as string };
  };
  const sdk = (secret: string) =>
    new OpenAI({ baseURL: stack.baseURL, apiKey: secret, maxRetries: 0 });
  const status = async (secret: string, init: RequestInit = {}, path = "/api/keys/status") => {
    const res = await fetch(`${hubUrl}${path}`, {
      headers: { authorization: `Bearer ${secret}` },
      ...init,
    });
    return { status: res.status, json: await res.json() };
  };
  const settled = (ids: readonly string[]) =>
    waitFor(
      async () => {
        const res = await admin(stack.hub, "GET", `/ledger?agentId=${stack.agentId}&limit=1000`);
        const entries: LedgerEntry[] = res.json.entries;
        const mine = ids.map((id) => entries.find((e) => e.requestId === id));
        return mine.every(Boolean) ? mine as LedgerEntry[] : undefined;
      },
      "requests settled",
      10_000,
    );

  try {
    await t.step("status after a few requests: spend = Σ charges, remaining exact", async () => {
      const key = await newKey({ dailyCap: "0.5", monthlyCap: "0.75", budget: "0.9" });
      const client = sdk(key.secret);
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const { response } = await client.chat.completions.create({
          model: MODEL,
          messages,
          max_tokens: 16 + i,
        }).withResponse();
        ids.push(response.headers.get("x-request-id")!);
      }
      const entries = await settled(ids);
      const spent = entries.reduce((sum, e) => sum + parseUsd(e.userCharge), 0n);
      assert.ok(spent > 0n);
      const s = await waitFor(async () => {
        const r = await status(key.secret);
        return r.json.spend?.held === "0.00" && r;
      }, "holds closed");
      assert.equal(s.status, 200);
      const user = (await admin(stack.hub, "GET", `/users/${stack.userId}`)).json;
      const day = new Date().toISOString().slice(0, 10);
      assert.deepEqual(s.json.spend.total, {
        start: null,
        end: null,
        spent: formatUsd(spent),
        cap: "0.90",
        remaining: formatUsd(parseUsd("0.9") - spent),
      });
      assert.equal(s.json.spend.day.start, `${day}T00:00:00.000Z`);
      assert.equal(s.json.spend.day.spent, formatUsd(spent));
      assert.equal(s.json.spend.day.remaining, formatUsd(parseUsd("0.5") - spent));
      assert.equal(s.json.spend.month.remaining, formatUsd(parseUsd("0.75") - spent));
      assert.equal(s.json.balance, user.balance);
      assert.deepEqual(s.json.caps, { budget: "0.90", dailyCap: "0.50", monthlyCap: "0.75" });
      assert.equal(s.json.id, key.id);
      assert.equal(s.json.prefix, key.secret.slice(3, 11));
      assert.ok(!JSON.stringify(s.json).includes(key.secret.slice(3)), "never the secret");
      // The admin view shows the same, and other vendors' auth styles work too.
      const adminView = await admin(stack.hub, "GET", `/keys/${key.id}`);
      assert.deepEqual(adminView.json.spend, s.json.spend);
      for (const header of ["x-api-key", "api-key", "x-goog-api-key"]) {
        const init: RequestInit = { headers: { [header]: key.secret } };
        assert.deepEqual((await status("", init)).json.spend, s.json.spend, header);
      }
      const viaQuery = await fetch(`${hubUrl}/api/keys/status?key=${key.secret}`);
      assert.equal((await viaQuery.json()).spend.total.spent, formatUsd(spent));
      // The dashboard pair: exact number literals (cents for usage).
      const usage = await fetch(`${hubUrl}/v1/dashboard/billing/usage`, {
        headers: { authorization: `Bearer ${key.secret}` },
      });
      assert.equal(
        await usage.text(),
        `{"object":"list","total_usage":${formatUsd(spent * 100n)}}`,
      );
      const sub = await client.get("/dashboard/billing/subscription") as Record<string, unknown>;
      assert.equal(sub.object, "billing_subscription");
      assert.equal(sub.hard_limit_usd, 0.9);
    });

    await t.step("a key past its budget gets RateLimitError 429 insufficient_quota", async () => {
      const key = await newKey({ budget: "0.000001" });
      const before = stack.fake.requests.length;
      const err = await sdk(key.secret).chat.completions.create(ask).then(() => null, (e) => e);
      assert.ok(err instanceof OpenAI.RateLimitError, String(err));
      assert.equal(err.status, 429);
      assert.equal(err.code, "insufficient_quota");
      assert.match(err.message, /total budget of 0\.000001 USD would be exceeded/);
      // The worst case of one such request, for the steps below (so they follow the prices).
      worstCase = parseUsd(/may cost up to ([\d.]+) USD/.exec(err.message)![1]!);
      assert.ok(worstCase > 0n);
      assert.equal(stack.fake.requests.length, before, "the vendor never saw it");
      assert.equal((await status(key.secret)).json.spend.total.spent, "0.00");
    });

    await t.step(
      "a tiny daily cap admits requests until the next worst case would pass it",
      async () => {
        // Room for one worst case and a half: a few requests, then a refusal.
        const cap = worstCase * 3n / 2n, capText = formatUsd(cap);
        const key = await newKey({ dailyCap: capText });
        const client = sdk(key.secret);
        let refusal: InstanceType<typeof OpenAI.RateLimitError> | undefined;
        let served = 0;
        for (let i = 0; i < 40 && !refusal; i++) {
          await client.chat.completions.create(ask).then(
            () => served++,
            (e) => {
              if (!(e instanceof OpenAI.RateLimitError)) throw e;
              refusal = e;
            },
          );
        }
        assert.ok(refusal, "refused within 40 requests");
        assert.ok(served >= 1, `served ${served}: ${refusal.message}`);
        assert.equal(refusal.code, "insufficient_quota");
        const m = new RegExp(
          `daily spend cap \\(UTC day\\) of ${capText.replace(".", "\\.")} USD would be ` +
            "exceeded: ([\\d.]+) USD is spent or held, and this request may cost up to ([\\d.]+) USD",
        ).exec(refusal.message);
        assert.ok(m, refusal.message);
        const [spentThen, worst] = [parseUsd(m[1]!), parseUsd(m[2]!)];
        assert.equal(worst, worstCase);
        assert.ok(spentThen <= cap && spentThen + worst > cap);
        const s = await waitFor(async () => {
          const r = await status(key.secret);
          return r.json.spend.held === "0.00" && r;
        }, "holds closed");
        assert.ok(parseUsd(s.json.spend.day.spent) <= cap);
        assert.equal(s.json.spend.day.remaining, formatUsd(cap - parseUsd(s.json.spend.day.spent)));
        // Raising the cap (PATCH) lets the key through again.
        const patched = await admin(stack.hub, "PATCH", `/keys/${key.id}`, { dailyCap: "1" });
        assert.equal(patched.json.caps.dailyCap, "1.00");
        await client.chat.completions.create(ask);
      },
    );

    await t.step("30 concurrent requests never take a key past its daily cap", async () => {
      // Room for three worst cases and a half: at least 3 run at once, never more than the cap.
      const cap = worstCase * 7n / 2n;
      const key = await newKey({ dailyCap: formatUsd(cap) });
      const client = sdk(key.secret);
      const results = await Promise.allSettled(
        Array.from(
          { length: 30 },
          () => client.chat.completions.create(ask),
        ),
      );
      const refused = results.filter((r) => r.status === "rejected");
      for (const r of refused) {
        assert.ok(r.reason instanceof OpenAI.RateLimitError, String(r.reason));
        assert.equal(r.reason.code, "insufficient_quota");
      }
      const served = results.length - refused.length;
      assert.ok(served >= 3 && served < 30, `served ${served}`);
      const s = await waitFor(async () => {
        const r = await status(key.secret);
        return r.json.spend.held === "0.00" && r;
      }, "holds closed");
      assert.ok(parseUsd(s.json.spend.day.spent) <= cap, s.json.spend.day.spent);
    });

    await t.step("a bad, missing or disabled key gets the vendor's 401/403", async () => {
      const bad = await status("aq-not-a-real-key-000000000000");
      assert.equal(bad.status, 401);
      assert.equal(bad.json.error.code, "invalid_api_key");
      const none = await fetch(`${hubUrl}/api/keys/status`);
      assert.equal(none.status, 401);
      assert.equal((await none.json()).error.code, "missing_api_key");
      const err = await sdk("aq-not-a-real-key-000000000000").get("/dashboard/billing/usage")
        .then(() => null, (e) => e);
      assert.ok(err instanceof OpenAI.AuthenticationError, String(err));
      const off = await newKey({});
      await admin(stack.hub, "POST", `/keys/${off.id}/disable`);
      const disabled = await status(off.secret);
      assert.equal(disabled.status, 403);
      assert.equal(disabled.json.error.code, "key_disabled");
    });

    await t.step("a retried top-up with the same Idempotency-Key credits once", async () => {
      const topUp = (key: string, amount: string) =>
        admin(stack.hub, "POST", `/users/${stack.userId}/credit`, { amount }, {
          headers: {
            authorization: `Bearer ${ADMIN_TOKEN}`,
            "content-type": "application/json",
            "idempotency-key": key,
          },
        });
      const before = parseUsd(
        (await admin(stack.hub, "GET", `/users/${stack.userId}`)).json.balance,
      );
      const first = await topUp("invoice-42", "2.000000000001");
      const again = await topUp("invoice-42", "2.000000000001");
      assert.equal(first.status, 200);
      assert.deepEqual(again.json, { ...first.json, replayed: true });
      assert.equal(first.json.balance, formatUsd(before + parseUsd("2.000000000001")));
      const conflict = await topUp("invoice-42", "3");
      assert.equal(conflict.status, 409);
      const after = (await admin(stack.hub, "GET", `/users/${stack.userId}`)).json.balance;
      assert.equal(after, first.json.balance);
    });
  } finally {
    await stack.stop();
  }
});

/** One priced chat completion through `hub` with `key`; status and JSON body. */
async function chat(hub: { url: string }, key: string) {
  const res = await fetch(`${hub.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(ask),
  });
  return { status: res.status, json: await res.json() };
}

Deno.test("quotas: two hubs on one MariaDB never take a key past its daily cap", async () => {
  const pool = mysql.createPool({ uri: TEST_MYSQL_DSN, connectionLimit: 1 });
  const name = `aq_test_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  await pool.query(`CREATE DATABASE ${name}`);
  const url = new URL(TEST_MYSQL_DSN);
  url.pathname = `/${name}`;
  const fleet = await startFleet({
    hubs: 2,
    sharedDb: url.href,
    agents: [{ name: "east", hub: 0 }, { name: "west", hub: 1 }],
  }).catch(async (e) => {
    await pool.query(`DROP DATABASE IF EXISTS ${name}`);
    await pool.end();
    throw e;
  });
  const [east, west] = fleet.hubs as [HubProc, HubProc];
  try {
    await admin(east, "POST", `/users/${fleet.userId}/credit`, { amount: "10" });
    const newKey = async (caps: Record<string, string>) =>
      (await admin(east, "POST", "/keys", { userId: fleet.userId, ...caps })).json.key as string;
    // One refused request tells the worst case of the requests `chat` sends.
    const probe = await chat(east, await newKey({ budget: "0" }));
    assert.equal(probe.status, 429);
    const worst = parseUsd(/may cost up to ([\d.]+) USD/.exec(probe.json.error.message)![1]!);
    const cap = worst * 11n / 2n;
    const key = await newKey({ dailyCap: formatUsd(cap) });
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) => chat(i % 2 ? west : east, key)),
    );
    const served = results.filter((r) => r.status === 200).length;
    for (const r of results.filter((r) => r.status !== 200)) {
      assert.equal(r.status, 429);
      assert.equal(r.json.error.code, "insufficient_quota");
      assert.match(r.json.error.message, /daily spend cap/);
    }
    assert.ok(served >= 5 && served < 60, `served ${served}`);
    // Both hubs read the same spend, within the cap, once every hold is closed. (This request's
    // real charge stays under its hold; a charge above its hold would count in full.)
    const spendOn = async (hub: HubProc) =>
      (await (await fetch(`${hub.url}/api/keys/status`, {
        headers: { authorization: `Bearer ${key}` },
      })).json()).spend;
    const settled = await waitFor(async () => {
      const s = await spendOn(east);
      return s.held === "0.00" && s;
    }, "holds closed");
    assert.deepEqual(await spendOn(west), settled);
    assert.ok(parseUsd(settled.day.spent) <= cap, `${settled.day.spent} > ${formatUsd(cap)}`);
    assert.ok(parseUsd(settled.day.spent) > 0n);
  } finally {
    await fleet.stop();
    await pool.query(`DROP DATABASE IF EXISTS ${name}`);
    await pool.end();
  }
});
