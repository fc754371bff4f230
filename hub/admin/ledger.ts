/**
 * Admin view of an agent's settlement ledger: `GET /admin/ledger?agentId=…&from=1&limit=100`
 * → `{ agentId, head, entries }`. `head` is the chain head with running totals (`null` before
 * the first entry); `entries` are those with `seq >= from`, ascending, at most `limit` (≤ 1000).
 *
 * Ledger sync (hub/billing/ledger_sync.ts), newest first, `limit` ≤ 1000 (default 100):
 * - `GET /admin/ledger/divergences[?agentId=…]` → `{ divergences: [{agentId, seq, kind, detail,
 *   hubHash, agentHash, detectedAtMs}] }`: the first seq where hub and agent (or the hub's own
 *   entries and their hashes) disagree, found by reconciliation;
 * - `GET /admin/ledger/checkpoints?agentId=…` → `{ checkpoints: [{agentId, seq, hash, totals,
 *   note, createdAtMs}] }`: notes signed by the agent and countersigned by the hub;
 * - `GET /admin/ledger/claims?agentId=…` → `{ claims: [{requestId, agentId, outcome, reason,
 *   seq, createdAtMs}] }`.
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
  const limitOf = (v: string | undefined) => {
    const limit = v === undefined ? 100 : Number(v);
    if (!(Number.isSafeInteger(limit) && limit >= 1 && limit <= 1000)) {
      throw new HttpError(400, "invalid_request", "limit must be a whole number in 1…1000");
    }
    return limit;
  };
  const agentOf = (v: string | undefined) => {
    if (!v) throw new HttpError(400, "invalid_request", "agentId is required");
    return v;
  };
  const sync = () => deps.store.ledgerSync;
  app.get("/ledger/divergences", async (c) => {
    const q = c.req.query();
    return c.json({ divergences: await sync().divergences(q.agentId, limitOf(q.limit)) });
  });
  app.get("/ledger/checkpoints", async (c) => {
    const q = c.req.query();
    return c.json({ checkpoints: await sync().checkpoints(agentOf(q.agentId), limitOf(q.limit)) });
  });
  app.get("/ledger/claims", async (c) => {
    const q = c.req.query();
    return c.json({ claims: await sync().claims(agentOf(q.agentId), limitOf(q.limit)) });
  });
  return app;
}
