/**
 * Admin API for users (prepaid USD balances) and their virtual keys.
 *
 * Mounted at `/admin` behind the bearer-token middleware of `routes.ts`, so there is no auth
 * here. Errors are thrown as `HttpError` and rendered by the parent app. Money crosses the
 * API only as decimal strings in the store's canonical form (`"25.00"`, `"0.000001"`).
 */
import { Hono } from "hono";
import { keyLimitsProblem } from "../gateway/limits.ts";
import { parsePolicy } from "../routing/policy.ts";
import type { Clock } from "../../protocol/clock.ts";
import type { AwsCredentialVault } from "../gateway/sigv4_credentials.ts";
import { HttpError, readJsonObject } from "../http.ts";
import {
  type HubStore,
  type KeyRecord,
  parseUsd,
  StoreConflictError,
  StoreNotFoundError,
  type UserRecord,
} from "../store/mod.ts";
import { capsFrom, idempotencyKeyOf } from "./quotas.ts";
import { readKeyStatus } from "../gateway/key_status.ts";

export interface UserRoutesDeps {
  store: HubStore;
  clock: Clock;
  /** Issues each new key an AWS access key (Bedrock SigV4 clients); absent: none. */
  awsCredentials?: AwsCredentialVault;
}

const NAME_CHARS_MAX = 200;
/** Pricing zone names: lowercase, digits, `_` and `-`; the store's column holds 64. */
const ZONE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** An ISO 8601 instant with an explicit offset, as `Date.prototype.toISOString` writes it. */
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

const AMOUNT_HELP = 'a decimal string such as "25" or "0.000001"';

export function userRoutes(deps: UserRoutesDeps): Hono {
  const { store, clock } = deps;
  const app = new Hono();

  app.post("/users", async (c) => {
    const body = await readJsonObject(c.req.raw);
    const name = requireString(body.name, "name", NAME_CHARS_MAX);
    const user = await store.createUser({ name }, clock.nowMs());
    return c.json({ id: user.id }, 201);
  });

  app.get("/users/:id", async (c) => c.json(userView(await requireUser(c.req.param("id")))));

  // Limits shared by all of a user's keys ({rpm?, tpm?, concurrency?}, as for a key; null
  // removes them). The gateway sees the change within its key cache time (5 s). An absent
  // `limits` changes nothing, as for PATCH /keys/:id.
  app.patch("/users/:id", async (c) => {
    const id = c.req.param("id");
    const body = await readJsonObject(c.req.raw);
    const user = await requireUser(id);
    if ("limits" in body) {
      const limits = keyLimits(body.limits);
      if (!await store.setUserLimits(id, limits)) throw notFound("user", id);
      return c.json(userView(await requireUser(id)));
    }
    return c.json(userView(user));
  });

  app.get("/users/:id/keys", async (c) => {
    const user = await requireUser(c.req.param("id"));
    return c.json((await store.listKeys(user.id)).map(keyView));
  });

  app.post("/users/:id/credit", async (c) => {
    const id = c.req.param("id");
    const body = await readJsonObject(c.req.raw);
    const amount = requireAmount(body.amount);
    // Retrying with the same Idempotency-Key (header or `idempotencyKey`) credits only once.
    const idempotencyKey = idempotencyKeyOf(c.req.header("idempotency-key"), body.idempotencyKey);
    try {
      const t = await store.quotas.topUp({ userId: id, amount, idempotencyKey }, clock.nowMs());
      const replay = idempotencyKey === null ? {} : { idempotencyKey, replayed: t.replayed };
      return c.json({ id, balance: t.balanceAfter, ...replay });
    } catch (e) {
      if (e instanceof StoreNotFoundError) throw notFound("user", id);
      if (e instanceof StoreConflictError) {
        throw new HttpError(
          409,
          "conflict",
          "This Idempotency-Key was already used for a different top-up",
        );
      }
      if (e instanceof RangeError) throw new HttpError(400, "invalid_request", e.message);
      throw e;
    }
  });

  app.post("/keys", async (c) => {
    const body = await readJsonObject(c.req.raw);
    const userId = requireString(body.userId, "userId", 100);
    try {
      const { record, secret } = await store.createKey({
        userId,
        zone: optionalZone(body.zone),
        policy: routingPolicy(body.policy),
        limits: keyLimits(body.limits),
        expiresAtMs: optionalExpiry(body.expiresAt, clock.nowMs()),
        caps: capsFrom(body),
      }, clock.nowMs());
      // For AWS SigV4 clients (Bedrock): an access key id and secret for the same key.
      const aws = await deps.awsCredentials?.issue(record.id);
      // The only response that ever carries the secrets: keep it out of every cache.
      return c.json(
        {
          id: record.id,
          key: secret,
          prefix: record.prefix,
          userId: record.userId,
          ...(aws ? { aws } : {}),
        },
        201,
        { "cache-control": "no-store" },
      );
    } catch (e) {
      if (e instanceof StoreNotFoundError) throw notFound("user", userId);
      throw e;
    }
  });

  // The key with its caps, spend per period and its user's balance (as /api/keys/status).
  app.get("/keys/:id", async (c) => {
    const key = await store.getKey(c.req.param("id"));
    if (!key) throw notFound("key", c.req.param("id"));
    return c.json({ ...keyView(key), ...await readKeyStatus(store, key, clock.nowMs()) });
  });

  // Routing policy and limits can change over a key's life; the gateway sees the change within
  // its key cache time (5 s).
  app.patch("/keys/:id", async (c) => {
    const id = c.req.param("id");
    const body = await readJsonObject(c.req.raw);
    const key = await store.getKey(id);
    if (!key) throw notFound("key", id);
    const policy = "policy" in body ? routingPolicy(body.policy) : key.policy;
    const limits = "limits" in body ? keyLimits(body.limits) : key.limits;
    const current = (await store.quotas.keySpend(id, clock.nowMs()))?.caps;
    const caps = current && capsFrom(body, current);
    await store.setKeyRouting(id, policy ?? null, limits ?? null);
    if (caps) await store.quotas.setKeyCaps(id, caps);
    const updated = (await store.getKey(id))!;
    return c.json({ ...keyView(updated), ...await readKeyStatus(store, updated, clock.nowMs()) });
  });

  for (const [action, disabled] of [["disable", true], ["enable", false]] as const) {
    app.post(`/keys/:id/${action}`, async (c) => {
      const id = c.req.param("id");
      if (!await store.setKeyDisabled(id, disabled)) throw notFound("key", id);
      return c.json({ id, disabled });
    });
  }

  async function requireUser(id: string): Promise<UserRecord> {
    const user = await store.getUser(id);
    if (!user) throw notFound("user", id);
    return user;
  }

  return app;
}

