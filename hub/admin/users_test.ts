import assert from "node:assert/strict";
import { Hono } from "hono";
import type { Clock } from "../../protocol/clock.ts";
import { sha256, toHex } from "../../protocol/encoding.ts";
import { errorBody, HttpError } from "../http.ts";
import { type HubStore, openStore } from "../store/mod.ts";
import { userRoutes } from "./users.ts";

const NOW = Date.parse("2026-11-22T10:00:00.000Z");
const UNKNOWN_USER = "usr_00000000000000000000";
const UNKNOWN_KEY = "key_00000000000000000000";

interface Harness {
  store: HubStore;
  app: Hono;
  // deno-lint-ignore no-explicit-any
  call(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }>;
  newUser(): Promise<string>;
}

/** The routes mounted as hub/app.ts mounts admin routes, with its error rendering. */
async function withApp(fn: (h: Harness) => Promise<void>): Promise<void> {
  const store = await openStore("sqlite::memory:");
  const clock: Clock = { nowMs: () => NOW, monoMs: () => 0 };
  const app = new Hono();
  app.route("/admin", userRoutes({ store, clock }));
  app.onError((err, c) =>
    err instanceof HttpError
      ? c.json(errorBody(err.type, err.message), err.status as 400)
      : c.json(errorBody("internal_error", String(err)), 500)
  );
  const call = async (method: string, path: string, body?: unknown) => {
    const init: RequestInit = { method };
    if (body !== undefined) init.body = typeof body === "string" ? body : JSON.stringify(body);
    const res = await app.request(`/admin${path}`, init);
    return { status: res.status, json: await res.json() };
  };
  const newUser = async () => (await call("POST", "/users", { name: "Ada" })).json.id as string;
  try {
    await fn({ store, app, call, newUser });
  } finally {
    await store.close();
  }
}

Deno.test("POST /users creates a user that GET /users/:id shows with a zero balance", () =>
  withApp(async ({ call }) => {
    const created = await call("POST", "/users", { name: "Ägent ñ 🚰" });
    assert.equal(created.status, 201);
    assert.deepEqual(Object.keys(created.json), ["id"]);
    const got = await call("GET", `/users/${created.json.id}`);
    assert.deepEqual(got, {
      status: 200,
      json: {
        id: created.json.id,
        name: "Ägent ñ 🚰",
        balance: "0.00",
        disabled: false,
        limits: null,
        createdAt: "2026-11-22T10:00:00.000Z",
      },
    });
  }));

Deno.test("invalid bodies are 400s that say what is wrong", () =>
  withApp(async ({ call, newUser }) => {
    const u = await newUser();
    const table: [string, string, unknown, RegExp][] = [
      ["POST", "/users", {}, /name must be a non-empty string/],
      ["POST", "/users", { name: "" }, /name/],
      ["POST", "/users", { name: "x".repeat(201) }, /≤ 200 chars/],
      ["POST", "/users", { name: 7 }, /name/],
      ["POST", "/users", "not json", /not valid JSON/],
      ["POST", "/users", [], /must be a JSON object/],
      ["POST", `/users/${u}/credit`, { amount: 25 }, /not a JSON number: send it as a string/],
      ["POST", `/users/${u}/credit`, { amount: 0.1 }, /not a JSON number/],
      ["POST", `/users/${u}/credit`, {}, /amount must be a decimal string/],
      ["POST", `/users/${u}/credit`, { amount: null }, /amount must be a decimal string/],
      ["POST", `/users/${u}/credit`, { amount: "1e-3" }, /amount: Cannot parse USD amount/],
      ["POST", `/users/${u}/credit`, { amount: "NaN" }, /amount: /],
      ["POST", `/users/${u}/credit`, { amount: "0.1234567890123" }, /at most 12 fractional/],
      ["POST", `/users/${u}/credit`, { amount: "-0.01" }, /would go below 0/],
      ["POST", "/keys", {}, /userId must be a non-empty string/],
      ["POST", "/keys", { userId: u, zone: "Bad Zone" }, /zone must be/],
      ["POST", "/keys", { userId: u, zone: 3 }, /zone must be/],
      ["POST", "/keys", { userId: u, policy: "all" }, /Invalid routing policy/],
      ["POST", "/keys", { userId: u, policy: { type: "fastest" } }, /Invalid routing policy/],
      ["POST", "/keys", { userId: u, limits: [1] }, /limits must be an object/],
      [
        "POST",
        "/keys",
        { userId: u, limits: { rpm: -1 } },
        /limits.rpm must be a positive integer/,
      ],
      ["POST", "/keys", { userId: u, limits: { rps: 1 } }, /not a known limit/],
      ["POST", "/keys", { userId: u, expiresAt: "tomorrow" }, /expiresAt must be an ISO 8601/],
      ["POST", "/keys", { userId: u, expiresAt: 1_900_000_000_000 }, /expiresAt must be/],
      ["POST", "/keys", { userId: u, expiresAt: "2027-01-01T00:00:00" }, /with an offset/],
      ["POST", "/keys", { userId: u, expiresAt: "2020-01-01T00:00:00Z" }, /in the future/],
      ["PATCH", `/users/${u}`, "not json", /not valid JSON/],
      ["PATCH", `/users/${u}`, [], /must be a JSON object/],
      ["PATCH", `/users/${u}`, { limits: [1] }, /^limits must be an object$/],
      ["PATCH", `/users/${u}`, { limits: "rpm=60" }, /^limits must be an object$/],
      ["PATCH", `/users/${u}`, { limits: 60 }, /^limits must be an object$/],
      ["PATCH", `/users/${u}`, { limits: { rpm: -1 } }, /^limits.rpm must be a positive integer$/],
      ["PATCH", `/users/${u}`, { limits: { tpm: 0 } }, /^limits.tpm must be a positive integer$/],
      ["PATCH", `/users/${u}`, { limits: { tpm: 1.5 } }, /limits.tpm must be a positive/],
      ["PATCH", `/users/${u}`, { limits: { concurrency: "2" } }, /limits.concurrency must/],
      ["PATCH", `/users/${u}`, { limits: { rpm: 2 ** 53 } }, /limits.rpm must be/],
      ["PATCH", `/users/${u}`, { limits: { rpm: 1, rps: 1 } }, /limits.rps is not a known limit/],
    ];
    for (const [method, path, body, message] of table) {
      const res = await call(method, path, body);
      const label = `${method} ${path} ${JSON.stringify(body)}`;
      assert.equal(res.status, 400, label);
      assert.match(res.json.error.message, message, label);
      assert.match(res.json.error.type, /^invalid_(request|json)$/, label);
    }
    // Nothing above changed the user or created a key.
    assert.equal((await call("GET", `/users/${u}`)).json.balance, "0.00");
    assert.equal((await call("GET", `/users/${u}`)).json.limits, null);
    assert.deepEqual((await call("GET", `/users/${u}/keys`)).json, []);
  }));

