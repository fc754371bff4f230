/**
 * Price versions end to end: the admin API validates and publishes immutable versions, the hub
 * broadcasts PRICES, settlements name the version that priced them, and the agent checks them
 * with tables it keeps (fetching a missing one over the tunnel, refusing tampered ones).
 */
import assert from "node:assert/strict";
import mysql from "mysql2/promise";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { AgentLedger } from "../agent/ledger/mod.ts";
import { AgentPrices } from "../agent/ledger/prices.ts";
import { type OwnUsage, SettlementChecker, UsageBook } from "../agent/ledger/verify.ts";
import { appendEntry, type LedgerEntry } from "../protocol/chain.ts";
import type { ControlFrame, Frame } from "../protocol/frames.ts";
import { generateIdentity } from "../protocol/identity.ts";
import { formatUsd } from "../protocol/money.ts";
import {
  canonicalJson,
  priceContent,
  publishedFrom,
  sha256Text,
} from "../protocol/price_versions.ts";
import { charges, costOf, findPrice, type PriceTable } from "../protocol/pricing.ts";
import { DEFAULT_PRICE_TABLE } from "../protocol/prices_default.ts";
import { emptyUsage } from "../protocol/usage.ts";
import { createLogger } from "../runtime/log.ts";
import { TEST_MYSQL_DSN } from "../hub/store/_test_backends.ts";
import { admin, type HubProc, runAgent, startHub } from "./support/cluster.ts";
import { type Proc, tempDir, waitFor } from "./support/process.ts";
import { auth, hello, RawClient } from "./support/raw_client.ts";
import { startStack } from "./support/stack.ts";

const MODEL = "gpt-5.5";
const quiet = createLogger({ service: "test", level: "error", write: () => {} });

/** The default prices with gpt-5.5 at new input/output rates. */
function repriced(input: string, output: string) {
  const content = structuredClone(priceContent(DEFAULT_PRICE_TABLE)) as Record<string, unknown>;
  const models = content.models as PriceTable["models"];
  (content.models as Record<string, unknown>)["openai/gpt-5.5"] = {
    ...models["openai/gpt-5.5"],
    input,
    output,
  };
  content.source = `test prices (${input}/${output}), 2026-11-22`;
  return content;
}

const ROW = { input: "1.00", cachedInput: "0.10", cacheWrite5m: "1.00", cacheWrite1h: "1.00" };
const small = (extra: Record<string, unknown> = {}) => ({
  source: "test table 2026-11-22",
  models: { "openai/gpt-x": { ...ROW, output: "2.00", ...extra } },
});

