/**
 * The simple selector kept for the hub's own requests (the LLM moderator) and the model list:
 * any online agent with a channel of the vendor that serves the model, least loaded first.
 * Client traffic goes through `select` with candidates from `candidates.ts`.
 * @module
 */
import { routableModels } from "../../protocol/vendors/catalog.ts";
import type { SessionRegistry } from "../tunnel/registry.ts";
import type { AgentSession } from "../tunnel/session.ts";

/** A session and the channel on it to use (what `Candidate` meant before `select`). */
export interface SessionChoice {
  session: AgentSession;
  channelId: string;
}

/** Every online session with a matching channel (its first one), fewest open streams first. */
export function selectCandidates(
  registry: SessionRegistry,
  vendor: string,
  model: string,
): SessionChoice[] {
  const out: SessionChoice[] = [];
  for (const session of registry.sessions()) {
    if (session.closed) continue;
    const channel = session.capabilities.channels.find((c) =>
      c.vendor === vendor && (c.models.length === 0 || c.models.includes(model))
    );
    if (channel) out.push({ session, channelId: channel.id });
  }
  return out.sort((a, b) => a.session.streamsOpen - b.session.streamsOpen);
}

/** Every model (or deployment name) some online agent offers for `vendor` (sorted, unique). */
export function offeredModels(registry: SessionRegistry, vendor: string): string[] {
  const models = new Set<string>();
  for (const session of registry.sessions()) {
    for (const c of session.capabilities.channels) {
      if (c.vendor === vendor) routableModels(c).forEach((m) => models.add(m));
    }
  }
  return [...models].sort();
}