Deno.test("unknown users and keys are 404 not_found", () =>
  withApp(async ({ call }) => {
    const table: [string, string, unknown?][] = [
      ["GET", `/users/${UNKNOWN_USER}`],
      ["GET", `/users/${UNKNOWN_USER}/keys`],
      ["PATCH", `/users/${UNKNOWN_USER}`, { limits: { rpm: 60 } }],
      ["PATCH", `/users/${UNKNOWN_USER}`, { limits: null }],
      ["PATCH", `/users/${UNKNOWN_USER}`, {}],
      ["POST", `/users/${UNKNOWN_USER}/credit`, { amount: "1" }],
      ["POST", "/keys", { userId: UNKNOWN_USER }],
      ["GET", `/keys/${UNKNOWN_KEY}`],
      ["POST", `/keys/${UNKNOWN_KEY}/disable`],
      ["POST", `/keys/${UNKNOWN_KEY}/enable`],
    ];
    for (const [method, path, body] of table) {
      const res = await call(method, path, body);
      assert.equal(res.status, 404, `${method} ${path}`);
      assert.equal(res.json.error.type, "not_found");
      assert.match(res.json.error.message, /^No (user|key) (usr|key)_0{20}$/);
    }
  }));

Deno.test("credits are exact decimal arithmetic", () =>
  withApp(async ({ call, newUser }) => {
    const u = await newUser();
    let last: unknown;
    for (let i = 0; i < 10; i++) last = await call("POST", `/users/${u}/credit`, { amount: "0.1" });
    assert.deepEqual(last, { status: 200, json: { id: u, balance: "1.00" } });
    assert.equal((await call("GET", `/users/${u}`)).json.balance, "1.00");

    const v = await newUser();
    const steps: [string, string][] = [
      ["12345678901.123456789012", "12345678901.123456789012"],
      ["0.000001", "12345678901.123457789012"],
      ["-0.5", "12345678900.623457789012"],
      ["-12345678900.623457789012", "0.00"],
      ["25", "25.00"],
    ];
    for (const [amount, balance] of steps) {
      const res = await call("POST", `/users/${v}/credit`, { amount });
      assert.deepEqual(res, { status: 200, json: { id: v, balance } }, amount);
      assert.equal((await call("GET", `/users/${v}`)).json.balance, balance);
    }
  }));