Deno.test("admin prices: validation, publishing, idempotency and immutable versions", async () => {
  const tmp = await tempDir("prices-admin");
  const hub = await startHub({ dir: tmp.path });
  try {
    // the store starts with the built-in v1, byte for byte
    const v1 = await admin(hub, "GET", "/prices?version=1");
    assert.equal(v1.status, 200);
    assert.equal(v1.json.sha256, publishedFrom(DEFAULT_PRICE_TABLE).sha256);
    assert.deepEqual(v1.json.table, JSON.parse(JSON.stringify(DEFAULT_PRICE_TABLE)));
    const latest = (await admin(hub, "GET", "/prices")).json.version as number;
    assert.ok(latest >= 1);

    const bad: [unknown, RegExp][] = [
      [small({ input: 1.25 }), /input.*decimal string.*not number/],
      [small({ input: "1e3" }), /input.*non-negative decimal string/],
      [small({ output: "-2" }), /output.*non-negative decimal string/],
      [small({ input: "0.0000000000001" }), /at most 12 fractional digits/],
      [small({ inputt: "1.00" }), /inputt: unknown field/],
      [small({ output: undefined }), /output missing/],
      [
        small({
          tiers: [{ abovePromptTokens: 200, rates: {} }, { abovePromptTokens: 100, rates: {} }],
        }),
        /tiers must ascend/,
      ],
      [small({ tiers: [{ abovePromptTokens: 1.5, rates: {} }] }), /integer ≥ 0/],
      [small({ tiers: [{ abovePromptTokens: 10, rates: { audio: "1" } }] }), /audio: unknown/],
      [small({ serviceTiers: { batch: 0.5 } }), /serviceTiers\.batch/],
      [small({ validFrom: "2027-02-30x" }), /UTC date/],
      [small({ validFrom: "2027-02-01", validUntil: "2027-01-01" }), /before validUntil/],
      [
        small({ timeOfDay: [{ from: "10:00", until: "09:00", rates: {} }] }),
        /from < until/,
      ],
      [{ ...small(), source: "" }, /source: must name a source/],
      [{ models: small().models }, /source: must name a source/],
      [{ ...small(), models: {} }, /name at least one model/],
      [{ ...small(), models: { "gpt-x": small().models["openai/gpt-x"] } }, /vendor\/model/],
      [{ ...small(), aliases: { "openai/y": "openai/nope" } }, /aliases/],
      [{ ...small(), publishedAtMs: 5 }, /publishedAtMs is set by the hub/],
      [{ ...small(), version: 0 }, /version: expected an integer ≥ 1/],
      [{ ...small(), extra: true }, /extra: unknown field/],
    ];
    for (const [body, message] of bad) {
      const res = await admin(hub, "POST", "/prices", body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.json.error.type, "invalid_request");
      assert.match(res.json.error.message, message, JSON.stringify(body));
    }
    for (const body of ["{nope", "[]", "12"]) {
      const res = await admin(hub, "POST", "/prices", undefined, { body });
      assert.equal(res.status, 400, body);
      assert.equal(res.json.error.type, "invalid_json");
    }
    // a table that cannot fit one tunnel control frame is refused up front
    const huge = { source: "huge", models: {} as Record<string, unknown> };
    for (let i = 0; i < 3000; i++) huge.models[`openai/model-${i}`] = { ...ROW, output: "2.00" };
    const tooLarge = await admin(hub, "POST", "/prices", huge);
    assert.equal(tooLarge.status, 400);
    assert.match(tooLarge.json.error.message, /too large.*262144/);
    assert.equal((await admin(hub, "GET", "/prices")).json.version, latest, "nothing published");

    // publish → the next version; the same prices again → that version, nothing new
    const created = await admin(hub, "POST", "/prices", small());
    assert.equal(created.status, 201, JSON.stringify(created.json));
    assert.equal(created.json.version, latest + 1);
    assert.equal(created.json.created, true);
    const again = await admin(hub, "POST", "/prices", small());
    assert.equal(again.status, 200);
    assert.deepEqual(again.json, { ...created.json, created: false });
    const current = await admin(hub, "GET", "/prices");
    assert.equal(current.json.version, latest + 1);
    assert.equal(current.json.sha256, created.json.sha256);
    assert.equal(sha256Text(canonicalJson(current.json.table)), created.json.sha256);
    // a named version: a replay of the same prices is fine, other prices are a conflict
    const named = await admin(hub, "POST", "/prices", { ...small(), version: latest + 1 });
    assert.equal(named.status, 200);
    assert.equal(named.json.version, latest + 1);
    const taken = await admin(hub, "POST", "/prices", {
      ...small({ output: "3.00" }),
      version: latest + 1,
    });
    assert.equal(taken.status, 409);
    assert.match(taken.json.error.message, /immutable/);
    const gap = await admin(hub, "POST", "/prices", { ...small({ output: "4.00" }), version: 40 });
    assert.equal(gap.status, 201);
    assert.equal(gap.json.version, 40);
    const next = await admin(hub, "POST", "/prices", small({ output: "5.00" }));
    assert.equal(next.json.version, 41);

    const versions = await admin(hub, "GET", "/prices/versions");
    assert.deepEqual(
      versions.json.map((v: { version: number }) => v.version).slice(-3),
      [latest + 1, 40, 41],
    );
    assert.equal((await admin(hub, "GET", "/prices?version=39")).status, 404);
    assert.equal((await admin(hub, "GET", "/prices?version=abc")).status, 400);
    assert.equal((await admin(hub, "GET", "/prices?version=0")).status, 400);
    // the old version is untouched
    const old = await admin(hub, "GET", `/prices?version=${latest + 1}`);
    assert.equal(old.json.sha256, created.json.sha256);
  } finally {
    await hub.proc.stop();
    await tmp.remove();
  }
});

