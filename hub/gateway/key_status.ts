/**
 * What a key holder may see of their own key, authenticated with the key itself (any header a
 * vendor surface accepts: `Authorization: Bearer`, `x-api-key`, `api-key`, `x-goog-api-key`, or
 * `?key=`), without admin rights: `GET /api/keys/status`. Also the OpenAI-dashboard-style pair
 * third-party chat UIs poll, `GET /v1/dashboard/billing/subscription` and `…/usage` (also under
 * `/openai`). Errors use OpenAI's envelope. Never shows the secret or its hash.
 *
 * Money is exact: decimal strings in `/api/keys/status`; the dashboard pair must answer JSON
 * numbers, so their number literals are written from the exact decimal text (never through a
 * float).
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import type { Clock } from "../../protocol/clock.ts";
import { formatUsd, parseUsd } from "../../protocol/money.ts";
import { vendorNamed, VENDORS } from "../../protocol/vendors/registry.ts";
import type { HubStore, KeyRecord, KeySpend, SpendPeriod } from "../store/mod.ts";
import { KeyAuthenticator } from "./auth.ts";

export interface KeyStatusDeps {
  store: HubStore;
  clock: Clock;
}

/** The status document of a key (shared by `/api/keys/status` and `GET /admin/keys/:id`). */
export function keyStatusView(key: KeyRecord, balance: string, spend: KeySpend) {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  const period = (p: SpendPeriod) => ({
    start: iso(p.startMs),
    end: iso(p.endMs),
    spent: p.spent,
    cap: p.cap,
    remaining: p.remaining,
  });
  return {
    object: "key_status",
    id: key.id,
    prefix: key.prefix,
    userId: key.userId,
    zone: key.zone,
    disabled: key.disabled,
    createdAt: new Date(key.createdAtMs).toISOString(),
    expiresAt: iso(key.expiresAtMs),
    /** Requests/tokens per minute and concurrent streams (`null`: none). */
    limits: key.limits,
    /** The available balance of the key's user (what is not held), exact USD. */
    balance,
    caps: spend.caps,
    /** Spend = settled charges + holds still open; periods are UTC. */
    spend: {
      total: period(spend.total),
      day: period(spend.day),
      month: period(spend.month),
      held: spend.held,
    },
  };
}

/** Reads the status of `key` as of now (its user's balance and its spend, fresh from the store). */
export async function readKeyStatus(store: HubStore, key: KeyRecord, nowMs: number) {
  const [user, spend] = await Promise.all([
    store.getUser(key.userId),
    store.quotas.keySpend(key.id, nowMs),
  ]);
  if (!user || !spend) return null;
  return keyStatusView(key, user.balance, spend);
}

export function keyStatusRoutes(deps: KeyStatusDeps): Hono {
  const { store, clock } = deps;
  const auth = new KeyAuthenticator(store, clock);
  const openai = vendorNamed("openai")!;
  const app = new Hono();

  /** The caller's key, or the 401/403 GatewayError, rendered in OpenAI's envelope. */
  const caller = async (c: Context) => {
    c.set("vendor" as never, openai as never);
    const url = new URL(c.req.url);
    const secret = VENDORS.map((v) => v.clientCredential(c.req.raw.headers, url))
      .find((s) => s) ?? null;
    const key = await auth.authenticate(secret);
    const status = await readKeyStatus(store, key, clock.nowMs());
    if (!status) throw new Error(`key ${key.id} vanished while reading its status`);
    return status;
  };
  const noStore = { "cache-control": "no-store" };

  app.get("/api/keys/status", async (c) => c.json(await caller(c), 200, noStore));

  for (const prefix of ["", "/openai"]) {
    app.get(`${prefix}/v1/dashboard/billing/subscription`, async (c) => {
      const s = await caller(c);
      // The most this key may still have spent in all: its budget, or spent + the balance.
      const reachable = parseUsd(s.spend.total.spent) + parseUsd(s.balance);
      const budget = s.caps.budget === null ? reachable : parseUsd(s.caps.budget);
      const hard = formatUsd(budget < reachable ? budget : reachable);
      const until = s.expiresAt === null ? 0 : Math.floor(Date.parse(s.expiresAt) / 1000);
      return json(c, [
        ['"object"', '"billing_subscription"'],
        ['"has_payment_method"', "true"],
        ['"soft_limit_usd"', hard],
        ['"hard_limit_usd"', hard],
        ['"system_hard_limit_usd"', hard],
        ['"access_until"', String(until)],
      ]);
    });
    app.get(`${prefix}/v1/dashboard/billing/usage`, async (c) => {
      const s = await caller(c);
      // OpenAI's legacy field is in cents: 100 × the lifetime spend, still exact.
      const cents = formatUsd(parseUsd(s.spend.total.spent) * 100n);
      return json(c, [['"object"', '"list"'], ['"total_usage"', cents]]);
    });
  }
  return app;
}

/** A JSON object from already-encoded members: exact decimal number literals stay exact. */
function json(c: Context, members: [string, string][]): Response {
  const body = `{${members.map(([k, v]) => `${k}:${v}`).join(",")}}`;
  return c.body(body, 200, { "content-type": "application/json", "cache-control": "no-store" });
}
