/**
 * One tunnel connection from the agent's side: handshake (checking the pinned hub identity), then
 * the frame loop. It waits on three things: the next frame, the dead-hub deadline, and close.
 */
import { type Capabilities, peerUnderstands } from "../../protocol/capabilities.ts";
import type { Clock } from "../../protocol/clock.ts";
import { boundCloseReason, CloseCode, describeClose } from "../../protocol/close_codes.ts";
import { toBase64Url } from "../../protocol/encoding.ts";
import { SessionBudget } from "../../protocol/flow.ts";
import {
  type BodyFrame,
  BodyKind,
  type ControlFrame,
  decodeMessage,
  encodeBody,
  encodeControl,
  type Frame,
  FrameDecodeError,
  isBodyFrame,
  PROTOCOL_VERSION,
} from "../../protocol/frames.ts";
import {
  newNonce,
  signatureBytes,
  transcript,
  type TranscriptFields,
  withinSkew,
} from "../../protocol/handshake.ts";
import type { Signer, Verifier } from "../../protocol/identity.ts";
import { LIMITS } from "../../protocol/limits.ts";
import { errorMessage, type Logger } from "../../runtime/log.ts";
import { AgentStream, type AgentStreamDeps } from "./agent_stream.ts";
import { isUpgradeRequest } from "../../protocol/realtime_wire.ts";
import { RealtimeAgentStream } from "../upstream/realtime.ts";
import type { TunnelSocket } from "./dial.ts";

export interface ConnectionDeps {
  socket: TunnelSocket;
  agentId: string;
  identity: Signer;
  /** The hub identity key pinned at `agent init`. */
  hubKey: Verifier;
  capabilities: Capabilities;
  clock: Clock;
  log: Logger;
  /** How request streams are served; without it every REQUEST is refused. */
  streams?: StreamHost;
  /** Answers an egress PROBE: dial the hub's probe URL through the vendor egress. */
  probe?: (token: string) => Promise<void>;
}

export type StreamHost =
  & Pick<AgentStreamDeps, "resolveChannel" | "dev" | "onMetered" | "limiterFor">
  & {
    /** Live remaining capacity per channel, reported with every PONG. */
    capacity?: () => { id: string; remainingRpm: number; remainingTpm: number }[];
    /**
     * Checks a SETTLED ledger entry against the agent's own count and ledger; each reply
     * (SETTLE_ACK or DISPUTE) is sent on this connection. Without it SETTLED is ignored.
     */
    onSettled?: (frame: Frame<"settled">, reply: (frame: ControlFrame) => void) => void;
    /** Ledger sync (agent/ledger/sync.ts): told when a session opens, offered its frames. */
    ledgerSync?: {
      onOpen(send: (frame: ControlFrame) => void): void;
      onFrame(frame: ControlFrame, send: (frame: ControlFrame) => void): boolean;
    };
    /** A price table (PRICES) or the hub's "no such version" (PRICES_MISSING); agent/ledger/prices.ts. */
    onPrices?: (frame: Frame<"prices"> | Frame<"prices_missing">) => void;
  };

export interface ConnectionEnd {
  code: number;
  reason: string;
  /** True once WELCOME arrived (the session carried traffic). */
  welcomed: boolean;
  /** How long the session was open after WELCOME, in ms (0 if never welcomed). */
  sessionMs: number;
}

type State = "challenge" | "welcome" | "open" | "closed";

export class TunnelConnection {
  readonly done: Promise<ConnectionEnd>;
  sessionId?: string;
  /** Channels the hub said it will not route to (shown to the owner). */
  refusedChannels: { id: string; reason: string }[] = [];
  #state: State = "challenge";
  /** What the hub said it understands in WELCOME (absent: a first-release hub). */
  #hubFeatures: readonly string[] | undefined;
  #agentNonce = newNonce();
  #welcomedAtMono = 0;
  #lastFrameMono: number;
  #deadAfterMs: number = LIMITS.handshakeTimeoutMs;
  #watchdog: ReturnType<typeof setInterval>;
  #resolve!: (end: ConnectionEnd) => void;
  #queue = Promise.resolve();
  readonly #streams = new Map<number, AgentStream | RealtimeAgentStream>();
  readonly #budget = new SessionBudget();
  #capabilitiesChanged = false;
  #closing?: { code: number; reason: string };

