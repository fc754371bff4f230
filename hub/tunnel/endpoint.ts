/**
 * `/tunnel/connect`: upgrades to a WebSocket, runs the handshake, then hands frames to the
 * agent's session. One connection's failure never touches another's.
 */
import { FEATURES } from "../../protocol/capabilities.ts";
import type { Clock } from "../../protocol/clock.ts";
import { boundCloseReason, CloseCode, describeClose } from "../../protocol/close_codes.ts";
import { toHex } from "../../protocol/encoding.ts";
import {
  type ControlFrame,
  decodeMessage,
  encodeControl,
  FrameDecodeError,
  isBodyFrame,
} from "../../protocol/frames.ts";
import type { Signer } from "../../protocol/identity.ts";
import { type HeartbeatTiming, LIMITS } from "../../protocol/limits.ts";
import { errorMessage, type Logger } from "../../runtime/log.ts";
import type { Metrics } from "../metrics.ts";
import type { AgentTier, HubStore } from "../store/mod.ts";
import { HubHandshake, VerifierCache } from "./handshake.ts";
import { EgressMonitor, type EgressOptions } from "./egress.ts";
import { NonceCache } from "./nonce_cache.ts";
import { SessionRegistry } from "./registry.ts";
import { AgentSession, type SessionPrices } from "./session.ts";

export interface TunnelDeps {
  egress: EgressOptions;
  store: HubStore;
  identity: Signer;
  clock: Clock;
  timing: HeartbeatTiming;
  log: Logger;
  metrics: Metrics;
  /** Price tables for agents: the current one after WELCOME, others on request. */
  prices?: SessionPrices;
  /** Ledger sync frames from an agent, and the end of its session (hub/billing/ledger_sync.ts). */
  ledgerSync?: {
    onFrame(session: AgentSession, frame: ControlFrame): void;
    onClosed(session: AgentSession): void;
  };
}

function closeCodeFor(error: FrameDecodeError): CloseCode {
  if (error.code === "too_large") return CloseCode.frameTooLarge;
  if (error.code === "bad_version") return CloseCode.unsupportedVersion;
  return CloseCode.malformedFrame;
}

export class TunnelEndpoint {
  readonly registry = new SessionRegistry();
  readonly egress: EgressMonitor;
  readonly #nonces = new NonceCache();
  readonly #verifiers = new VerifierCache();
  readonly #handshakes: (labels: Record<string, string>) => void;
  /** One promise per open socket, settled by its close event. */
  readonly #socketsClosed = new Set<Promise<void>>();

