/**
 * Price versions over the admin API:
 * - `GET /admin/prices` → the current version `{version, publishedAt, publishedAtMs, sha256,
 *   table}`; `?version=N` → that version (404 if never published).
 * - `GET /admin/prices/versions` → `[{version, publishedAt, publishedAtMs, sha256}]`, ascending.
 * - `POST /admin/prices {source, models, aliases?, version?}` → 201 with the new version (the
 *   next number unless `version` names one), broadcast to every connected agent as PRICES; 200
 *   `created: false` when the prices equal the latest (or the named version's): nothing new.
 *   400 for anything invalid (decimal strings only, known rate fields, ascending tiers, valid
 *   dates, ≤ one tunnel frame), 409 for a named version that holds other prices.
 */
import { Hono } from "hono";
import { PriceVersionError, type PublishedPrices } from "../../protocol/price_versions.ts";
import { type PriceBook, PricePublishError, PriceVersionTakenError } from "../billing/prices.ts";
import { HttpError, readJsonObject } from "../http.ts";

/** Tables are larger than other admin bodies; what fits a PRICES frame is checked after. */
const PRICES_BODY_BYTES_MAX = 1024 * 1024;

export function priceRoutes(deps: { prices: PriceBook }): Hono {
  const { prices } = deps;
  const app = new Hono();

  app.get("/prices", async (c) => {
    const q = c.req.query("version");
    if (q === undefined) return c.json(view(prices.current(), true));
    const version = Number(q);
    if (!/^[1-9][0-9]{0,15}$/.test(q) || !Number.isSafeInteger(version)) {
      throw new HttpError(400, "invalid_request", "version must be a whole number ≥ 1");
    }
    const p = await prices.get(version).catch((e) => {
      if (!(e instanceof PriceVersionError)) throw e;
      throw new HttpError(500, "integrity_error", `Stored ${e.message}; it is never used`);
    });
    if (!p) throw new HttpError(404, "not_found", `No price version ${version}`);
    return c.json(view(p, true));
  });

  app.get("/prices/versions", async (c) =>
    c.json((await prices.list()).map((v) => ({
      version: v.version,
      publishedAt: new Date(v.publishedAtMs).toISOString(),
      publishedAtMs: v.publishedAtMs,
      sha256: v.sha256,
    }))));

  app.post("/prices", async (c) => {
    const body = await readJsonObject(c.req.raw, PRICES_BODY_BYTES_MAX);
    if ("publishedAtMs" in body) {
      throw new HttpError(
        400,
        "invalid_request",
        "publishedAtMs is set by the hub when it publishes",
      );
    }
    const models = body.models;
    if (typeof models === "object" && models !== null && Object.keys(models).length === 0) {
      throw new HttpError(
        400,
        "invalid_request",
        "Invalid price table: models: name at least one model",
      );
    }
    try {
      const { published, created } = await prices.publish(body);
      return c.json({ ...view(published, false), created }, created ? 201 : 200);
    } catch (e) {
      if (e instanceof PricePublishError) throw new HttpError(400, "invalid_request", e.message);
      if (e instanceof PriceVersionTakenError) throw new HttpError(409, "conflict", e.message);
      throw e;
    }
  });

  return app;
}

function view(p: PublishedPrices, withTable: boolean) {
  return {
    version: p.version,
    publishedAt: new Date(p.publishedAtMs).toISOString(),
    publishedAtMs: p.publishedAtMs,
    sha256: p.sha256,
    ...(withTable ? { table: p.table } : {}),
  };
}
