/**
 * What happens when a request is over: its outcome feeds routing (stats, breaker), its real token
 * count corrects the limiter reservations, its usage record goes to billing, and one log line
 * describes it (ids, sizes, timings, counts — never bodies).
 */
import type { Clock } from "../../protocol/clock.ts";
import { emptyUsage, type Usage, type UsageRecord } from "../../protocol/usage.ts";
import type { MeterResult } from "../../protocol/vendors/types.ts";
import { errorMessage, type Logger } from "../../runtime/log.ts";
import type { Limiter, Reservation } from "../limits/mod.ts";
import type { BreakerBoard } from "../routing/breaker.ts";
import { recordRoutingOutcome } from "../routing/candidates.ts";
import type { Outcome, StatsBoard } from "../routing/stats.ts";
import type { UsageContext } from "../store/mod.ts";
import type { StreamEnd } from "../tunnel/hub_stream.ts";
import { actualTokenUnits } from "./limits.ts";
import type { Biller, BillingHold } from "../billing/biller.ts";

export interface Finished {
  end: StreamEnd;
  hubMeter: MeterResult;
  requestId: string;
  vendor: string;
  model: string;
  context: UsageContext;
  status: number;
  attempts: number;
  responseBytes: number;
  ttfbMs: number;
  durationMs: number;
  reservations: Reservation[];
  releaseSlot?: () => Promise<void>;
  /** The billing hold placed before dispatch (`null`: the request is not billed). */
  hold?: BillingHold | null;
}

export interface AccountingDeps {
  clock: Clock;
  stats: StatsBoard;
  breakers: BreakerBoard;
  limiter: Limiter;
  /** Holds, settles and releases request costs; absent: nothing is billed. */
  biller?: Biller;
  onUsage?: (record: UsageRecord, context: UsageContext) => void;
}

/** Who a request's usage is recorded for: the key and its user, the agent and channel that served it. */
export function usageContext(
  key: { id: string; userId: string },
  choice: { agentId: string; channelId: string },
): UsageContext {
  return {
    keyId: key.id,
    userId: key.userId,
    agentId: choice.agentId,
    channelId: choice.channelId,
  };
}

export function outcomeOf(end: StreamEnd, status: number): Outcome {
  if (end.kind === "aborted") {
    if (end.by === "client") return "client_error";
    return end.by === "session" ? "tunnel_failure" : "upstream_failure";
  }
  if (status >= 500) return "upstream_failure";
  return status >= 400 ? "client_error" : "success";
}

/**
 * The agent's count is authoritative: for a stream whose client did not ask for usage the hub
 * never saw one. When both measured, a disagreement is logged.
 */
export function finish(deps: AccountingDeps, log: Logger, f: Finished): void {
  const agent = f.end.kind === "complete" ? f.end.frame : undefined;
  const usage: Usage | null = agent?.usage ? { ...emptyUsage(), ...agent.usage } : f.hubMeter.usage;
  if (
    agent?.usage && f.hubMeter.usage &&
    JSON.stringify(agent.usage) !== JSON.stringify(f.hubMeter.usage)
  ) {
    log.warn("hub and agent usage differ", { agentId: f.context.agentId });
  }
  const outcome = outcomeOf(f.end, f.status);
  recordRoutingOutcome(deps.stats, deps.breakers, {
    agentId: f.context.agentId,
    channelId: f.context.channelId!,
    outcome,
    ttftMs: f.ttfbMs >= 0 ? f.ttfbMs : undefined,
    outputTokens: usage?.outputTokens,
    durationMs: f.durationMs,
    atMs: deps.clock.nowMs(),
  });
  // Without a count the reservation stands: a cut stream may still have used its tokens.
  const limiterWork = usage
    ? f.reservations.map((r) => deps.limiter.settle(r, actualTokenUnits(r.parts, usage)))
    : [];
  Promise.all([...limiterWork, f.releaseSlot?.()]).catch((e) =>
    log.error("limiter bookkeeping failed", { error: errorMessage(e) })
  );
  log.info("request finished", {
    agentId: f.context.agentId,
    channelId: f.context.channelId,
    status: f.status,
    outcome: f.end.kind === "complete" ? "complete" : `aborted by ${f.end.by}`,
    attempts: f.attempts,
    responseBytes: f.responseBytes,
    ttfbMs: Math.round(f.ttfbMs * 1000) / 1000,
    durationMs: Math.round(f.durationMs * 1000) / 1000,
    inputTokens: usage?.inputTokens,
    cachedInputTokens: usage?.cachedInputTokens,
    outputTokens: usage?.outputTokens,
    keyRotations: agent?.keyRotations,
  });
  const record: UsageRecord | null = agent && usage
    ? {
      requestId: f.requestId,
      vendor: f.vendor,
      model: agent.model ?? f.hubMeter.model ?? f.model,
      promptTokens: agent.promptTokens ?? f.hubMeter.promptTokens,
      serviceTier: agent.serviceTier ?? f.hubMeter.serviceTier,
      completedAtMs: deps.clock.nowMs(),
      usage,
    }
    : null;
  // Billing runs off the request path: a completed request with a count is charged; anything
  // else (aborted, no count) gives its hold back uncharged.
  const { hold, context } = { hold: f.hold, context: f.context };
  if (hold && deps.biller) {
    const biller = deps.biller;
    const work = record ? biller.settle(hold, record, context) : biller.release(hold);
    work.catch((e) =>
      log.error(record ? "billing settlement failed" : "billing release failed", {
        reservationId: hold.reservationId,
        error: errorMessage(e),
      })
    );
  }
  if (record) deps.onUsage?.(record, f.context);
}
