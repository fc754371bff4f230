/**
 * Admin view of an agent's settlement ledger: `GET /admin/ledger?agentId=…&from=1&limit=100`
 * → `{ agentId, head, entries }`. `head` is the chain head with running totals (`null` before
 * the first entry); `entries` are those with `seq >= from`, ascending, at most `limit` (≤ 1000).
 */
import { Hono } from "hono";
import type { HubStore } from "../store/mod.ts";
import { HttpError } from "../http.ts";

export function ledgerRoutes(deps: { store: HubStore }): Hono {
  const app = new Hono();
  app.get("/ledger", async (c) => {
    const q = c.req.query();
    if (!q.agentId) throw new HttpError(400, "invalid_request", "agentId is required");
    const from = q.from === undefined ? 1 : Number(q.from);
    const limit = q.limit === undefined ? 100 : Number(q.limit);
    if (!(Number.isSafeInteger(from) && from >= 1)) {
      throw new HttpError(400, "invalid_request", "from must be a whole number ≥ 1");
    }
    if (!(Number.isSafeInteger(limit) && limit >= 1 && limit <= 1000)) {
      throw new HttpError(400, "invalid_request", "limit must be a whole number in 1…1000");
    }
    if (!await deps.store.getAgent(q.agentId)) {
      throw new HttpError(404, "not_found", `No agent ${q.agentId}`);
    }
    const [head, entries] = await Promise.all([
      deps.store.ledgerHead(q.agentId),
      deps.store.ledgerEntries(q.agentId, from, limit),
    ]);
    return c.json({ agentId: q.agentId, head, entries });
  });
  return app;
}
