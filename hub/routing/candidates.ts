/**
 * Glue for the gateway: turns live agent sessions plus the in-memory stats and breaker boards
 * into `Candidate`s for `select`, and feeds one request's outcome to both boards. Still pure: it
 * reads only what it is handed.
 *
 * @example
 * ```ts
 * const nowMs = clock.nowMs();
 * const choices = select(
 *   buildCandidates(registry.sessions(), { stats, breakers, nowMs, tierOf }),
 *   parsePolicy(key.policy),
 *   { vendor: "openai", model, nowMs, random: Math.random, limit: 3 },
 * );
 * for (const c of choices) {
 *   if (!breakers.tryAcquireProbe(channelKey(c.agentId, c.channelId), nowMs)) continue;
 *   // … send through c.session, then recordRoutingOutcome(stats, breakers, {...})
 * }
 * ```
 * @module
 */
import type { ChannelCapability } from "../../protocol/capabilities.ts";
import { routableModels } from "../../protocol/vendors/catalog.ts";
import type { AgentTier } from "../store/mod.ts";
import type { BreakerBoard } from "./breaker.ts";
import {
  DEFAULT_PAYOUT_RATIOS,
  GRADE_THRESHOLDS,
  gradeOf,
  type GradeThresholds,
  type PayoutTable,
} from "./grades.ts";
import type { Candidate } from "./select.ts";
import { channelKey, type OutcomeRecord, type StatsBoard } from "./stats.ts";

/** The part of an `AgentSession` candidates are built from. */
export interface SessionView {
  readonly agentId: string;
  readonly closed: boolean;
  readonly streamsOpen: number;
  readonly capabilities: { readonly channels: readonly ChannelCapability[] };
  /** Channels the hub refuses to route to (e.g. the egress IP cap); skipped. */
  readonly refusedChannels?: ReadonlyMap<string, string>;
}

/** Remaining upstream capacity an agent reported for a channel in its latest heartbeat. */
export interface RemainingCapacity {
  rpm?: number;
  tpm?: number;
}

/** Where candidate fields come from. */
export interface CandidateSources {
  stats: StatsBoard;
  breakers: BreakerBoard;
  nowMs: number;
  /** The agent's tier from the store; agents it returns `undefined` for (unknown) are skipped. */
  tierOf: (agentId: string) => AgentTier | undefined;
  /** Grade → payout ratio; `DEFAULT_PAYOUT_RATIOS` unless given. */
  payoutTable?: PayoutTable;
  thresholds?: GradeThresholds;
  /** Heartbeat figures, when the agent sends them. */
  remaining?: (agentId: string, channelId: string) => RemainingCapacity | undefined;
  /** The request's location: only channels whose `locations` list it (Vertex). */
  location?: string;
}

/** A candidate that also carries the session to send through. */
export type SessionCandidate<S> = Candidate & { session: S };

/**
 * One candidate per channel of every open session. The grade is the agent's (all its channels
 * together), because payouts are per agent grade and routing should agree with billing; the
 * score uses the channel's own stats.
 */
export function buildCandidates<S extends SessionView>(
  sessions: Iterable<S>,
  src: CandidateSources,
): SessionCandidate<S>[] {
  const table = src.payoutTable ?? DEFAULT_PAYOUT_RATIOS;
  const thresholds = src.thresholds ?? GRADE_THRESHOLDS;
  const out: SessionCandidate<S>[] = [];
  for (const session of sessions) {
    if (session.closed) continue;
    const tier = src.tierOf(session.agentId);
    if (tier === undefined) continue;
    const grade = gradeOf(src.stats.agentStats(session.agentId, src.nowMs), {}, thresholds);
    for (const ch of session.capabilities.channels) {
      if (session.refusedChannels?.has(ch.id)) continue;
      if (src.location !== undefined && !servesLocation(ch, src.location)) continue;
      const key = channelKey(session.agentId, ch.id);
      const remaining = src.remaining?.(session.agentId, ch.id);
      out.push({
        session,
        agentId: session.agentId,
        channelId: ch.id,
        vendor: ch.vendor,
        models: routableModels(ch),
        tier,
        grade,
        payoutRatio: table[grade],
        stats: src.stats.channelStats(session.agentId, ch.id, src.nowMs),
        breaker: src.breakers.state(key, src.nowMs),
        probeInFlight: src.breakers.probeInFlight(key, src.nowMs),
        streamsOpen: session.streamsOpen,
        remainingRpm: remaining?.rpm,
        remainingTpm: remaining?.tpm,
      });
    }
  }
  return out;
}

/**
 * A request for `location` goes only to channels that declare it. A channel that declares no
 * locations is not routed location-bound requests: it cannot say whether it serves them.
 */
function servesLocation(ch: ChannelCapability, location: string): boolean {
  return ch.locations?.includes(location) === true;
}

/** Reports one request's outcome to the stats (for scores and grades) and the breaker. */
export function recordRoutingOutcome(
  stats: StatsBoard,
  breakers: BreakerBoard,
  record: OutcomeRecord,
): void {
  stats.recordOutcome(record);
  breakers.record(channelKey(record.agentId, record.channelId), record.outcome, record.atMs);
}