  constructor(readonly deps: TunnelDeps) {
    this.egress = new EgressMonitor(
      this.registry,
      deps.egress,
      deps.clock,
      deps.log.with({ component: "egress" }),
    );
    this.#handshakes = deps.metrics.counter(
      "aqueduct_tunnel_handshakes_total",
      "Tunnel handshakes by outcome (close code name or 'ok').",
    );
    deps.metrics.gauge(
      "aqueduct_agents_online",
      "Agents with a live session.",
      () => this.registry.size,
    );
  }

  /** Handles an HTTP request to the tunnel path. */
  handle(req: Request, remoteAddr: string): Response {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return Response.json(
        {
          error: {
            message: "This endpoint only accepts WebSocket upgrades from agents",
            type: "invalid_request_error",
          },
        },
        { status: 426, headers: { upgrade: "websocket" } },
      );
    }
    const { socket, response } = Deno.upgradeWebSocket(req, {
      // Deno's protocol-level ping/pong is only a backstop: our PING frames decide first, so a
      // dead agent is reported with our own close code (peerDead).
      idleTimeout: Math.ceil((2 * this.deps.timing.peerDeadAfterMs) / 1000),
    });
    socket.binaryType = "arraybuffer";
    const closed = new Promise<void>((resolve) =>
      socket.addEventListener("close", () => resolve())
    );
    this.#socketsClosed.add(closed);
    closed.then(() => this.#socketsClosed.delete(closed));
    this.#accept(socket, remoteAddr);
    return response;
  }

  /**
   * `/tunnel/probe/<token>`: the agent's egress check. Upgrades (the agent dials it like the
   * tunnel, pins included), records the source IP, and closes at once.
   */
  handleProbe(req: Request, token: string, remoteAddr: string): Response {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return Response.json({
        error: { message: "WebSocket upgrade expected", type: "invalid_request_error" },
      }, {
        status: 426,
      });
    }
    const known = this.egress.recordProbe(token, remoteAddr);
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.onopen = () =>
      socket.close(
        known ? CloseCode.shutdown : CloseCode.replayedNonce,
        known ? "probed" : "unknown probe",
      );
    return response;
  }

  /** Closes every session (hub shutdown) and waits, bounded, for the agents' close frames. */
  async closeAll(code: number, reason: string): Promise<void> {
    for (const session of [...this.registry.sessions()]) session.close(code, reason);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(this.#socketsClosed),
      new Promise((resolve) => timer = setTimeout(resolve, LIMITS.closeGraceMs)),
    ]);
    clearTimeout(timer);
  }

  #accept(socket: WebSocket, remoteAddr: string): void {
    const log = this.deps.log.with({ remoteAddr });
    const handshake = new HubHandshake({
      store: this.deps.store,
      identity: this.deps.identity,
      nonces: this.#nonces,
      clock: this.deps.clock,
      verifiers: this.#verifiers,
    });
    let session: AgentSession | undefined;
    let agentId: string | undefined;
    let rejected = false;
    let queue = Promise.resolve();

    const reject = (code: number, reason: string) => {
      if (rejected) return;
      rejected = true;
      clearTimeout(timer);
      log.warn("tunnel handshake rejected", { agentId, code, close: describeClose(code), reason });
      this.#handshakes({ outcome: describeClose(code).split(" ")[1]! });
      try {
        socket.close(code, boundCloseReason(reason));
      } catch { /* peer already gone */ }
    };
    const timer = setTimeout(
      () =>
        reject(CloseCode.handshakeTimeout, `no handshake within ${LIMITS.handshakeTimeoutMs} ms`),
      LIMITS.handshakeTimeoutMs,
    );

    const onHandshakeFrame = async (frame: ControlFrame) => {
      if (rejected || session) return;
      if (frame.type === "hello") agentId = frame.agentId;
      const step = await handshake.step(frame);
      if (rejected) return; // timed out while we were verifying
      if (step.kind === "send") return socket.send(encodeControl(step.frame));
      if (step.kind === "reject") return reject(step.code, step.reason);
      clearTimeout(timer);
      session = this.#openSession(socket, step, remoteAddr);
    };

    socket.onmessage = (event) => {
      let frame;
      try {
        frame = decodeMessage(event.data);
      } catch (e) {
        const error = e instanceof FrameDecodeError
          ? e
          : new FrameDecodeError("bad_header", errorMessage(e));
        // A control type from a newer agent: ignored once the session is open (forward
        // compatibility); during the handshake it is still a protocol error.
        if (session && error.code === "unknown_type") {
          return log.warn("ignored a control frame this hub does not know", {
            agentId: session.agentId,
            error: error.message,
          });
        }
        const code = closeCodeFor(error);
        if (session) session.close(code, boundCloseReason(error.message));
        else reject(code, error.message);
        return;
      }
      if (session) {
        if (isBodyFrame(frame)) session.onBinary(frame);
        else session.onControl(frame);
        return;
      }
      if (isBodyFrame(frame)) {
        return reject(CloseCode.unexpectedFrame, "body frame before the handshake");
      }
      // Handshake steps are async (store, crypto); keep them in arrival order.
      queue = queue.then(() => onHandshakeFrame(frame)).catch((e) => {
        log.error("tunnel handshake failed", { agentId, error: errorMessage(e) });
        reject(CloseCode.internalError, "internal error during the handshake");
      });
    };
    socket.onclose = (event) => {
      clearTimeout(timer);
      // Deno reports 0 when the peer vanished without a close frame; RFC 6455 calls that 1006.
      const code = event.code || 1006;
      if (session) session.close(code, event.reason || "connection lost");
      else if (!rejected) {
        log.info("agent closed during the handshake", {
          agentId,
          code,
          close: describeClose(code),
          reason: event.reason,
        });
      }
    };
    socket.onerror = () => {/* onclose follows and does the cleanup */};
  }

  #openSession(
    socket: WebSocket,
    accepted: { agentId: string; tier: AgentTier; capabilities: AgentSession["capabilities"] },
    remoteAddr: string,
  ): AgentSession {
    const { clock, timing, store } = this.deps;
    const { agentId, tier, capabilities } = accepted;
    const generation = this.registry.nextGeneration();
    const sessionId = toHex(crypto.getRandomValues(new Uint8Array(8)));
    const log = this.deps.log.with({ agentId, sessionId, generation });
    const recordSeen = (s: AgentSession, withCapabilities: boolean) =>
      store.recordAgentSeen(agentId, {
        atMs: s.lastFrameAtMs,
        capabilities: withCapabilities ? s.capabilities : undefined,
      }).catch((e) => log.error("cannot record agent state", { error: errorMessage(e) }));

    const session = new AgentSession({
      agentId,
      tier,
      sessionId,
      generation,
      capabilities,
      remoteAddr,
      socket,
      clock,
      timing,
      log,
      onClosed: (s, code, reason) => {
        this.registry.remove(s);
        this.egress.detach(s);
        this.deps.ledgerSync?.onClosed(s);
        log.info("agent offline", { code, close: describeClose(code), reason });
        recordSeen(s, false);
      },
      onDispute: () => this.registry.recordDispute(agentId),
      onLedgerSync: (s, frame) => this.deps.ledgerSync?.onFrame(s, frame),
      prices: this.deps.prices,
      onCapabilities: (s) => {
        this.egress.evaluate();
        log.info("agent capabilities changed", { channels: s.capabilities.channels.length });
        recordSeen(s, true);
      },
    });
    const previous = this.registry.register(session);
    // Fence first: the old session is gone before the new one may carry traffic.
    previous?.close(
      CloseCode.superseded,
      `superseded by a newer session (generation ${generation})`,
    );
    session.send({
      type: "welcome",
      sessionId,
      generation,
      pingIntervalMs: timing.pingIntervalMs,
      peerDeadAfterMs: timing.peerDeadAfterMs,
      features: [...FEATURES],
    });
    this.deps.prices?.greet(session);
    this.egress.attach(session);
    this.#handshakes({ outcome: "ok" });
    log.info("agent online", {
      channels: capabilities.channels.length,
      fenced: previous?.sessionId,
    });
    recordSeen(session, true);
    return session;
  }
}
