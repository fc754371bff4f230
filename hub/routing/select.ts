/**
 * Picks the agent session and channel for one request. For now: any online agent with a channel
 * of the vendor that serves the model, least loaded first. (Policies, grades and health arrive
 * with the routing issue; this stays the one place that decides.)
 */
import type { SessionRegistry } from "../tunnel/registry.ts";
import type { AgentSession } from "../tunnel/session.ts";

export interface Candidate {
  session: AgentSession;
  channelId: string;
}

export function selectCandidates(
  registry: SessionRegistry,
  vendor: string,
  model: string,
): Candidate[] {
  const out: Candidate[] = [];
  for (const session of registry.sessions()) {
    if (session.closed) continue;
    const channel = session.capabilities.channels.find((c) =>
      c.vendor === vendor && (c.models.length === 0 || c.models.includes(model))
    );
    if (channel) out.push({ session, channelId: channel.id });
  }
  return out.sort((a, b) => a.session.streamsOpen - b.session.streamsOpen);
}

/** Every model some online agent offers for `vendor` (sorted, unique). */
export function offeredModels(registry: SessionRegistry, vendor: string): string[] {
  const models = new Set<string>();
  for (const session of registry.sessions()) {
    for (const c of session.capabilities.channels) {
      if (c.vendor === vendor) c.models.forEach((m) => models.add(m));
    }
  }
  return [...models].sort();
}
