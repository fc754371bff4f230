/**
 * Choosing channels and failing over. The key's policy orders the healthy candidates; each is
 * tried at most once; a failure before the first response byte (the agent can't reach the vendor,
 * the vendor answers 5xx / overloaded / rate-limited) moves on to the next choice when the request
 * body can be replayed. Once a response is handed back, there is no retry.
 */
import type { VendorSurface } from "../../protocol/vendors/types.ts";
import type { Logger } from "../../runtime/log.ts";
import type { Reservation } from "../limits/mod.ts";
import {
  buildCandidates,
  recordRoutingOutcome,
  type SessionCandidate,
} from "../routing/candidates.ts";
import { DEFAULT_POLICY, parsePolicy, type Policy } from "../routing/policy.ts";
import { select } from "../routing/select.ts";
import { channelKey } from "../routing/stats.ts";
import { StreamFailedError, type StreamResponse } from "../tunnel/hub_stream.ts";
import { type AgentSession, SessionUnavailableError } from "../tunnel/session.ts";
import type { DispatchDeps } from "./dispatch.ts";
import { GatewayError } from "./errors.ts";
import { channelRules } from "./limits.ts";
import { bytesStream } from "./request_body.ts";

/** A request is tried on at most this many channels. */
export const ATTEMPTS_MAX = 3;
/** Upstream answers that say "this channel, not this request": try another before any byte. */
const RETRYABLE_STATUSES = new Set([429, 500, 502, 503, 504, 529]);

export type Choice = SessionCandidate<AgentSession>;

export interface AttemptPlan {
  vendor: VendorSurface;
  model: string;
  /** Only channels that declare this location (see `VendorSurface.requestLocation`). */
  location?: string;
  policy: unknown;
  tokens: number;
  log: Logger;
  /** The body: bytes (replayable) or a one-shot stream. */
  body: Uint8Array | ReadableStream<Uint8Array> | null;
  open(choice: Choice, body: ReadableStream<Uint8Array> | null): Promise<StreamResponse>;
}

export interface Attempted {
  response: StreamResponse;
  choice: Choice;
  channelReservation: Reservation;
  attempts: number;
}

export async function runAttempts(deps: DispatchDeps, plan: AttemptPlan): Promise<Attempted> {
  const nowMs = deps.clock.nowMs();
  const candidates = buildCandidates(deps.registry.sessions(), {
    stats: deps.stats,
    breakers: deps.breakers,
    nowMs,
    tierOf: (agentId) => deps.registry.get(agentId)?.tier,
    payoutTable: deps.payoutTable,
    remaining: (agentId, channelId) => deps.registry.get(agentId)?.channelCapacity.get(channelId),
    location: plan.location,
  });
  const choices = select(candidates, policyOf(plan.policy, plan.log), {
    vendor: plan.vendor.name,
    model: plan.model,
    nowMs,
    random: Math.random,
    limit: ATTEMPTS_MAX,
  });
  plan.log.debug("routing choices", {
    candidates: candidates.length,
    choices: choices.map((c) => `${c.agentId}/${c.channelId}`).join(" "),
  });
  const replayable = !(plan.body instanceof ReadableStream);
  let failure = new GatewayError(
    503,
    "service_unavailable",
    `No capacity is available for model ${plan.model} right now; retry shortly.`,
    null,
    "no_capacity",
  );
  let attempts = 0;
  for (const [i, choice] of choices.entries()) {
    if (attempts > 0 && !replayable) break;
    const breakerKey = channelKey(choice.agentId, choice.channelId);
    if (!deps.breakers.tryAcquireProbe(breakerKey, deps.clock.nowMs())) continue; // a probe is out
    const channel = choice.session.capabilities.channels.find((c) => c.id === choice.channelId)!;
    const decision = await deps.limiter.acquire(channelRules(choice.agentId, channel, plan.tokens));
    if (!decision.allowed) {
      deps.breakers.releaseProbe(breakerKey);
      failure = new GatewayError(
        429,
        "requests",
        "All channels for this model are at their rate limit; retry shortly.",
        null,
        "rate_limit_exceeded",
        {
          "retry-after": String(Math.max(1, Math.ceil(decision.retryAfterMs / 1000))),
        },
      );
      continue;
    }
    attempts++;
    const body = plan.body instanceof Uint8Array ? bytesStream(plan.body) : plan.body;
    const isLast = i === choices.length - 1 || !replayable;
    const outcome = (o: "upstream_failure" | "tunnel_failure" | "client_error") =>
      recordRoutingOutcome(deps.stats, deps.breakers, {
        ...ids(choice),
        outcome: o,
        atMs: deps.clock.nowMs(),
      });
    let response: StreamResponse;
    try {
      response = await plan.open(choice, body);
    } catch (e) {
      await deps.limiter.release(decision.reservation);
      if (!(e instanceof StreamFailedError || e instanceof SessionUnavailableError)) throw e;
      if (e instanceof StreamFailedError && e.by === "client") {
        outcome("client_error");
        throw new GatewayError(499, "client_closed", "The client went away");
      }
      const tunnelLost = e instanceof SessionUnavailableError || e.by === "session";
      outcome(tunnelLost ? "tunnel_failure" : "upstream_failure");
      plan.log.warn("attempt failed before the response", {
        agentId: choice.agentId,
        channelId: choice.channelId,
        error: e.message,
      });
      failure = new GatewayError(
        502,
        "upstream_error",
        "The upstream provider could not be reached; retry shortly.",
        null,
        "upstream_unavailable",
      );
      continue;
    }
    if (!isLast && RETRYABLE_STATUSES.has(response.status)) {
      await response.body.cancel().catch(() => {}); // ABORT: the client never sees this answer
      await deps.limiter.release(decision.reservation);
      if (response.status >= 500) outcome("upstream_failure");
      else deps.breakers.releaseProbe(breakerKey); // rate limited: not the channel's health
      plan.log.warn("failing over", {
        agentId: choice.agentId,
        channelId: choice.channelId,
        status: response.status,
      });
      continue;
    }
    return { response, choice, channelReservation: decision.reservation, attempts };
  }
  throw failure;
}

function ids(choice: Choice) {
  return { agentId: choice.agentId, channelId: choice.channelId };
}

function policyOf(value: unknown, log: Logger): Policy {
  try {
    return parsePolicy(value ?? null);
  } catch (e) {
    // Validated when the key was written; an unreadable policy falls back rather than failing requests.
    log.error("unreadable key policy; using auto", { error: (e as Error).message });
    return DEFAULT_POLICY;
  }
}
