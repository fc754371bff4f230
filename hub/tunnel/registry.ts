import type { AgentSession } from "./session.ts";

/**
 * Agent id → its one live session. Registering a newer session fences the older one: the caller
 * closes it before the new session carries traffic, so an agent never has two live sessions.
 */
export class SessionRegistry {
  readonly #sessions = new Map<string, AgentSession>();
  #generation = 0;
  /** Settlement disputes per agent since the hub started (in memory; kept across reconnects). */
  readonly #disputes = new Map<string, number>();

  recordDispute(agentId: string): void {
    this.#disputes.set(agentId, this.disputeCount(agentId) + 1);
  }

  disputeCount(agentId: string): number {
    return this.#disputes.get(agentId) ?? 0;
  }

  /** Monotonic per hub process; a larger generation always wins. */
  nextGeneration(): number {
    return ++this.#generation;
  }

  /** Makes `session` current and returns the session it replaced (to be closed), if any. */
  register(session: AgentSession): AgentSession | undefined {
    const previous = this.#sessions.get(session.agentId);
    if (previous && previous.generation > session.generation) {
      throw new RangeError(
        `Cannot register session: generation ${session.generation} is older than ${previous.generation}`,
      );
    }
    this.#sessions.set(session.agentId, session);
    return previous === session ? undefined : previous;
  }

  /** Removes `session` only if it is still the current one (a fenced session must not evict its successor). */
  remove(session: AgentSession): boolean {
    if (this.#sessions.get(session.agentId) !== session) return false;
    return this.#sessions.delete(session.agentId);
  }

  get(agentId: string): AgentSession | undefined {
    return this.#sessions.get(agentId);
  }

  get size(): number {
    return this.#sessions.size;
  }

  sessions(): IterableIterator<AgentSession> {
    return this.#sessions.values();
  }
}
