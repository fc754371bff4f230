/**
 * Limits across hub replicas with real processes: two hubs sharing one MariaDB store and one Redis
 * enforce a key's 60 RPM exactly; a channel's declared TPM is never exceeded; with Redis gone the
 * hubs keep serving on local limits and go back to shared ones when it returns.
 */
import assert from "node:assert/strict";
import mysql from "mysql2/promise";
import { PrivateRedis } from "../hub/limits/_redis_server.ts";
import { TEST_MYSQL_DSN } from "../hub/store/_test_backends.ts";
import { admin } from "./support/cluster.ts";
import { chat, startFleet } from "./support/fleet.ts";
import { waitFor } from "./support/process.ts";

async function freshDatabase(): Promise<{ dsn: string; drop: () => Promise<void> }> {
  const pool = mysql.createPool({ uri: TEST_MYSQL_DSN, connectionLimit: 1 });
  const name = `aq_test_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
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

Deno.test("two hubs, one Redis: a key's 60 RPM is exact; Redis down → local limits; back → shared", async (t) => {
  const db = await freshDatabase();
  const redis = await PrivateRedis.start();
  const fleet = await startFleet({
    hubs: 2,
    sharedDb: db.dsn,
    hubEnv: {
      HUB_REDIS: `redis://127.0.0.1:${redis.port}`,
      HUB_LIMITS_FAIL_MODE: "local",
      HUB_LIMITS_LOCAL_SCALE: "0.5",
    },
    agents: [{ name: "east", hub: 0 }, { name: "west", hub: 1 }, {
      name: "tight",
      hub: 1,
      tpm: 3000,
    }],
  });
  const roomy = { type: "pinned", agents: [fleet.agents[0]!.id, fleet.agents[1]!.id] };
  const [east, west] = fleet.hubs as [typeof fleet.hubs[0], typeof fleet.hubs[0]];
  try {
    await t.step(
      "60 RPM across both hubs: exactly 60 succeed, the rest get OpenAI-style 429s",
      async () => {
        const { key } = await fleet.key({ limits: { rpm: 60 }, policy: roomy });
        const results = await Promise.all(
          Array.from({ length: 100 }, (_, i) => chat(i % 2 ? west : east, key, `burst ${i}`)),
        );
        const ok = results.filter((r) => r.status === 200);
        const limited = results.filter((r) => r.status === 429);
        assert.equal(
          ok.length,
          60,
          `statuses: ${results.map((r) => r.status).join(",")} ${JSON.stringify(limited[0]?.json)}`,
        );
        assert.equal(limited.length, 40);
        for (const r of limited) {
          assert.equal(r.json.error.code, "rate_limit_exceeded");
          assert.equal(r.json.error.type, "requests");
          assert.ok(Number(r.headers.get("retry-after")) >= 1);
        }
        assert.ok(
          ok.some((_, i) => i % 2 === 0) && results.some((r, i) => i % 2 === 1 && r.status === 200),
          "both hubs served",
        );
      },
    );

    await t.step("a channel's declared TPM is never exceeded", async () => {
      const tight = fleet.agents[2]!;
      const { key } = await fleet.key({ policy: { type: "pinned", agents: [tight.id] } });
      const results: Awaited<ReturnType<typeof chat>>[] = [];
      for (let i = 0; i < 40; i++) results.push(await chat(west, key, `tokens ${i} [[words:20]]`));
      assert.ok(
        results.some((r) => r.status === 429),
        "the channel ran out of tokens for this minute",
      );
      await waitFor(async () => {
        const list = (await admin(east, "GET", `/usage?agentId=${tight.id}&limit=1000`)).json;
        return list.length === results.filter((r) => r.status === 200).length ? list : undefined;
      }, "usage records of the served requests");
      const list = (await admin(east, "GET", `/usage?agentId=${tight.id}&limit=1000`)).json;
      const used = list.reduce(
        (
          sum: number,
          u: { usage: { inputTokens: number; cachedInputTokens: number; outputTokens: number } },
        ) => sum + u.usage.inputTokens + u.usage.cachedInputTokens + u.usage.outputTokens,
        0,
      );
      assert.ok(used <= 3000, `channel used ${used} tokens in the window (declared 3000 TPM)`);
      assert.ok(used > 0, "and the channel was actually used");
    });

    await t.step(
      "Redis stopped: both hubs keep serving on local limits; restarted: shared again",
      async () => {
        const { key } = await fleet.key({ limits: { rpm: 10 }, policy: roomy });
        await redis.signal("SIGKILL");
        const during = await Promise.all(
          Array.from({ length: 16 }, (_, i) => chat(i % 2 ? west : east, key, `down ${i}`)),
        );
        // Each hub enforces half the limit alone (HUB_LIMITS_LOCAL_SCALE=0.5): 5 + 5.
        assert.equal(
          during.filter((r) => r.status === 200).length,
          10,
          during.map((r) => r.status).join(","),
        );
        for (const hub of [east, west]) {
          await hub.proc.waitForLine(
            (l) => l.msg === "shared limits unavailable; using fallback",
            "degraded logged",
          );
        }
        await redis.restart();
        for (const hub of [east, west]) {
          await hub.proc.waitForLine(
            (l) => l.msg === "shared limits restored",
            "restored logged",
            10_000,
          );
        }
        const { key: fresh } = await fleet.key({ limits: { rpm: 6 }, policy: roomy });
        const after = await Promise.all(
          Array.from({ length: 12 }, (_, i) => chat(i % 2 ? west : east, fresh, `up ${i}`)),
        );
        assert.equal(after.filter((r) => r.status === 200).length, 6, "one shared budget again");
      },
    );
  } finally {
    await fleet.stop();
    await redis.stop();
    await db.drop();
  }
});
