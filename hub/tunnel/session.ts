/**
 * One authenticated agent connection on the hub. It waits on three things only: the next frame,
 * the heartbeat deadline and close. It owns the echoes in flight and, later, the request streams.
 */
import { type Capabilities, peerUnderstands } from "../../protocol/capabilities.ts";
import type { Clock } from "../../protocol/clock.ts";
import { boundCloseReason, CloseCode, describeClose } from "../../protocol/close_codes.ts";
import { SessionBudget } from "../../protocol/flow.ts";
import {
  type BodyFrame,
  BodyKind,
  type ControlFrame,
  encodeBody,
  encodeControl,
  type Frame,
} from "../../protocol/frames.ts";
import { type HeartbeatTiming, LIMITS } from "../../protocol/limits.ts";
import type { Logger } from "../../runtime/log.ts";
import type { AgentTier } from "../store/mod.ts";
import { HubStream, type StreamRequest, type StreamResponse } from "./hub_stream.ts";

/** The part of a server-side WebSocket a session uses. */
export interface SessionSocket {
  readonly readyState: number;
  send(data: string | Uint8Array<ArrayBuffer>): void;
  close(code?: number, reason?: string): void;
}

export interface SessionInit {
  agentId: string;
  /** Supply tier from enrolment: 0 platform-owned, 1 certified, 2 community. */
  tier: AgentTier;
  sessionId: string;
  generation: number;
  capabilities: Capabilities;
  remoteAddr: string;
  socket: SessionSocket;
  clock: Clock;
  timing: HeartbeatTiming;
  log: Logger;
  /** Called once when the session ends, whatever the reason. */
  onClosed: (session: AgentSession, code: number, reason: string) => void;
  onCapabilities: (session: AgentSession) => void;
  /** The agent disputed a settlement (counted per agent by the registry). */
  onDispute?: (session: AgentSession) => void;
  /** Ledger sync frames (RECONCILE, LEDGER_HASHES, CLAIM, CHECKPOINT): hub/billing/ledger_sync.ts. */
  onLedgerSync?: (session: AgentSession, frame: ControlFrame) => void;
  /** Price versions for the agent (hub/billing/prices.ts `tunnelPrices`); PRICES_GET answers. */
  prices?: SessionPrices;
}

/** What a session needs to hand price tables to its agent. */
export interface SessionPrices {
  /** Sends the current version (right after WELCOME). */
  greet(session: AgentSession): void;
  /** Answers PRICES_GET with PRICES, or PRICES_MISSING. */
  request(session: AgentSession, version: number): void;
}

interface PendingEcho {
  sentAtMono: number;
  resolve: (r: { payload: string; rttMs: number }) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** Raised to callers waiting on a session that ended or cannot take the request. */
export class SessionUnavailableError extends Error {
  override name = "SessionUnavailableError";
}

const OPEN = 1;

export class AgentSession {
  readonly agentId: string;
  readonly tier: AgentTier;
  readonly sessionId: string;
  readonly generation: number;
  readonly remoteAddr: string;
  readonly connectedAtMs: number;
  capabilities: Capabilities;
  lastFrameAtMs: number;
  /** The agent's public egress IP as the last PROBE saw it. */
  egress?: { ip: string; checkedAtMs: number };
  /** Channels the hub will not route to, with the reason (see egress.ts). */
  refusedChannels = new Map<string, string>();
  /** Remaining RPM/TPM per channel as the agent's last heartbeat reported them. */
  channelCapacity = new Map<string, { rpm: number; tpm: number }>();
  #lastFrameMono: number;
  #closed = false;
  #pingSeq = 0;
  #echoSeq = 0;
  readonly #echoes = new Map<number, PendingEcho>();
  readonly #streams = new Map<number, HubStream>();
  readonly #budget = new SessionBudget();
  #streamSeq = 0;
  readonly #heartbeat: ReturnType<typeof setInterval>;
  readonly #init: SessionInit;