Deno.test("prices e2e: a published version reaches the agent, prices settlements, and the agent verifies them", async () => {
  const stack = await startStack({ credit: "10.00", hubEnv: { HUB_UNPRICED_MODELS: "refuse" } });
  let restarted: Proc | undefined;
  try {
    const published = await admin(stack.hub, "POST", "/prices", repriced("7.00", "35.00"));
    assert.equal(published.status, 201, JSON.stringify(published.json));
    const version = published.json.version as number;
    // the agent gets PRICES and keeps the table in its data dir
    await stack.agent.waitForLine(
      (l) => l.msg === "price version received" && l.version === version,
      `agent receives price version ${version}`,
    );
    const file = join(stack.agentDir, "prices", `${version}-${published.json.sha256}.json`);
    assert.equal(sha256Text(await Deno.readTextFile(file)), published.json.sha256);

    const res = await fetch(`${stack.baseURL}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "price me" }] }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    await res.body?.cancel();
    const requestId = res.headers.get("x-request-id")!;
    const entry = await waitFor(async () => {
      const l = await admin(stack.hub, "GET", `/ledger?agentId=${stack.agentId}&limit=1000`);
      return (l.json.entries as LedgerEntry[]).find((e) => e.requestId === requestId);
    }, "hub settles the request");
    assert.equal(entry.priceVersion, version);
    const atNew = findPrice(
      publishedFrom({ ...repriced("7.00", "35.00"), version, publishedAtMs: 0 }).table,
      "openai",
      MODEL,
    )!;
    const ctx = { promptTokens: entry.usage.inputTokens, completedAtMs: entry.completedAtMs };
    assert.equal(entry.official, formatUsd(costOf(entry.usage, ctx, atNew.price)));
    const atV1 = findPrice(DEFAULT_PRICE_TABLE, "openai", MODEL)!;
    assert.notEqual(entry.official, formatUsd(costOf(entry.usage, ctx, atV1.price)));

    // the agent appended it to its own ledger (acknowledged), no dispute
    await stack.agent.waitForLine(
      (l) => l.msg === "settlement verified" && l.requestId === requestId,
      "agent verifies the settlement",
    );
    assert.equal((await admin(stack.hub, "GET", `/agents/${stack.agentId}`)).json.disputes, 0);

    // restarted, the agent holds the version from its data dir before any hub contact
    await stack.agent.stop();
    restarted = runAgent(stack.agentDir, {
      AGENT_DEV_UPSTREAMS: JSON.stringify({ "api.openai.com": stack.fake.url }),
    });
    const held = await restarted.waitForLine((l) => l.msg === "price versions held", "held");
    assert.ok(String(held.versions).split(",").includes(String(version)), JSON.stringify(held));
  } finally {
    await restarted?.stop();
    await stack.stop();
  }
});

// ---------------------------------------------------------------------------------------------
// An agent lacking a version: the real hub over a hand-driven tunnel, the agent's own classes
// ---------------------------------------------------------------------------------------------

const NOW = Date.now();

/** A real tunnel session with the hub: HELLO, CHALLENGE, AUTH, WELCOME. */
async function session(hub: HubProc) {
  const { signer } = await generateIdentity();
  const enrolled = await admin(hub, "POST", "/agents", {
    name: "raw",
    publicKey: signer.publicKey,
  });
  const agentId = enrolled.json.id as string;
  const client = await RawClient.connect(hub.url);
  const h = hello({ agentId, signer });
  client.send(h);
  const challenge = await client.next() as Frame<"challenge">;
  client.send(await auth(h, challenge, signer));
  assert.equal((await client.next()).type, "welcome");
  return { client, agentId };
}

/** What an honest hub would send for `own` at `table`, after `prev`. */
async function honest(
  table: PriceTable,
  agentId: string,
  own: OwnUsage,
  prev: LedgerEntry | null,
  requestId: string,
): Promise<Frame<"settled">> {
  const price = findPrice(table, "openai", MODEL)!.price;
  const official = costOf(own.usage, { promptTokens: own.promptTokens, completedAtMs: NOW }, price);
  const split = charges({ official, zoneMultiplier: "1.00", payoutRatio: "0.65" });
  const entry = await appendEntry(prev, {
    agentId,
    requestId,
    vendor: "openai",
    model: MODEL,
    usage: own.usage,
    priceVersion: table.version,
    official: formatUsd(official),
    userCharge: formatUsd(split.userCharge),
    agentPayout: formatUsd(split.agentPayout),
    completedAtMs: NOW,
    settledAtMs: NOW + 5,
  });
  return { type: "settled", ...entry, zoneMultiplier: "1.00", payoutRatio: "0.65" };
}

Deno.test("an agent that lacks the version a SETTLED names fetches it from the hub and acks", async () => {
  const tmp = await tempDir("prices-fetch");
  const hub = await startHub({ dir: tmp.path });
  const { client, agentId } = await session(hub);
  const prices = await AgentPrices.open({
    dir: join(tmp.path, "agent-prices"),
    log: quiet,
    send: (f) => (client.send(f), true),
  });
  const ledger = await AgentLedger.open(join(tmp.path, "ledger"), { agentId });
  const book = new UsageBook({ nowMs: () => NOW, monoMs: () => 0 });
  const checker = new SettlementChecker({
    ledger,
    book,
    agentId,
    log: quiet,
    tables: prices.lookup,
  });
  let pumping = true;
  const announced: number[] = [];
  // The agent's frame loop for this test. It stands for an agent that missed the announcements
  // (`latest: true`: the greeting after WELCOME, the broadcast on publish): only answers to its
  // own PRICES_GET reach its book.
  const pump = (async () => {
    // session() read CHALLENGE and WELCOME; polled (not client.next()) so that it stops at once.
    for (let read = 2; pumping;) {
      const f = client.frames[read];
      if (!f) {
        await new Promise((r) => setTimeout(r, 5));
        continue;
      }
      read++;
      if (f?.type === "prices" && f.latest) announced.push(f.version);
      else if (f?.type === "prices") await prices.accept(f);
      if (f?.type === "prices_missing") prices.missing(f);
    }
  })();
  try {
    // A version published while this agent was not listening (it keeps only the built-in v1).
    const published = await admin(hub, "POST", "/prices", repriced("9.00", "45.00"));
    assert.equal(published.status, 201);
    const version = published.json.version as number;
    // The hub did announce it to the connected agent (after the greeting with the old latest).
    await waitFor(() => announced.includes(version), "PRICES broadcast on publish");
    assert.equal(announced[0], version - 1);
    assert.equal(prices.held(version), undefined);
    const table = publishedFrom({
      ...repriced("9.00", "45.00"),
      version,
      publishedAtMs: published.json.publishedAtMs,
    }).table;
    const own: OwnUsage = {
      vendor: "openai",
      usage: { ...emptyUsage(), inputTokens: 1000, outputTokens: 200 },
      promptTokens: 1000,
      model: MODEL,
      atMs: NOW,
    };
    book.put("req_1", own);
    book.put("req_2", own);
    const replies: ControlFrame[] = [];
    const f1 = await honest(table, agentId, own, null, "req_1");
    await checker.onSettled(f1, (f) => replies.push(f));
    assert.equal(replies.length, 1);
    assert.equal(replies[0]!.type, "settle_ack", JSON.stringify(replies[0]));
    assert.equal(prices.held(version)?.sha256, published.json.sha256, "fetched and verified");
    const stored = join(tmp.path, "agent-prices", `${version}-${published.json.sha256}.json`);
    const text = await waitFor(() => Deno.readTextFile(stored).catch(() => undefined), "stored");
    assert.equal(sha256Text(text), published.json.sha256);
    assert.ok(
      hub.proc.lines.every((l) => l.msg !== "cannot load a price version for an agent"),
    );

    // A version the hub never published: PRICES_MISSING at once, then a dispute
    const f2 = await honest({ ...table, version: 977 }, agentId, own, f1 as LedgerEntry, "req_2");
    const t0 = performance.now();
    await checker.onSettled(f2, (f) => replies.push(f));
    const disputed = replies.at(-1) as Frame<"dispute">;
    assert.equal(disputed.type, "dispute");
    assert.equal(disputed.reason, "unknown price version");
    assert.ok(performance.now() - t0 < 4_000, "answered by PRICES_MISSING, not the timeout");
    assert.equal(ledger.head().seq, 1);
  } finally {
    pumping = false;
    checker.close();
    prices.close();
    client.close();
    await pump;
    await ledger.close();
    await hub.proc.stop();
    await tmp.remove();
  }
});

Deno.test("tampered price tables are refused by the agent and never served by the hub", async (t) => {
  const tmp = await tempDir("prices-tamper");
  try {
    await t.step("agent: a hash mismatch, or other prices under a held version", async () => {
      const dir = join(tmp.path, "agent-prices");
      const prices = await AgentPrices.open({ dir, log: quiet });
      const p = publishedFrom({ ...repriced("2.00", "3.00"), version: 2, publishedAtMs: 1 });
      const frame: Frame<"prices"> = {
        type: "prices",
        version: 2,
        publishedAtMs: 1,
        sha256: p.sha256,
        latest: true,
        table: p.text,
      };
      const tampered = p.text.replace('"input":"2.00"', '"input":"0.01"');
      assert.notEqual(tampered, p.text);
      assert.equal(await prices.accept({ ...frame, table: tampered }), false);
      assert.equal(prices.held(2), undefined);
      // a hash that matches a non-canonical or mis-versioned text is refused too
      const spaced = JSON.stringify(JSON.parse(p.text), null, 1);
      assert.equal(
        await prices.accept({ ...frame, table: spaced, sha256: sha256Text(spaced) }),
        false,
      );
      assert.equal(await prices.accept({ ...frame, version: 3 }), false);
      assert.equal(await prices.accept(frame), true);
      assert.equal(prices.held(2)?.sha256, p.sha256);
      // v2 is held: other prices under v2 (a consistent hash) are refused, v2 is unchanged
      const other = publishedFrom({ ...repriced("2.50", "3.00"), version: 2, publishedAtMs: 1 });
      assert.equal(
        await prices.accept({ ...frame, table: other.text, sha256: other.sha256 }),
        false,
      );
      assert.equal(prices.held(2)?.sha256, p.sha256);
      // the built-in v1 cannot be replaced either
      const fake1 = publishedFrom({ ...repriced("0.01", "0.01"), version: 1, publishedAtMs: 1 });
      assert.equal(
        await prices.accept({ ...frame, version: 1, table: fake1.text, sha256: fake1.sha256 }),
        false,
      );
      // stored files are checked again at every start: an edited file is ignored
      const file = join(dir, `2-${p.sha256}.json`);
      assert.equal(await Deno.readTextFile(file), p.text);
      assert.deepEqual((await AgentPrices.open({ dir, log: quiet })).held(2)?.sha256, p.sha256);
      await Deno.writeTextFile(file, tampered);
      const reopened = await AgentPrices.open({ dir, log: quiet });
      assert.equal(reopened.held(2), undefined);
      assert.deepEqual(reopened.versions(), [1]);
    });

    await t.step("hub: a row whose text no longer matches its hash is never used", async () => {
      const hub = await startHub({ dir: tmp.path });
      try {
        const current = (await admin(hub, "GET", "/prices")).json;
        // Another writer adds a version whose text does not hash to its recorded hash.
        const good = publishedFrom({ ...repriced("1.00", "1.00"), version: 77, publishedAtMs: 5 });
        const db = new DatabaseSync(join(tmp.path, "hub.db"), { timeout: 5000 });
        try {
          db.prepare(
            "INSERT INTO price_versions (version, published_at_ms, canonical, sha256) VALUES (?, ?, ?, ?)",
          ).run(77, 5, good.text.replace('"1.00"', '"0.00"'), good.sha256);
        } finally {
          db.close();
        }
        await hub.proc.waitForLine(
          (l) => l.msg === "cannot load the latest price version" && /77/.test(String(l.error)),
          "hub refuses the tampered latest version",
        );
        assert.equal((await admin(hub, "GET", "/prices")).json.version, current.version);
        const direct = await admin(hub, "GET", "/prices?version=77");
        assert.equal(direct.status, 500);
        assert.equal(direct.json.error.type, "integrity_error");
        assert.match(direct.json.error.message, /hashes to [0-9a-f]{64}, not the claimed/);
        const { client } = await session(hub);
        try {
          client.send({ type: "prices_get", version: 77 });
          const answer = await waitFor(
            () => client.frames.find((f) => f.type === "prices_missing"),
            "PRICES_MISSING",
          );
          assert.equal(answer.type === "prices_missing" && answer.version, 77);
          assert.ok(!client.frames.some((f) => f.type === "prices" && f.version === 77));
        } finally {
          client.close();
        }
        // A hub (re)starting on this database takes the newest version that passes its checks.
        await hub.proc.stop();
        const again = await startHub({ dir: tmp.path });
        try {
          assert.equal((await admin(again, "GET", "/prices")).json.version, current.version);
          assert.ok(
            again.proc.lines.some((l) =>
              l.msg === "cannot load the latest price version" && l.version === 77
            ),
          );
        } finally {
          await again.proc.stop();
        }
      } finally {
        await hub.proc.stop();
      }
    });
  } finally {
    await tmp.remove();
  }
});

/** A fresh MariaDB database for one test, dropped by `drop`. */
async function mariadbDatabase() {
  const pool = mysql.createPool({ uri: TEST_MYSQL_DSN, connectionLimit: 1 });
  const name = `aq_test_prices_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  await pool.query(`CREATE DATABASE ${name}`);
  const url = new URL(TEST_MYSQL_DSN);
  url.pathname = `/${name}`;
  return {
    dsn: url.href,
    drop: async () => {
      await pool.query(`DROP DATABASE IF EXISTS ${name}`);
      await pool.end();
    },
  };
}

for (const engine of ["sqlite", "mariadb"] as const) {
  Deno.test(`hubs sharing one database (${engine}): seeded once, and a version published on one reaches the other's agents`, async () => {
    const tmp = await tempDir("prices-cluster");
    const maria = engine === "mariadb" ? await mariadbDatabase() : undefined;
    const db: Record<string, string> = maria ? { HUB_DB: maria.dsn } : {};
    // Started together on one database: each seeds the built-in versions; each lands once.
    const started = await Promise.allSettled(
      ["a", "b"].map((n) =>
        startHub({ dir: tmp.path, env: { HUB_IDENTITY_KEY: `${tmp.path}/${n}.key`, ...db } })
      ),
    );
    const hubs = started.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
    if (hubs.length < 2) {
      await Promise.all(hubs.map((h) => h.proc.stop()));
      await maria?.drop();
      await tmp.remove();
      throw (started.find((r) => r.status === "rejected") as PromiseRejectedResult).reason;
    }
    const [a, b] = hubs as [HubProc, HubProc];
    try {
      const listA = (await admin(a, "GET", "/prices/versions")).json;
      assert.deepEqual(listA, (await admin(b, "GET", "/prices/versions")).json);
      assert.deepEqual(listA.map((v: { version: number }) => v.version).slice(0, 1), [1]);
      const before = (await admin(a, "GET", "/prices")).json.version as number;
      const seededV1 = [a, b].flatMap((h) =>
        h.proc.lines.filter((l) => l.msg === "built-in price version seeded" && l.version === 1)
      );
      assert.equal(seededV1.length, 1, "exactly one hub inserted v1");

      const { client } = await session(a);
      try {
        const published = await admin(b, "POST", "/prices", small({ output: "2.50" }));
        assert.equal(published.status, 201);
        const version = published.json.version as number;
        assert.equal(version, before + 1);
        // hub A finds it at its next poll, prices with it, and tells its agents
        const frame = await waitFor(
          () => client.frames.find((f) => f.type === "prices" && f.version === version),
          "PRICES from hub A",
          10_000,
        ) as Frame<"prices">;
        assert.equal(frame.latest, true);
        assert.equal(frame.sha256, published.json.sha256);
        assert.equal((await admin(a, "GET", "/prices")).json.version, version);
      } finally {
        client.close();
      }
    } finally {
      await Promise.all([a.proc.stop(), b.proc.stop()]);
      await maria?.drop();
      await tmp.remove();
    }
  });
}
