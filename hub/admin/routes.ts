/**
 * Admin API (`Authorization: Bearer $HUB_ADMIN_TOKEN`, JSON in and out). Errors are thrown as
 * `HttpError` and rendered in one place.
 */
import { Hono } from "hono";
import type { Clock } from "../../protocol/clock.ts";
import { CloseCode } from "../../protocol/close_codes.ts";
import { sha256, timingSafeEqual } from "../../protocol/encoding.ts";
import { keyIdOfPublicKey } from "../../protocol/identity.ts";
import { LIMITS } from "../../protocol/limits.ts";
import {
  type AgentRecord,
  type AgentTier,
  type HubStore,
  StoreConflictError,
} from "../store/mod.ts";
import type { SessionRegistry } from "../tunnel/registry.ts";
import { SessionUnavailableError } from "../tunnel/session.ts";
import type { BreakerBoard } from "../routing/breaker.ts";
import { gradeOf, type PayoutTable } from "../routing/grades.ts";
import { channelKey, type StatsBoard } from "../routing/stats.ts";
import { HttpError, readJsonObject } from "../http.ts";
import type { PriceBook } from "../billing/prices.ts";
import { priceRoutes } from "./prices.ts";

export interface AdminDeps {
  store: HubStore;
  registry: SessionRegistry;
  clock: Clock;
  adminToken?: string;
  /** Live routing knowledge (stats, grades, breakers) shown per agent and channel. */
  routing?: { stats: StatsBoard; breakers: BreakerBoard; payoutTable: PayoutTable };
  /** Published price versions (`/admin/prices`); without it those routes do not exist. */
  prices?: PriceBook;
}