  constructor(readonly deps: ConnectionDeps) {
    this.done = new Promise((r) => this.#resolve = r);
    this.#lastFrameMono = deps.clock.monoMs();
    const { socket } = deps;
    socket.addEventListener("message", (ev) => this.#onMessage(ev.data));
    // When we initiated the close, our code is the truth; the peer merely echoes it.
    socket.addEventListener("close", (ev) => {
      this.#finish(this.#closing?.code ?? ev.code, this.#closing?.reason ?? ev.reason);
    });
    socket.addEventListener("error", () => {/* close follows */});
    this.#watchdog = setInterval(() => this.#checkAlive(), 250);
    this.#send({
      type: "hello",
      v: PROTOCOL_VERSION,
      agentId: deps.agentId,
      keyId: deps.identity.keyId,
      agentNonce: this.#agentNonce,
      timestampMs: deps.clock.nowMs(),
      capabilities: deps.capabilities,
    });
  }

  /** Sends a control frame if the session is open (PRICES_GET); false when it is not. */
  sendControl(frame: ControlFrame): boolean {
    if (this.#state !== "open" || this.#closing) return false;
    this.#send(frame);
    return true;
  }

  get open(): boolean {
    return this.#state === "open";
  }

  /** Tells the hub the channels changed. */
  updateCapabilities(capabilities: Capabilities): void {
    this.deps.capabilities = capabilities;
    if (this.#state === "open") this.#send({ type: "capabilities", capabilities });
    else this.#capabilitiesChanged = true; // sent right after WELCOME
  }

  /** Closes on purpose (shutdown: `CloseCode.shutdown`), saying why first. */
  close(code: number, reason: string): void {
    if (this.#closing || this.#state === "closed") return;
    if (this.#state === "open") {
      this.#send({ type: "goodbye", reason, reconnect: code === CloseCode.shutdown });
    }
    this.#closeWith(code, reason);
  }

  /** True while the tunnel socket is open (a frame sent now reaches the hub unless it drops). */
  get socketOpen(): boolean {
    return this.deps.socket.readyState === 1;
  }

  #send(frame: ControlFrame): void {
    // A hub older than this frame's family would close the session on it: skip it.
    if (!peerUnderstands(this.#hubFeatures, frame.type)) return;
    if (this.deps.socket.readyState === 1) this.deps.socket.send(encodeControl(frame));
  }

  #closeWith(code: number, reason: string): void {
    if (this.#closing || this.#state === "closed") return;
    this.#closing = { code, reason };
    const level = code === CloseCode.shutdown ? "info" : "warn";
    this.deps.log[level]("closing tunnel", { code, close: describeClose(code), reason });
    try {
      this.deps.socket.close(code, boundCloseReason(reason));
    } catch { /* already closing */ }
    // Wait for the peer's close frame so our reason reaches it, but not forever: a dead hub
    // never answers.
    const grace = setTimeout(() => this.#finish(code, reason), LIMITS.closeGraceMs);
    this.done.then(() => clearTimeout(grace));
  }

  #finish(code: number, reason: string): void {
    if (this.#state === "closed") return;
    const welcomed = this.#welcomedAtMono > 0;
    this.#state = "closed";
    clearInterval(this.#watchdog);
    for (const stream of [...this.#streams.values()]) {
      stream.abort(`tunnel closed: ${describeClose(code)}`);
    }
    this.#budget.wake();
    this.#resolve({
      code,
      reason,
      welcomed,
      sessionMs: welcomed ? this.deps.clock.monoMs() - this.#welcomedAtMono : 0,
    });
  }

  #checkAlive(): void {
    const silentMs = this.deps.clock.monoMs() - this.#lastFrameMono;
    if (silentMs <= this.#deadAfterMs) return;
    if (this.#state === "open") {
      this.#closeWith(CloseCode.peerDead, `no frame from the hub for ${Math.round(silentMs)} ms`);
    } else this.#closeWith(CloseCode.handshakeTimeout, "hub did not finish the handshake");
  }

  #onMessage(data: unknown): void {
    if (this.#closing || this.#state === "closed") return;
    this.#lastFrameMono = this.deps.clock.monoMs();
    let frame;
    try {
      frame = decodeMessage(data);
    } catch (e) {
      // A control type from a newer hub: ignored (forward compatibility), never a reason to close.
      if (this.#state === "open" && e instanceof FrameDecodeError && e.code === "unknown_type") {
        return this.deps.log.warn("ignored a control frame this agent does not know", {
          error: e.message,
        });
      }
      const code = e instanceof FrameDecodeError && e.code === "too_large"
        ? CloseCode.frameTooLarge
        : CloseCode.malformedFrame;
      return this.#closeWith(code, errorMessage(e));
    }
    // Once open, frames are handled synchronously, in arrival order (a REQUEST before its body).
    if (this.#state === "open") return this.#dispatch(frame);
    if (this.#state === "challenge" && !isBodyFrame(frame)) {
      // Verification is async; keep frames in order behind it.
      this.#queue = this.#queue.then(() => this.#onChallenge(frame)).catch((e) => {
        this.deps.log.error("handshake failed", { error: errorMessage(e) });
        this.#closeWith(CloseCode.internalError, "agent error during the handshake");
      });
      return;
    }
    this.#queue = this.#queue.then(() => this.#dispatch(frame));
  }

  #dispatch(frame: ControlFrame | BodyFrame): void {
    if (this.#closing || this.#state === "closed") return;
    if (!isBodyFrame(frame)) return this.#onFrame(frame);
    if (this.#state !== "open") {
      return this.#closeWith(CloseCode.unexpectedFrame, "body frame before WELCOME");
    }
    if (frame.kind !== BodyKind.request) {
      return this.#closeWith(CloseCode.unexpectedFrame, "response body from the hub");
    }
    const stream = this.#streams.get(frame.stream);
    if (stream && !stream.onBody(frame.payload, frame.fin)) {
      this.#closeWith(CloseCode.flowControl, `window overrun on stream ${frame.stream}`);
    }
  }

  #onRequest(frame: Frame<"request">): void {
    const host = this.deps.streams;
    if (!host || this.#streams.has(frame.stream)) {
      return this.#send({
        type: "abort",
        stream: frame.stream,
        reason: host ? "duplicate stream id" : "agent serves no requests",
      });
    }
    // An upgrade REQUEST relays a WebSocket (protocol/realtime_wire.ts) instead of an HTTP call.
    const Stream = isUpgradeRequest(frame.headers) ? RealtimeAgentStream : AgentStream;
    const stream = new Stream(frame, {
      ...host,
      budget: this.#budget,
      control: (f) => this.#send(f),
      body: (kind, id, payload, fin) => {
        if (this.deps.socket.readyState === 1) {
          this.deps.socket.send(encodeBody({ kind, stream: id, payload, fin }));
        }
      },
      done: (id) => this.#streams.delete(id),
      log: this.deps.log,
    });
    this.#streams.set(frame.stream, stream);
    stream.run().catch((e) => {
      this.deps.log.error("stream failed", { stream: frame.stream, error: errorMessage(e) });
      stream.abort("agent error", true);
    });
  }

  async #onChallenge(frame: ControlFrame): Promise<void> {
    if (this.#state !== "challenge") return this.#onFrame(frame);
    if (frame.type !== "challenge") {
      return this.#closeWith(CloseCode.unexpectedFrame, `expected CHALLENGE, got ${frame.type}`);
    }
    const { hubKey, identity, clock, agentId } = this.deps;
    if (frame.hubKeyId !== hubKey.keyId) {
      return this.#closeWith(
        CloseCode.hubIdentityMismatch,
        `hub key ${frame.hubKeyId} is not the pinned ${hubKey.keyId}`,
      );
    }
    if (!withinSkew(frame.timestampMs, clock.nowMs())) {
      return this.#closeWith(
        CloseCode.clockSkew,
        `hub clock is ${frame.timestampMs - clock.nowMs()} ms off`,
      );
    }
    const fields: TranscriptFields = {
      agentId,
      keyId: identity.keyId,
      hubKeyId: hubKey.keyId,
      agentNonce: this.#agentNonce,
      hubNonce: frame.hubNonce,
      timestampMs: frame.timestampMs,
    };
    if (!await hubKey.verify(signatureBytes(frame.signature), transcript("hub", fields))) {
      return this.#closeWith(
        CloseCode.hubIdentityMismatch,
        "hub signature does not match the pinned hub key",
      );
    }
    const signature = toBase64Url(await identity.sign(transcript("agent", fields)));
    this.#state = "welcome";
    this.#send({ type: "auth", hubNonce: frame.hubNonce, signature });
  }

  #onFrame(frame: ControlFrame): void {
    if (this.#state === "closed") return;
    if (this.#state === "welcome") {
      if (frame.type !== "welcome") {
        return this.#closeWith(CloseCode.unexpectedFrame, `expected WELCOME, got ${frame.type}`);
      }
      return this.#onWelcome(frame);
    }
    switch (frame.type) {
      case "ping":
        return this.#send({
          type: "pong",
          seq: frame.seq,
          streamsOpen: this.#streams.size,
          channels: this.deps.streams?.capacity?.(),
        });
      case "echo":
        return this.#send({ type: "echo_reply", seq: frame.seq, payload: frame.payload });
      case "request":
        return this.#onRequest(frame);
      case "probe":
        return void this.deps.probe?.(frame.token).then(
          () => this.deps.log.info("egress probe answered"),
          (e) => this.deps.log.warn("egress probe failed", { error: errorMessage(e) }),
        );
      case "channel_status":
        for (const { id, reason } of frame.refused) {
          this.deps.log.warn("hub refuses a channel", { channel: id, reason });
        }
        this.refusedChannels = frame.refused;
        return;
      case "abort":
        return this.#streams.get(frame.stream)?.abort(frame.reason);
      case "credit": {
        const stream = this.#streams.get(frame.stream);
        if (stream && !stream.onCredit(frame)) {
          this.#closeWith(CloseCode.flowControl, `credit overrun on stream ${frame.stream}`);
        }
        return;
      }
      case "goodbye":
        this.deps.log.info("hub said goodbye", { reason: frame.reason });
        return;
      case "prices":
      case "prices_missing":
        return this.deps.streams?.onPrices?.(frame);
      case "settled":
        if (!this.deps.streams?.onSettled) {
          return this.deps.log.debug("ignoring SETTLED: no ledger", { seq: frame.seq });
        }
        return this.deps.streams.onSettled(frame, (f) => this.#send(f));
      default:
        if (this.deps.streams?.ledgerSync?.onFrame(frame, (f) => this.#send(f))) return;
        this.deps.log.debug("ignoring frame", { type: frame.type });
    }
  }

  #onWelcome(frame: Frame<"welcome">): void {
    this.#state = "open";
    this.#hubFeatures = frame.features;
    this.sessionId = frame.sessionId;
    this.#welcomedAtMono = this.deps.clock.monoMs();
    this.#deadAfterMs = frame.peerDeadAfterMs;
    this.deps.log.info("tunnel open", {
      sessionId: frame.sessionId,
      generation: frame.generation,
      pingIntervalMs: frame.pingIntervalMs,
    });
    if (this.#capabilitiesChanged) {
      this.#send({ type: "capabilities", capabilities: this.deps.capabilities });
    }
    this.deps.streams?.ledgerSync?.onOpen((f) => this.#send(f));
  }
}
