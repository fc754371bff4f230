/**
 * Egress IP control. Vendors watch how many accounts call from one IP, so the hub learns each
 * agent's public egress IP (a PROBE makes the agent open a WebSocket back to the hub through the
 * same egress its vendor calls use), records it beside the tunnel's source IP, flags mismatches,
 * and caps the vendor accounts (channels) behind one egress IP: channels past the cap are refused —
 * never routed to — and the agent is told why. First come, first served: older sessions keep theirs.
 */
import type { Clock } from "../../protocol/clock.ts";
import { toBase64Url } from "../../protocol/encoding.ts";
import type { Logger } from "../../runtime/log.ts";
import type { SessionRegistry } from "./registry.ts";
import type { AgentSession } from "./session.ts";

export interface EgressOptions {
  /** Vendor accounts allowed behind one egress IP. */
  accountsPerIpMax: number;
  /** How often each session is probed again. */
  probeIntervalMs: number;
  /** A probe token is valid this long. */
  probeTtlMs: number;
}

export const EGRESS_DEFAULTS: EgressOptions = {
  accountsPerIpMax: 5,
  probeIntervalMs: 10 * 60_000,
  probeTtlMs: 60_000,
};

export class EgressMonitor {
  readonly #tokens = new Map<string, { session: AgentSession; expiresAtMs: number }>();
  readonly #timers = new Map<AgentSession, ReturnType<typeof setInterval>>();

  constructor(
    readonly registry: SessionRegistry,
    readonly options: EgressOptions,
    readonly clock: Clock,
    readonly log: Logger,
  ) {}

  /** Starts probing a new session and re-applies the cap. */
  attach(session: AgentSession): void {
    this.#probe(session);
    this.#timers.set(
      session,
      setInterval(() => this.#probe(session), this.options.probeIntervalMs),
    );
    this.evaluate();
  }

  detach(session: AgentSession): void {
    clearInterval(this.#timers.get(session));
    this.#timers.delete(session);
    for (const [token, entry] of this.#tokens) {
      if (entry.session === session) this.#tokens.delete(token);
    }
    this.evaluate();
  }

  /** A probe connection arrived from `remoteIp`; true if the token was valid (single use). */
  recordProbe(token: string, remoteIp: string): boolean {
    const entry = this.#tokens.get(token);
    this.#tokens.delete(token);
    if (!entry || entry.expiresAtMs < this.clock.nowMs() || entry.session.closed) return false;
    const session = entry.session;
    session.egress = { ip: remoteIp, checkedAtMs: this.clock.nowMs() };
    if (remoteIp !== session.remoteAddr) {
      this.log.warn("agent egress IP differs from its tunnel IP", {
        agentId: session.agentId,
        tunnelIp: session.remoteAddr,
        egressIp: remoteIp,
      });
    }
    this.evaluate();
    return true;
  }

  /** Recomputes refused channels for every session and tells agents whose set changed. */
  evaluate(): void {
    const used = new Map<string, number>();
    const sessions = [...this.registry.sessions()].sort((a, b) =>
      a.connectedAtMs - b.connectedAtMs
    );
    for (const session of sessions) {
      // Until a probe answers, the tunnel's source IP stands in for the egress IP.
      const ip = session.egress?.ip ?? session.remoteAddr;
      const refused = new Map<string, string>();
      for (const channel of session.capabilities.channels) {
        const count = used.get(ip) ?? 0;
        if (count >= this.options.accountsPerIpMax) {
          refused.set(
            channel.id,
            `egress IP ${ip} already carries ${this.options.accountsPerIpMax} vendor accounts (the cap)`,
          );
        } else used.set(ip, count + 1);
      }
      if (!sameRefusals(session.refusedChannels, refused)) {
        session.refusedChannels = refused;
        for (const [id, reason] of refused) {
          this.log.warn("channel refused", { agentId: session.agentId, channel: id, reason });
        }
        session.send({
          type: "channel_status",
          refused: [...refused].map(([id, reason]) => ({ id, reason })),
        });
      }
    }
  }

  #probe(session: AgentSession): void {
    if (session.closed) return;
    const now = this.clock.nowMs();
    for (const [token, entry] of this.#tokens) {
      if (entry.expiresAtMs < now) this.#tokens.delete(token);
    }
    const token = toBase64Url(crypto.getRandomValues(new Uint8Array(24)));
    this.#tokens.set(token, { session, expiresAtMs: this.clock.nowMs() + this.options.probeTtlMs });
    session.send({ type: "probe", token });
  }
}

function sameRefusals(a: Map<string, string>, b: Map<string, string>): boolean {
  return a.size === b.size && [...a].every(([id, reason]) => b.get(id) === reason);
}
