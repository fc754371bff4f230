import assert from "node:assert/strict";
import { Hono } from "hono";
import type { Clock } from "../../protocol/clock.ts";
import { errorBody, HttpError } from "../http.ts";
import { openStore } from "../store/mod.ts";
import { userRoutes } from "./users.ts";

const NOW = Date.parse("2026-11-22T10:00:00.000Z");

/** The user routes on an in-memory store, rendered as hub/app.ts renders admin errors. */
async function withApp(
  // deno-lint-ignore no-explicit-any
  fn: (call: (m: string, p: string, b?: unknown, h?: HeadersInit) => Promise<any>) => Promise<void>,
) {
  const store = await openStore("sqlite::memory:");
  const clock: Clock = { nowMs: () => NOW, monoMs: () => 0 };
  const app = new Hono();
  app.route("/admin", userRoutes({ store, clock }));
  app.onError((err, c) =>
    err instanceof HttpError
      ? c.json(errorBody(err.type, err.message), err.status as 400)
      : c.json(errorBody("internal_error", String(err)), 500)
  );
  try {
    await fn(async (method, path, body, headers) => {
      const res = await app.request(`/admin${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, json: await res.json() };
    });
  } finally {
    await store.close();
  }
}

Deno.test("key caps: set at creation, changed field by field with PATCH, shown by GET", () =>
  withApp(async (call) => {
    const user = (await call("POST", "/users", { name: "capped" })).json.id;
    const created = await call("POST", "/keys", { userId: user, budget: "10", dailyCap: "0.5" });
    assert.equal(created.status, 201);
    const id = created.json.id;
    const caps = async () => (await call("GET", `/keys/${id}`)).json.caps;
    assert.deepEqual(await caps(), { budget: "10.00", dailyCap: "0.50", monthlyCap: null });
    const patched = await call("PATCH", `/keys/${id}`, { monthlyCap: "3.000000000001" });
    assert.equal(patched.status, 200);
    assert.deepEqual(patched.json.caps, {
      budget: "10.00",
      dailyCap: "0.50",
      monthlyCap: "3.000000000001",
    });
    await call("PATCH", `/keys/${id}`, { budget: null, limits: { rpm: 5 } });
    assert.deepEqual(await caps(), {
      budget: null,
      dailyCap: "0.50",
      monthlyCap: "3.000000000001",
    });
    assert.deepEqual((await call("GET", `/keys/${id}`)).json.limits, { rpm: 5 });
    // No cap field: caps untouched.
    await call("PATCH", `/keys/${id}`, { policy: { type: "auto" } });
    assert.equal((await caps()).dailyCap, "0.50");
  }));

Deno.test("key caps: floats, negatives, > 12 decimals and junk are 400s naming the field", () =>
  withApp(async (call) => {
    const user = (await call("POST", "/users", { name: "capped" })).json.id;
    const id = (await call("POST", "/keys", { userId: user })).json.id;
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ budget: 10 }, /budget must be a decimal USD string .* not a JSON number/],
      [{ dailyCap: 0.5 }, /dailyCap .* not a JSON number/],
      [{ monthlyCap: "-1" }, /monthlyCap must not be negative/],
      [{ budget: "0.1234567890123" }, /budget: .*at most 12 fractional/],
      [{ dailyCap: "1e-3" }, /dailyCap: Cannot parse USD amount/],
      [{ budget: true }, /budget must be a decimal USD string/],
      [{ budget: "1" + "0".repeat(27) }, /budget must be at most/],
    ];
    for (const [fields, message] of cases) {
      for (
        const [method, path, body] of [
          ["POST", "/keys", { userId: user, ...fields }],
          ["PATCH", `/keys/${id}`, fields],
        ] as const
      ) {
        const res = await call(method, path, body);
        assert.equal(res.status, 400, `${method} ${JSON.stringify(fields)}`);
        assert.match(res.json.error.message, message);
      }
    }
    // Nothing half-written: the refused POSTs made no key, the PATCHes changed nothing.
    assert.equal((await call("GET", `/users/${user}/keys`)).json.length, 1);
    assert.deepEqual((await call("GET", `/keys/${id}`)).json.caps, {
      budget: null,
      dailyCap: null,
      monthlyCap: null,
    });
  }));

Deno.test("top-up: an Idempotency-Key (header or body) credits once; misuse is a 400/409", () =>
  withApp(async (call) => {
    const user = (await call("POST", "/users", { name: "payer" })).json.id;
    const credit = (body: unknown, headers?: HeadersInit) =>
      call("POST", `/users/${user}/credit`, body, headers);
    const first = await credit({ amount: "5" }, { "idempotency-key": "inv-1" });
    assert.deepEqual(first, {
      status: 200,
      json: { id: user, balance: "5.00", idempotencyKey: "inv-1", replayed: false },
    });
    assert.deepEqual((await credit({ amount: "5", idempotencyKey: "inv-1" })).json, {
      ...first.json,
      replayed: true,
    });
    assert.equal((await call("GET", `/users/${user}`)).json.balance, "5.00");
    assert.equal((await credit({ amount: "6" }, { "idempotency-key": "inv-1" })).status, 409);
    const mismatch = await credit({ amount: "1", idempotencyKey: "a" }, { "idempotency-key": "b" });
    assert.equal(mismatch.status, 400);
    assert.match(mismatch.json.error.message, /differ/);
    for (const bad of ["", "has space", "x".repeat(129)]) {
      assert.equal((await credit({ amount: "1", idempotencyKey: bad })).status, 400, bad);
    }
    assert.equal((await credit({ amount: "1", idempotencyKey: 7 })).status, 400);
    // Without a key, each call credits (the old behaviour), answered as before.
    assert.deepEqual((await credit({ amount: "1" })).json, { id: user, balance: "6.00" });
    assert.deepEqual((await credit({ amount: "1" })).json, { id: user, balance: "7.00" });
  }));