  constructor(init: SessionInit) {
    this.#init = init;
    this.agentId = init.agentId;
    this.tier = init.tier;
    this.sessionId = init.sessionId;
    this.generation = init.generation;
    this.remoteAddr = init.remoteAddr;
    this.capabilities = init.capabilities;
    this.connectedAtMs = init.clock.nowMs();
    this.lastFrameAtMs = this.connectedAtMs;
    this.#lastFrameMono = init.clock.monoMs();
    this.#heartbeat = setInterval(() => this.#tick(), init.timing.pingIntervalMs);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Handles one decoded control frame from the agent. */
  onControl(frame: ControlFrame): void {
    this.#touch();
    switch (frame.type) {
      case "pong":
        if (frame.channels) {
          this.channelCapacity = new Map(
            frame.channels.map((c) => [c.id, { rpm: c.remainingRpm, tpm: c.remainingTpm }]),
          );
        }
        return;
      case "echo_reply":
        return this.#settleEcho(frame);
      case "capabilities":
        this.capabilities = frame.capabilities;
        this.#init.onCapabilities(this);
        return;
      case "goodbye":
        this.#init.log.info("agent said goodbye", { reason: frame.reason });
        return;
      case "settle_ack":
        this.#init.log.debug("agent acknowledged a settlement", {
          requestId: frame.requestId,
          seq: frame.seq,
          hash: frame.hash,
        });
        return;
      case "dispute":
        this.#init.onDispute?.(this);
        this.#init.log.error("agent disputes a settlement", {
          requestId: frame.requestId,
          seq: frame.seq,
          reason: frame.reason,
        });
        return;
      case "prices_get":
        return this.#init.prices?.request(this, frame.version);
      case "reconcile":
      case "ledger_hashes":
      case "claim":
      case "checkpoint":
        return this.#init.onLedgerSync?.(this, frame);
      case "response_head":
        return this.#streams.get(frame.stream)?.onHead(frame);
      case "response_end":
        return this.#streams.get(frame.stream)?.onEnd(frame);
      case "abort":
        return this.#streams.get(frame.stream)?.abort("agent", frame.reason);
      case "credit": {
        const stream = this.#streams.get(frame.stream);
        if (stream && !stream.onCredit(frame)) {
          this.close(CloseCode.flowControl, `credit overrun on stream ${frame.stream}`);
        }
        return;
      }
      default:
        this.close(CloseCode.unexpectedFrame, `unexpected ${frame.type} frame in an open session`);
    }
  }

  /** A response body frame (late frames of finished streams are dropped). */
  onBinary(frame: BodyFrame): void {
    this.#touch();
    if (frame.kind !== BodyKind.response) {
      return this.close(CloseCode.unexpectedFrame, "request body frame from an agent");
    }
    const stream = this.#streams.get(frame.stream);
    if (stream && !stream.onBody(frame.payload, frame.fin)) {
      this.close(CloseCode.flowControl, `window overrun on stream ${frame.stream}`);
    }
  }

  /** Number of request streams in flight (routing uses it as load). */
  get streamsOpen(): number {
    return this.#streams.size;
  }

  /**
   * Opens a request stream to the agent and resolves with the response head; the body streams
   * after. Rejects with `StreamFailedError` if the stream ends before the head arrives.
   */
  openStream(request: StreamRequest): Promise<StreamResponse> {
    if (this.#closed) return Promise.reject(new SessionUnavailableError("agent session is closed"));
    if (this.#streams.size >= LIMITS.streamsPerSessionMax) {
      return Promise.reject(new SessionUnavailableError("agent has too many streams open"));
    }
    const id = this.#streamSeq = (this.#streamSeq % 0xffff_fffe) + 1;
    const stream = new HubStream(id, request, this.#budget, {
      control: (frame) => this.send(frame),
      body: (kind, stream, payload, fin) =>
        this.#sendBinary(encodeBody({ kind, stream, payload, fin })),
      done: (doneId) => this.#streams.delete(doneId),
    });
    this.#streams.set(id, stream);
    stream.start();
    return stream.head;
  }

  #sendBinary(bytes: Uint8Array<ArrayBuffer>): void {
    if (this.#closed || this.#init.socket.readyState !== OPEN) return;
    this.#init.socket.send(bytes);
  }

  /** Sends `payload` through the tunnel and resolves with the agent's reply and round-trip time. */
  echo(payload: string): Promise<{ payload: string; rttMs: number }> {
    if (this.#closed) return Promise.reject(new SessionUnavailableError("agent session is closed"));
    if (this.#echoes.size >= LIMITS.echoesInFlightMax) {
      return Promise.reject(new SessionUnavailableError("too many echoes in flight"));
    }
    const seq = ++this.#echoSeq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#echoes.delete(seq);
        reject(new SessionUnavailableError(`no echo reply within ${LIMITS.echoTimeoutMs} ms`));
      }, LIMITS.echoTimeoutMs);
      this.#echoes.set(seq, { sentAtMono: this.#init.clock.monoMs(), resolve, reject, timer });
      this.send({ type: "echo", seq, payload });
    });
  }

  send(frame: ControlFrame): void {
    if (this.#closed || this.#init.socket.readyState !== OPEN) return;
    // An agent older than this frame's family would close the session on it: skip it.
    if (!peerUnderstands(this.capabilities.features, frame.type)) return;
    this.#init.socket.send(encodeControl(frame));
  }

  /** Ends the session (idempotent): closes the socket, fails waiters, tells the owner. */
  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    for (const echo of this.#echoes.values()) {
      clearTimeout(echo.timer);
      echo.reject(new SessionUnavailableError(`agent session closed: ${describeClose(code)}`));
    }
    this.#echoes.clear();
    for (const stream of [...this.#streams.values()]) {
      stream.abort("session", `agent session closed: ${describeClose(code)}`);
    }
    this.#budget.wake();
    try {
      this.#init.socket.close(code, boundCloseReason(reason));
    } catch {
      // Already closed by the peer; nothing left to release.
    }
    this.#init.onClosed(this, code, reason);
  }

  #touch(): void {
    this.#lastFrameMono = this.#init.clock.monoMs();
    this.lastFrameAtMs = this.#init.clock.nowMs();
  }

  #tick(): void {
    const silentMs = this.#init.clock.monoMs() - this.#lastFrameMono;
    if (silentMs > this.#init.timing.peerDeadAfterMs) {
      this.close(CloseCode.peerDead, `no frame for ${Math.round(silentMs)} ms`);
      return;
    }
    this.send({ type: "ping", seq: ++this.#pingSeq, sentAtMs: this.#init.clock.nowMs() });
  }

  #settleEcho(frame: Frame<"echo_reply">): void {
    const echo = this.#echoes.get(frame.seq);
    if (!echo) return; // late reply after a timeout
    this.#echoes.delete(frame.seq);
    clearTimeout(echo.timer);
    echo.resolve({ payload: frame.payload, rttMs: this.#init.clock.monoMs() - echo.sentAtMono });
  }
}