Deno.test("POST /keys shows the secret once; GET never returns it or its hash", () =>
  withApp(async ({ app, call, newUser, store }) => {
    const u = await newUser();
    const body = {
      userId: u,
      zone: "premium",
      policy: { type: "grade", minGrade: "A" },
      limits: { rpm: 60 },
      expiresAt: "2027-01-01T00:00:00+01:00",
    };
    const raw = await app.request("/admin/keys", { method: "POST", body: JSON.stringify(body) });
    assert.equal(raw.status, 201);
    assert.equal(raw.headers.get("cache-control"), "no-store");
    const res = { json: await raw.json() };
    const { id, key, prefix, userId } = res.json;
    assert.deepEqual(Object.keys(res.json).sort(), ["id", "key", "prefix", "userId"]);
    assert.match(key, /^aq-[A-Za-z0-9_-]{43}$/);
    assert.equal(prefix, key.slice(3, 11));
    assert.equal(userId, u);

    const view = {
      id,
      userId: u,
      prefix,
      zone: "premium",
      policy: { type: "grade", minGrade: "A" },
      limits: { rpm: 60 },
      disabled: false,
      createdAt: "2026-11-22T10:00:00.000Z",
      expiresAt: "2026-12-31T23:00:00.000Z",
    };
    const hash = toHex(await sha256(key));
    const got = await call("GET", `/keys/${id}`);
    const listed = await call("GET", `/users/${u}/keys`);
    // GET /keys/:id adds what /api/keys/status shows (caps, spend per UTC period, balance).
    const period = (start: string | null, end: string | null) => ({
      start,
      end,
      spent: "0.00",
      cap: null,
      remaining: null,
    });
    assert.deepEqual(got, {
      status: 200,
      json: {
        ...view,
        object: "key_status",
        balance: "0.00",
        caps: { budget: null, dailyCap: null, monthlyCap: null },
        spend: {
          total: period(null, null),
          day: period("2026-11-22T00:00:00.000Z", "2026-11-23T00:00:00.000Z"),
          month: period("2026-11-01T00:00:00.000Z", "2026-12-01T00:00:00.000Z"),
          held: "0.00",
        },
      },
    });
    assert.deepEqual(listed, { status: 200, json: [view] });
    for (const text of [JSON.stringify(got), JSON.stringify(listed)]) {
      assert.ok(!text.includes(key.slice(3)) && !text.includes(hash), text);
    }

    // The gateway's lookup: SHA-256 hex of the secret, with the user joined in.
    const found = await store.findKeyBySecretHash(hash);
    assert.equal(found?.id, id);
    assert.equal(found?.user.id, u);
    assert.equal(found?.user.balance, "0.00");

    assert.deepEqual(await call("POST", `/keys/${id}/disable`), {
      status: 200,
      json: { id, disabled: true },
    });
    assert.equal((await call("GET", `/keys/${id}`)).json.disabled, true);
    assert.equal((await store.findKeyBySecretHash(hash))?.disabled, true);
    assert.deepEqual((await call("POST", `/keys/${id}/enable`)).json, { id, disabled: false });
    assert.equal((await store.findKeyBySecretHash(hash))?.disabled, false);
  }));

Deno.test("POST /keys defaults: zone standard, no policy, limits or expiry", () =>
  withApp(async ({ call, newUser }) => {
    const u = await newUser();
    const created = await call("POST", "/keys", { userId: u, zone: null, policy: null });
    assert.equal(created.status, 201);
    const got = (await call("GET", `/keys/${created.json.id}`)).json;
    assert.deepEqual(
      [got.zone, got.policy, got.limits, got.expiresAt, got.disabled],
      ["standard", null, null, null, false],
    );
  }));

Deno.test("PATCH /users/:id sets, shows and clears limits shared by all the user's keys", () =>
  withApp(async ({ call, newUser, store }) => {
    const u = await newUser();
    const other = await newUser();
    const keys = await Promise.all([{ rpm: 5 }, undefined].map(async (limits) => {
      const created = await call("POST", "/keys", { userId: u, limits });
      return { id: created.json.id as string, hash: toHex(await sha256(created.json.key)) };
    }));
    await call("POST", `/users/${u}/credit`, { amount: "2.5" });
    const view = (limits: unknown) => ({
      id: u,
      name: "Ada",
      balance: "2.50",
      disabled: false,
      limits,
      createdAt: "2026-11-22T10:00:00.000Z",
    });
    const steps: [unknown, unknown][] = [
      [{ limits: { rpm: 60, tpm: 100_000, concurrency: 4 } }, {
        rpm: 60,
        tpm: 100_000,
        concurrency: 4,
      }],
      [{ limits: { concurrency: 1 } }, { concurrency: 1 }],
      [{}, { concurrency: 1 }],
      [{ name: "ignored" }, { concurrency: 1 }],
      [{ limits: {} }, {}],
      [{ limits: null }, null],
      [{ limits: { tpm: 500 } }, { tpm: 500 }],
    ];
    for (const [body, limits] of steps) {
      const label = JSON.stringify(body);
      assert.deepEqual(await call("PATCH", `/users/${u}`, body), {
        status: 200,
        json: view(limits),
      }, label);
      assert.deepEqual(
        await call("GET", `/users/${u}`),
        { status: 200, json: view(limits) },
        label,
      );
      // The gateway's lookup sees the user's limits through every key; keys keep their own.
      for (const [i, key] of keys.entries()) {
        const found = await store.findKeyBySecretHash(key.hash);
        assert.deepEqual(found?.user.limits, limits, label);
        assert.deepEqual(found?.limits, i === 0 ? { rpm: 5 } : null, label);
      }
    }
    assert.equal((await call("GET", `/users/${other}`)).json.limits, null);
    assert.deepEqual((await call("GET", `/keys/${keys[0]!.id}`)).json.limits, { rpm: 5 });
  }));