function userView(user: UserRecord) {
  return {
    id: user.id,
    name: user.name,
    balance: user.balance,
    disabled: user.disabled,
    limits: user.limits,
    createdAt: new Date(user.createdAtMs).toISOString(),
  };
}

/** A key's metadata: never the secret, nor its hash. */
function keyView(key: KeyRecord) {
  return {
    id: key.id,
    userId: key.userId,
    prefix: key.prefix,
    zone: key.zone,
    policy: key.policy,
    limits: key.limits,
    disabled: key.disabled,
    createdAt: new Date(key.createdAtMs).toISOString(),
    expiresAt: key.expiresAtMs === null ? null : new Date(key.expiresAtMs).toISOString(),
  };
}

/** A USD amount as a decimal string; a JSON number is refused, having lost precision already. */
function requireAmount(value: unknown): string {
  if (typeof value === "number") {
    throw invalid(
      `amount must be ${AMOUNT_HELP}, not a JSON number: send it as a string so that no ` +
        "precision is lost",
    );
  }
  if (typeof value !== "string") throw invalid(`amount must be ${AMOUNT_HELP}`);
  try {
    parseUsd(value);
  } catch (e) {
    throw invalid(`amount: ${(e as Error).message}`);
  }
  return value;
}

function optionalZone(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string" || !ZONE.test(value)) {
    throw invalid("zone must be 1–64 chars of a-z, 0-9, _ and -, starting with a letter or digit");
  }
  return value;
}

function optionalExpiry(value: unknown, nowMs: number): number | null {
  if (value === undefined || value === null) return null;
  const ms = typeof value === "string" && INSTANT.test(value) ? Date.parse(value) : NaN;
  if (!Number.isFinite(ms)) {
    throw invalid('expiresAt must be an ISO 8601 time with an offset, e.g. "2027-01-01T00:00:00Z"');
  }
  if (ms <= nowMs) throw invalid("expiresAt must be in the future");
  return ms;
}

function requireString(value: unknown, name: string, maxLength: number): string {
  if (typeof value !== "string" || value.length === 0 || value.length > maxLength) {
    throw invalid(`${name} must be a non-empty string of ≤ ${maxLength} chars`);
  }
  return value;
}

function invalid(message: string): HttpError {
  return new HttpError(400, "invalid_request", message);
}

function notFound(entity: string, id: string): HttpError {
  return new HttpError(404, "not_found", `No ${entity} ${id}`);
}

/** A routing policy as `parsePolicy` accepts it (stored as given, normalised). */
function routingPolicy(value: unknown): unknown {
  if (value === undefined || value === null) return null;
  try {
    return parsePolicy(value);
  } catch (e) {
    throw new HttpError(400, "invalid_request", (e as Error).message);
  }
}

/** Key or user limits as `keyLimitsProblem` accepts them; absent or null is `null`. */
function keyLimits(value: unknown): unknown {
  const problem = keyLimitsProblem(value);
  if (problem) throw new HttpError(400, "invalid_request", problem);
  return value ?? null;
}