export function adminRoutes(deps: AdminDeps): Hono {
  const { store, registry, clock } = deps;
  const app = new Hono();
  const expected = deps.adminToken ? sha256(deps.adminToken) : undefined;

  app.use("*", async (c, next) => {
    if (!expected) {
      throw new HttpError(503, "admin_disabled", "Admin API is disabled: set HUB_ADMIN_TOKEN");
    }
    const header = c.req.header("authorization") ?? "";
    const token = header.startsWith("Bearer ") ? header.slice(7) : "";
    // Hash both sides first so the comparison time depends on neither length nor content.
    if (!timingSafeEqual(await sha256(token), await expected)) {
      throw new HttpError(401, "unauthorized", "Missing or invalid admin token");
    }
    await next();
  });

  app.post("/agents", async (c) => {
    const body = await readJsonObject(c.req.raw);
    const name = requireString(body.name, "name", 100);
    const publicKey = requireString(body.publicKey, "publicKey", 200);
    const tier = body.tier ?? 2;
    if (tier !== 0 && tier !== 1 && tier !== 2) {
      throw new HttpError(
        400,
        "invalid_request",
        "tier must be 0 (platform), 1 (certified) or 2 (community)",
      );
    }
    let keyId: string;
    try {
      keyId = await keyIdOfPublicKey(publicKey);
    } catch (e) {
      throw new HttpError(400, "invalid_request", `publicKey: ${(e as Error).message}`);
    }
    try {
      const agent = await store.createAgent(
        { name, publicKey, keyId, tier: tier as AgentTier },
        clock.nowMs(),
      );
      return c.json({ id: agent.id, keyId: agent.keyId }, 201);
    } catch (e) {
      if (e instanceof StoreConflictError) {
        throw new HttpError(409, "conflict", `An agent with this ${e.field} is already enrolled`);
      }
      throw e;
    }
  });

  if (deps.prices) app.route("/", priceRoutes({ prices: deps.prices }));

  app.get("/agents", async (c) => c.json((await store.listAgents()).map(view)));
  app.get("/agents/:id", async (c) => c.json(view(await requireAgent(c.req.param("id")))));

  app.post("/agents/:id/kick", async (c) => {
    const agent = await requireAgent(c.req.param("id"));
    const session = registry.get(agent.id);
    session?.close(CloseCode.kicked, "disconnected by an operator");
    return c.json({ kicked: Boolean(session) });
  });

  for (const [action, disabled] of [["disable", true], ["enable", false]] as const) {
    app.post(`/agents/:id/${action}`, async (c) => {
      const agent = await requireAgent(c.req.param("id"));
      await store.setAgentDisabled(agent.id, disabled);
      if (disabled) {
        registry.get(agent.id)?.close(CloseCode.kicked, "agent disabled by an operator");
      }
      return c.json({ id: agent.id, disabled });
    });
  }

  app.post("/agents/:id/echo", async (c) => {
    const agent = await requireAgent(c.req.param("id"));
    const body = await readJsonObject(c.req.raw);
    const payload = requireString(body.payload, "payload", LIMITS.echoPayloadBytesMax);
    const session = registry.get(agent.id);
    if (!session) throw new HttpError(409, "agent_offline", `Agent ${agent.id} is not connected`);
    try {
      const reply = await session.echo(payload);
      return c.json({ payload: reply.payload, rttMs: Math.round(reply.rttMs * 1000) / 1000 });
    } catch (e) {
      if (e instanceof SessionUnavailableError) {
        throw new HttpError(503, "agent_unavailable", e.message);
      }
      throw e;
    }
  });

  async function requireAgent(id: string): Promise<AgentRecord> {
    const agent = await store.getAgent(id);
    if (!agent) throw new HttpError(404, "not_found", `No agent ${id}`);
    return agent;
  }

  function routingView(agent: AgentRecord, channels: readonly { id: string }[]) {
    if (!deps.routing) return {};
    const { stats, breakers, payoutTable } = deps.routing;
    const now = clock.nowMs();
    const agentStats = stats.agentStats(agent.id, now);
    const grade = gradeOf(agentStats);
    return {
      grade,
      payoutRatio: payoutTable[grade],
      stats: agentStats,
      channels: channels.map((c) => ({
        id: c.id,
        stats: stats.channelStats(agent.id, c.id, now),
        breaker: breakers.state(channelKey(agent.id, c.id), now),
      })),
    };
  }

  function view(agent: AgentRecord) {
    const session = registry.get(agent.id);
    const lastSeen = session ? session.lastFrameAtMs : agent.lastSeenAtMs;
    return {
      id: agent.id,
      name: agent.name,
      publicKey: agent.publicKey,
      keyId: agent.keyId,
      tier: agent.tier,
      disabled: agent.disabled,
      online: Boolean(session),
      capabilities: session ? session.capabilities : agent.capabilities,
      lastSeenAt: lastSeen === null ? null : new Date(lastSeen).toISOString(),
      createdAt: new Date(agent.createdAtMs).toISOString(),
      /** Settlements this agent disputed since the hub started (see SETTLED / DISPUTE frames). */
      disputes: registry.disputeCount(agent.id),
      ...routingView(agent, (session ? session.capabilities : agent.capabilities)?.channels ?? []),
      session: session
        ? {
          id: session.sessionId,
          generation: session.generation,
          remoteAddr: session.remoteAddr,
          connectedAt: new Date(session.connectedAtMs).toISOString(),
          egress: session.egress
            ? {
              ip: session.egress.ip,
              checkedAt: new Date(session.egress.checkedAtMs).toISOString(),
              matchesTunnelIp: session.egress.ip === session.remoteAddr,
            }
            : null,
          refusedChannels: [...session.refusedChannels].map(([id, reason]) => ({ id, reason })),
        }
        : null,
    };
  }

  return app;
}

function requireString(value: unknown, name: string, maxLength: number): string {
  if (typeof value !== "string" || value.length === 0 || value.length > maxLength) {
    throw new HttpError(
      400,
      "invalid_request",
      `${name} must be a non-empty string of ≤ ${maxLength} chars`,
    );
  }
  return value;
}
