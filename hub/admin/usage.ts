/** Admin view of per-request usage records (what billing will consume). */
import { Hono } from "hono";
import type { HubStore } from "../store/mod.ts";
import { HttpError } from "../http.ts";

export function usageRoutes(deps: { store: HubStore }): Hono {
  const app = new Hono();
  app.get("/usage", async (c) => {
    const q = c.req.query();
    const limit = q.limit === undefined ? undefined : Number(q.limit);
    const sinceMs = q.since === undefined ? undefined : Date.parse(q.since);
    if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1)) {
      throw new HttpError(400, "invalid_request", "limit must be a whole number ≥ 1");
    }
    if (sinceMs !== undefined && Number.isNaN(sinceMs)) {
      throw new HttpError(400, "invalid_request", "since must be an ISO time");
    }
    return c.json(
      await deps.store.listUsage({
        keyId: q.keyId,
        userId: q.userId,
        agentId: q.agentId,
        sinceMs,
        limit,
      }),
    );
  });
  app.get("/usage/:requestId", async (c) => {
    const record = await deps.store.getUsage(c.req.param("requestId"));
    if (!record) throw new HttpError(404, "not_found", `No usage for ${c.req.param("requestId")}`);
    return c.json(record);
  });
  return app;
}
